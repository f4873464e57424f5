"""Test NLL on binarized MNIST of the hierarchical VAE (or an IWAE), by importance sampling.

Training: ``--model hvae`` (a ladder VAE, ``--layers`` stochastic layers, the lowest of ``--latent-dim``
units and each one above half as many, precision-weighted merge) or ``--model iwae`` (a one-layer VAE on the
``--iwae-samples``-sample bound), MLP networks by default (``--arch``, ``--hidden``), Bernoulli decoder, MNIST
with dynamic binarization, Adam ``--lr`` with cosine decay to zero, batch ``--batch-size``. The wall-clock
budget ``--train-minutes`` is turned into a step count by timing a few steps of the same model first (so the
cosine decay ends when the budget does); Lightning's max_time stops the run if the machine slows down.
``--iwae-samples`` also trains the hvae on the importance-weighted bound.

Test set: the 10,000 MNIST test images binarized once with seed 0, in order. NLL: -log p(x) estimated with
K = ``--samples`` importance samples from q(z|x) (1000 by default), over the first test images, as many as
``--eval-minutes`` allow (at most ``--eval-items``). Results are rewritten as the evaluation goes.

    python benchmarks/nll_hvae_iwae.py [--model hvae] [--train-minutes 42] [--eval-minutes 15] [--threads 1]
    # the RESULTS.md row (conv ladder VAE, 83.8 nats):
    python benchmarks/nll_hvae_iwae.py --model hvae --arch conv --hidden 32,64 --latent-dim 32 \
        --kl-warmup-steps 4000 --train-minutes 78 --eval-minutes 18 --threads 2 --out benchmarks/runs/nll-hvae-conv
    # a full run (e.g. on a GPU): --train-minutes 600 --eval-minutes 600 --eval-items 10000 --threads 0
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, data_dir, write_result, write_table  # noqa: E402

REFERENCES = "IWAE paper, 2 stochastic layers: VAE 85.33, IWAE k=50 82.90; pythae's IWAE 86.82"
TARGET = 86.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("hvae", "iwae"), default="hvae")
    parser.add_argument("--arch", default="mlp")
    parser.add_argument("--hidden", default="512,256", help="widths (mlp) or channels (conv), comma-separated")
    parser.add_argument("--latent-dim", type=int, default=32, help="units of the lowest stochastic layer")
    parser.add_argument("--layers", type=int, default=2, help="hvae: stochastic layers")
    parser.add_argument("--ladder-width", type=int, default=256, help="hvae: width of the paths between layers")
    parser.add_argument("--iwae-samples", type=int, default=None, help="K of the training bound (default: hvae 1, iwae 5)")
    parser.add_argument("--kl-warmup-steps", type=int, default=0, help="linear KL warm-up from 0 to 1 over this many steps")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-minutes", type=float, default=42.0)
    parser.add_argument("--eval-minutes", type=float, default=15.0)
    parser.add_argument("--samples", type=int, default=1000, help="importance samples K of the NLL estimate")
    parser.add_argument("--eval-items", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: PyTorch's default)")
    parser.add_argument("--accelerator", default="cpu", help="training accelerator (cpu | gpu | auto)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default runs/nll-MODEL)")
    parser.add_argument("--skip-training", action="store_true", help="evaluate an existing --out run")
    return parser.parse_args()


def model_settings(args) -> dict:
    settings = {"iwae_samples": args.iwae_samples or (5 if args.model == "iwae" else 1)}
    if args.kl_warmup_steps:
        settings.update(kl_schedule="linear", kl_warmup_steps=args.kl_warmup_steps)
    if args.model == "hvae":
        settings.update(stochastic_layers=args.layers, ladder_width=args.ladder_width)
    return settings


def steps_in_budget(args, hidden: tuple[int, ...], device: str) -> tuple[int, float]:
    """How many training steps fit in the budget, from timing this model on random binary batches."""
    import torch

    from autoencoders.models import MODELS

    cls = MODELS[args.model]
    config = cls.config_class(input_shape=(1, 28, 28), recon_loss="bce", arch=args.arch, hidden=hidden,
                              latent_dim=args.latent_dim, **model_settings(args))
    model = cls(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    x = torch.rand(args.batch_size, 1, 28, 28, device=device).round()
    for step in range(40):
        if step == 10:
            if device != "cpu":
                torch.cuda.synchronize()
            started = time.perf_counter()
        loss = model.loss(x)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if device != "cpu":
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - started) / 30
    # the trainer adds validation each epoch and logging: keep a tenth of the budget for them
    return max(1, int(0.9 * args.train_minutes * 60 / per_step)), per_step


def main() -> None:
    args = parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import autoencoders
    from autoencoders.io import load, load_run_data

    out = args.out or ROOT / "runs" / f"nll-{args.model}"
    hidden = tuple(int(width) for width in args.hidden.split(","))
    device = "cuda" if args.accelerator in ("gpu", "cuda") or (args.accelerator == "auto" and torch.cuda.is_available()) else "cpu"
    if not args.skip_training:
        max_steps, per_step = steps_in_budget(args, hidden, device)
        print(f"{per_step * 1000:.0f} ms a step: training {max_steps} steps", flush=True)
        seconds = int(args.train_minutes * 60)
        autoencoders.train(
            args.model, "mnist-binary", out, arch=args.arch, hidden=hidden, latent_dim=args.latent_dim,
            batch_size=args.batch_size, max_steps=max_steps, lr=args.lr, seed=0, data_dir=data_dir(), progress=False, overwrite=True,
            settings={
                **model_settings(args),
                "training.lr_schedule": "cosine", "training.log_every": 200, "training.accelerator": args.accelerator,
                "training.max_time": f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}",
            },
        )
    config = json.loads((out / "config.json").read_text())
    training = config["training"]
    model = load(out).to(device).eval()
    test = load_run_data(out, data_dir=data_dir()).test[: args.eval_items]
    torch.manual_seed(0)
    started = time.perf_counter()
    nll_values, elbo_values, layer_kls = [], [], []
    result: dict = {}
    with torch.no_grad():
        for start in range(0, test.shape[0], 100):
            x = test[start : start + 100].to(device)
            nll_values.append(-model.log_marginal_likelihood(x, samples=args.samples, chunk=500).cpu())
            log_px, layer_kl = model.elbo_terms(x)
            elbo_values.append((log_px - layer_kl.sum(dim=1)).cpu())
            layer_kls.append(layer_kl.cpu())
            elapsed = time.perf_counter() - started
            finished = elapsed > args.eval_minutes * 60 or start + 100 >= test.shape[0]
            if len(nll_values) % 5 == 0 or finished:
                result = summarize(args, config, training, nll_values, elbo_values, layer_kls, elapsed)
                result["status"] = "done" if finished else "evaluating"
                write_result(f"nll_{args.model}", result)
                print(f"{result['eval_items']} items: NLL {result['nll_nats']:.2f} ± {result['nll_standard_error']:.2f}", flush=True)
            if finished:
                break
    write_table(f"Binarized MNIST test NLL, {args.model} (benchmarks/nll_hvae_iwae.py)", table(args, config, training, result))
    print(json.dumps({k: result[k] for k in ("nll_nats", "nll_standard_error", "negative_elbo_nats", "eval_items")}))


def summarize(args, config, training, nll_values, elbo_values, layer_kls, eval_seconds) -> dict:
    import torch

    nll = torch.cat(nll_values).double()
    elbo = torch.cat(elbo_values).double()
    return {
        "nll_nats": nll.mean().item(),
        "nll_standard_error": (nll.std() / math.sqrt(len(nll))).item(),
        "negative_elbo_nats": (-elbo).mean().item(),
        "kl_per_layer_nats": torch.cat(layer_kls).double().mean(dim=0).tolist(),
        "samples": args.samples,
        "eval_items": int(len(nll)),
        "eval_seconds": round(eval_seconds, 1),
        "training_seconds": training.get("seconds"),
        "training_steps": training.get("steps_done"),
        "training_max_steps": training.get("max_steps"),
        "training_epochs": training.get("epochs_done"),
        "train_minutes_budget": args.train_minutes,
        "eval_minutes_budget": args.eval_minutes,
        "threads": args.threads,
        "accelerator": args.accelerator,
        "model": config["model"],
        "target": f"<= {TARGET} nats ({REFERENCES})",
    }


def table(args, config, training, result) -> str:
    model = config["model"]["config"]
    if args.model == "hvae":
        sizes = [max(model["latent_dim"] >> layer, 2) for layer in range(model["stochastic_layers"])]
        what = (f"Ladder VAE, {len(sizes)} stochastic layers of {'-'.join(map(str, sizes))} units (precision-weighted merge, "
                f"ladder width {model['ladder_width']})")
    else:
        what = f"IWAE, one stochastic layer of {model['latent_dim']} units"
    warmup = f", KL warm-up over the first {model['kl_warmup_steps']} steps" if model.get("kl_schedule") == "linear" else ""
    kls = ", ".join(f"{value:.1f}" for value in result["kl_per_layer_nats"])
    planned = training.get("max_steps")
    cut_short = (f" of the {planned} planned: stopped by the time limit (the machine was slower than when timed), so the "
                 f"cosine decay had not finished" if planned and training.get("steps_done", 0) < planned else "")
    where = "a GPU" if args.accelerator != "cpu" else f"{args.threads or 'all'} CPU thread(s) of a 2-core machine shared with other jobs"
    return f"""{what}, {model['arch']} networks {'-'.join(map(str, model['hidden']))}, Bernoulli decoder, trained on the
{model['iwae_samples']}-sample bound{' (the ELBO)' if model['iwae_samples'] == 1 else ''}{warmup}; dynamic binarization, Adam {args.lr:g} with cosine decay, batch {args.batch_size}.
Budget: {args.train_minutes:g} min of training + {args.eval_minutes:g} min of evaluation on {where}; training used
{(training.get('seconds') or 0) / 60:.1f} min, {training.get('steps_done')} steps{cut_short} ({training.get('epochs_done')} epochs).
Test: MNIST test images binarized once (seed 0), the first {result['eval_items']} of 10,000 (as many as the evaluation budget allowed).

| metric | value |
| --- | ---: |
| NLL, importance sampling K={args.samples} (nats) | **{result['nll_nats']:.2f}** ± {result['nll_standard_error']:.2f} (s.e.) |
| negative ELBO (nats) | {result['negative_elbo_nats']:.2f} |
| KL per layer, bottom first (nats) | {kls} |
| target | ≤ {TARGET} ({REFERENCES}) |

Evaluation took {result['eval_seconds'] / 60:.1f} min."""


if __name__ == "__main__":
    main()
