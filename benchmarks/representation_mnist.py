"""Representation quality on MNIST (the ACAI paper, section 4, Tables 2 and 3): how useful the codes are.

For each model: train on MNIST with the paper's network (``--arch acai``, 3 scales, MNIST padded to 32x32, a
4x4 latent map: latent 32 = 2 channels, 256 = 16 channels) for a fixed wall-clock budget (on the GPU when there
is one, else the CPU; the table names it), then
- probe: a single linear layer on the frozen, standardized training codes, test accuracy;
- kmeans: k-means (k = 10, 10 restarts) on the whitened training codes, test accuracy after Hungarian
  matching of clusters to classes.

    python benchmarks/representation_mnist.py [--models acai,ae] [--latent-dims 32] [--depth 16] [--budget-minutes 25]
        [--lr-schedule cosine] [--precision bf16-mixed] [--threads 2]

``--precision bf16-mixed`` trains in bfloat16 autocast: on a CPU with AMX about 1.4x the steps of 32-bit in the
same budget (the ACAI network, depth 16, 2 threads).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, data_dir, training_device, write_result, write_table  # noqa: E402

MODELS = {"acai": ("acai", {}), "ae": ("ae", {}), "dropout-ae": ("ae", {"latent_dropout": 0.5})}
RESULT_NAME = "representation_mnist"
PAPER = {("acai", 32): (98.25, None)}  # linear probe accuracy (%) reported by the paper

DEFAULT_LR = 5e-4  # the ACAI paper's


def run_one(
    label: str, latent_dim: int, depth: int, budget_minutes: float, seed: int, lr: float, lr_schedule: str, precision: str,
) -> dict:
    import autoencoders
    from autoencoders.metrics import evaluate

    model_name, settings = MODELS[label]
    out = ROOT / "runs" / "-".join(filter(None, [f"representation-{label}-latent{latent_dim}-depth{depth}-seed{seed}", key_suffix(lr, lr_schedule, precision)]))
    minutes = int(budget_minutes)
    started = time.perf_counter()
    autoencoders.train(
        model_name, "mnist", out, arch="acai", latent_dim=latent_dim, batch_size=64, epochs=1000, lr=lr, seed=seed,
        data_dir=data_dir(), progress=False, overwrite=True,
        settings={**settings, "depth": depth, "scales": 3, "recon_loss": "mse",
                  "training.max_time": f"00:{minutes // 60:02d}:{minutes % 60:02d}:00", "training.log_every": 200,
                  "training.lr_schedule": lr_schedule, "training.precision": precision},
    )
    results = evaluate(out, metrics=["probe", "kmeans", "mse"], data_dir=data_dir(), device="cuda" if on_gpu() else "cpu")
    config = json.loads((out / "config.json").read_text())
    return {
        "label": label, "latent_dim": latent_dim, "depth": depth, "seed": seed, "lr": lr, "lr_schedule": lr_schedule, "precision": precision,
        **results,
        "device": training_device(), "steps": config["training"]["steps_done"], "epochs": config["training"]["epochs_done"],
        "train_seconds": config["training"]["seconds"], "wall_seconds": round(time.perf_counter() - started, 1),
    }


def on_gpu() -> bool:
    """Whether runs train on a GPU: autoencoders.train takes one when there is one, and evaluation follows."""
    import torch

    return torch.cuda.is_available()


def key_suffix(lr: float, lr_schedule: str, precision: str) -> str:
    """What sets a run apart beyond model, latent and depth: the learning rate when not the default, "cosine" for
    a decaying rate, the precision when not 32-bit, "gpu" for runs trained on a GPU; "" (as before) for the
    default constant rate in 32 bits on the CPU. Such runs are kept side by side."""
    return "-".join(filter(None, [
        "" if lr == DEFAULT_LR else f"lr{lr:g}", "" if lr_schedule == "constant" else lr_schedule,
        "" if precision == "32-true" else precision, "gpu" if on_gpu() else "",
    ]))


def table(runs: dict) -> str:
    lines = [
        "| model | latent | depth | linear probe | k-means | test MSE | training | learning rate | precision | steps (batch 64) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs.values():
        lines.append(
            f"| {run['label']} | {run['latent_dim']} | {run['depth']} | {100 * run['probe']:.2f} % | {100 * run['kmeans']:.2f} % | "
            f"{run['mse']:.4f} | {run['train_seconds'] / 60:.0f} min, {run.get('device', '1 CPU thread')} | "
            f"{run['lr']:g}, {run.get('lr_schedule', 'constant')} | {run.get('precision', '32-true')} | {run['steps']} |"
        )
    return "\n".join(lines)


def write_section(runs: dict) -> None:
    write_table(
        "Representation quality on MNIST (benchmarks/representation_mnist.py)",
        "The ACAI paper's network on MNIST (padded to 32x32), MSE on [0, 1] pixels, Adam, a fixed wall-clock budget; "
        "probe and k-means accuracy on the 10,000 test images; the learning rate is constant or decayed to zero by a cosine over the budget. Targets (issue 3, latent 32): probe ≥ 98 %, k-means ≥ 90 %; paper, ACAI latent 32: probe 98.25 % (after 2^24 training images, 262k steps of 64).\n\n"
        + table(runs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="acai")
    parser.add_argument("--latent-dims", default="32")
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--budget-minutes", type=float, default=25.0)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                        help="cosine: decays to zero over the time budget")
    parser.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--table-only", action="store_true", help="rewrite the RESULTS.md section from the saved JSON")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    path = ROOT / "results" / f"{RESULT_NAME}.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else {}
    if args.table_only:
        write_section(runs)
        return
    for latent_dim in (int(value) for value in args.latent_dims.split(",")):
        for label in args.models.split(","):
            run = run_one(label, latent_dim, args.depth, args.budget_minutes, args.seed, args.lr, args.lr_schedule, args.precision)
            runs["-".join(filter(None, [label, str(latent_dim), str(args.depth), key_suffix(args.lr, args.lr_schedule, args.precision)]))] = run
            print(json.dumps(run), flush=True)
            write_result(RESULT_NAME, {"runs": runs})
            write_section(runs)


if __name__ == "__main__":
    main()
