"""VQ-VAE on MNIST: reconstruction MSE against latent bits, codebook usage, and prior samples a classifier is sure of.

Issue targets: the lowest reconstruction MSE of all models at an equal or smaller number of latent bits;
codebook usage ≥ 90 %; ≥ 80 % of the prior's samples labelled with ≥ 90 % confidence by a digit classifier
trained on MNIST (the library's domain classifier, ``autoencoders.metrics.classifier``).

Budget: the VQ-VAE's autoencoder and each baseline train for --ae-steps; the prior then trains on the fixed
codes until --prior-steps or the VQ-VAE run's wall-clock cap (the budget less --reserve-minutes kept for
sampling, evaluation and the baselines), whichever comes first; the steps it got are reported.

Bits: the VQ-VAE stores H·W codes of log2(K) bits each. The continuous models (ae, vae posterior mean) are
given d = floor(bits / 32) latent floats, each counted at 32 bits (float32), so their codes take at most as
many bits as the VQ-VAE's; ``--baseline-dims`` adds larger d for context. Every model is trained here, in the
same run, with the same batch size and learning rate; the VQ-VAE's autoencoder gets the same number of steps
as each baseline, then its prior trains on the fixed codes.

Run (1 thread, in the background; each training run has a hard wall-clock cap from --budget-minutes):
    AUTOENCODERS_DATA=/work/shared/data .venv/bin/python benchmarks/vqvae_mnist.py --budget-minutes 40
The CPU section of RESULTS.md (the settings are also in results/vqvae_mnist.json):
    ... benchmarks/vqvae_mnist.py --ae-steps 1500 --prior-steps 40000 --prior-layers 8 --prior-channels 64 \
        --lr-schedule cosine --samples 3000 --temperatures 1.0,0.7,0.5 --budget-minutes 85 --reserve-minutes 13
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, data_dir, training_device, write_result, write_table  # noqa: E402

DEFAULT_NAME = "vqvae_mnist"


def section(name: str) -> str:
    return "VQ-VAE on MNIST (benchmarks/vqvae_mnist.py" + ("" if name == DEFAULT_NAME else f" --name {name}") + ")"


def picture_prefix(name: str) -> str:
    return "vqvae" if name == DEFAULT_NAME else name


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ae-steps", type=int, default=400, help="autoencoder steps, VQ-VAE and each baseline")
    parser.add_argument("--prior-steps", type=int, default=5000, help="most PixelCNN prior steps after the autoencoder")
    parser.add_argument("--codebook-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=16, help="size of each codebook vector")
    parser.add_argument("--hidden", default="16,32", help="VQ-VAE channels per stride-2 stage (2 stages: 7x7 grid)")
    parser.add_argument("--prior-channels", type=int, default=32)
    parser.add_argument("--prior-layers", type=int, default=4)
    parser.add_argument("--baseline-dims", default="", help="extra latent sizes for ae/vae beyond floor(bits/32)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-schedule", default="constant", choices=("constant", "cosine"),
                        help="cosine: decay to zero over both phases, so the prior ends at a small learning rate")
    parser.add_argument("--samples", type=int, default=200, help="prior samples judged by the classifier")
    parser.add_argument("--temperatures", default="1.0,0.7", help="sampling temperatures to report")
    parser.add_argument("--classifier-epochs", type=int, default=3)
    parser.add_argument("--budget-minutes", type=float, default=40.0, help="hard cap on the whole script's wall time")
    parser.add_argument("--reserve-minutes", type=float, default=16.0, help="budget kept after the VQ-VAE run")
    parser.add_argument("--sampling-minutes", type=float, default=4.0, help="budget kept for the prior samples")
    parser.add_argument("--reuse", action="store_true", help="evaluate finished runs in --runs again, not retrain them")
    parser.add_argument("--baselines", default="ae,vae", help="continuous models to compare with")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", default="/tmp/vqvae_mnist_runs", help="where the run folders go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table-only", action="store_true", help="rewrite the RESULTS.md table from the saved JSON")
    parser.add_argument("--name", default=DEFAULT_NAME, help="results JSON, pictures and RESULTS.md section of this run")
    return parser.parse_args()


def max_time(seconds: float) -> str:
    seconds = max(int(seconds), 60)
    return f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def main() -> None:
    args = parse_args()
    if args.table_only:
        write_table(section(args.name), table(json.loads((RESULTS / f"{args.name}.json").read_text()), args.name))
        return
    import torch

    torch.set_num_threads(args.threads)
    from autoencoders import train
    from autoencoders.data import load_dataset
    from autoencoders.io import load, read_config
    from autoencoders.metrics import evaluate_model
    from autoencoders.metrics.classifier import confident_fraction, domain_classifier
    from autoencoders.plots import image_grid

    started = time.perf_counter()
    deadline = started + 60 * args.budget_minutes

    def left() -> float:
        return deadline - time.perf_counter()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    result: dict = {"settings": vars(args), "device": training_device(), "models": {}}

    def save() -> None:
        result["wall_minutes"] = round((time.perf_counter() - started) / 60, 2)
        write_result(args.name, result)

    dataset = load_dataset("mnist", data_dir=data_dir(), seed=args.seed)
    hidden = tuple(int(c) for c in args.hidden.split(","))
    runs = Path(args.runs)
    common = {"training.progress": False, "training.log_every": 100, "training.val_batch_size": 1000}

    # 1. the VQ-VAE: autoencoder phase then prior phase, one run (or a finished one again, with --reuse)
    run = runs / "vqvae"
    if args.reuse and (run / "model.safetensors").exists():
        seconds = read_config(run)["training"]["seconds"]
        result["reused_minutes"] = seconds / 60
    else:
        tick = time.perf_counter()
        train(
            "vqvae", "mnist", run, latent_dim=args.latent_dim, hidden=hidden, batch_size=args.batch_size,
            max_steps=args.ae_steps + args.prior_steps, lr=args.lr, seed=args.seed, data_dir=data_dir(), overwrite=True,
            settings={
                **common, "codebook_size": args.codebook_size, "prior_start": args.ae_steps,
                "prior_channels": args.prior_channels, "prior_layers": args.prior_layers,
                "training.lr_schedule": args.lr_schedule, "training.max_time": max_time(left() - 60 * args.reserve_minutes),
            },
        )
        seconds = time.perf_counter() - tick
    model = load(run, device=device)
    grid, bits = model.grid, model.bits_per_item
    steps = read_config(run)["training"]["steps_done"]
    with torch.no_grad():
        codes = torch.cat([model.encode(dataset.test[i : i + 1000].to(device)).cpu() for i in range(0, len(dataset.test), 1000)])
    counts = torch.bincount(codes.flatten(), minlength=args.codebook_size).double()
    frequencies = counts / counts.sum()
    entry = {
        "bits": bits, "grid": list(grid), "codebook_size": args.codebook_size, "train_minutes": round(seconds / 60, 2),
        "steps_done": steps, "autoencoder_steps": min(steps, args.ae_steps), "prior_steps": int(model.prior_steps),
        "mse": evaluate_model(model, dataset, ["mse"], device=device)["mse"],
        "codebook_usage": float((counts > 0).double().mean()),
        "perplexity": float(torch.exp(-(frequencies[frequencies > 0] * frequencies[frequencies > 0].log()).sum())),
        "samples": {},
    }
    result["models"]["vqvae"] = entry
    print("vqvae", entry, flush=True)
    save()

    # 2. continuous baselines with at most as many bits, each with an equal share of the budget left for them
    dims = [int(bits // 32)] + [int(d) for d in args.baseline_dims.split(",") if d]
    baselines = [(name, d) for d in dims for name in args.baselines.split(",")]
    for index, (name, d) in enumerate(baselines):
        tick = time.perf_counter()
        baseline = runs / f"{name}-{d}"
        share = (left() - 60 * args.sampling_minutes) / (len(baselines) - index) - 30
        if args.reuse and (baseline / "model.safetensors").exists():
            minutes = read_config(baseline)["training"]["seconds"] / 60
            result.setdefault("reused_minutes", 0.0)
            result["reused_minutes"] += minutes
        elif share < 60:
            result["models"][f"{name}-{d}"] = {"skipped": "the wall-clock budget was spent"}
            save()
            continue
        else:
            train(
                name, "mnist", baseline, arch="conv", latent_dim=d, batch_size=args.batch_size,
                max_steps=args.ae_steps, lr=args.lr, seed=args.seed, data_dir=data_dir(), overwrite=True,
                settings={**common, "training.max_time": max_time(share)},
            )
            minutes = (time.perf_counter() - tick) / 60
        result["models"][f"{name}-{d}"] = {
            "bits": 32 * d, "latent_dim": d, "train_minutes": round(minutes, 2),
            "steps_done": read_config(baseline)["training"]["steps_done"],
            "mse": evaluate_model(load(baseline), dataset, ["mse"])["mse"],
        }
        print(name, d, result["models"][f"{name}-{d}"], flush=True)
        save()

    # 3. prior samples judged by a digit classifier (trained on its first use, then loaded from the cache)
    tick = time.perf_counter()
    classifier = domain_classifier("mnist", data_dir(), epochs=args.classifier_epochs, seed=args.seed)
    result["classifier"] = {
        "test_accuracy": classifier.info.get("test_accuracy"), "training_seconds": classifier.info.get("training_seconds"),
        "epochs": classifier.info.get("epochs"), "seconds_here": round(time.perf_counter() - tick, 1),
    }
    print("classifier", result["classifier"], flush=True)
    entry["test_confident_fraction"] = confident_fraction(classifier, dataset.test, 0.9)  # the judge on real digits
    torch.manual_seed(args.seed)
    temperatures = [float(t) for t in args.temperatures.split(",")] if int(model.prior_steps) else []
    for temperature in temperatures:
        tick = time.perf_counter()
        samples = torch.cat([
            model.sample(min(250, args.samples - i), temperature=temperature).cpu() for i in range(0, args.samples, 250)
        ])
        with torch.no_grad():
            predicted = classifier.logits(samples).argmax(1)
        entry["samples"][str(temperature)] = {
            "confident_fraction": confident_fraction(classifier, samples, 0.9),
            "class_histogram": torch.bincount(predicted, minlength=10).tolist(),
            "seconds": round(time.perf_counter() - tick, 1),
        }
        picture = RESULTS / f"{picture_prefix(args.name)}_prior_samples_t{temperature:g}.png"
        image_grid(samples[:100], nrow=10).save(picture)
        print("samples", temperature, entry["samples"][str(temperature)], flush=True)
        save()
    save()
    write_table(section(args.name), table(result, args.name))


def table(result: dict, result_name: str) -> str:
    models, settings = result["models"], result["settings"]
    vq = models["vqvae"]
    rows = ["| model | latent | bits per image | test MSE | training | steps |", "|---|---|---:|---:|---|---:|"]
    trained = {name: entry for name, entry in models.items() if "mse" in entry}
    best = min(entry["mse"] for name, entry in trained.items() if entry["bits"] <= vq["bits"])
    for name, entry in trained.items():
        latent = (
            f"{entry['grid'][0]}x{entry['grid'][1]} codes, K={entry['codebook_size']}" if name == "vqvae"
            else f"{entry['latent_dim']} float32"
        )
        mse = f"{entry['mse']:.5f}"
        mse = f"**{mse}**" if entry["mse"] == best and entry["bits"] <= vq["bits"] else mse
        steps = f"{vq['autoencoder_steps']} + {vq['prior_steps']} prior" if name == "vqvae" else str(entry["steps_done"])
        rows.append(f"| {name} | {latent} | {entry['bits']:.0f} | {mse} | {entry['train_minutes']:.1f} min | {steps} |")
    for name, entry in models.items():
        if "skipped" in entry:
            rows.append(f"| {name} | | | {entry['skipped']} | | |")
    samples = "\n".join(
        f"| {t} | {s['confident_fraction'] * 100:.1f} % | {s['class_histogram']} |" for t, s in vq["samples"].items()
    )
    classifier = result["classifier"]
    total = result["wall_minutes"] + result.get("reused_minutes", 0.0)
    split = (
        f", of which {result['reused_minutes']:.1f} min training runs of an earlier invocation, evaluated with --reuse"
        if "reused_minutes" in result else ""
    )
    return f"""
MNIST test set (10,000 images), one seed, batch {settings['batch_size']}, Adam {settings['lr']} ({settings.get('lr_schedule', 'constant')} learning rate), {settings['ae_steps']}
autoencoder steps for every model, trained on {result.get('device', '1 CPU thread of a shared 2-core machine')}, each training run with a hard
wall-clock cap (budget {settings['budget_minutes']:.0f} min; it took {total:.1f} min{split}).{result.get('note', '')} Bits per image: the VQ-VAE
stores {vq['grid'][0]}·{vq['grid'][1]} codes of log2({vq['codebook_size']}) bits; the continuous models are counted at
32 bits per latent float (ae: the code; vae: the posterior mean). Bold: lowest MSE at ≤ the VQ-VAE's bits.

{chr(10).join(rows)}

Codebook usage on the test set: **{vq['codebook_usage'] * 100:.1f} %** of {vq['codebook_size']} entries (target
≥ 90 %), code perplexity {vq['perplexity']:.1f}.

Prior samples ({settings['samples']} per temperature, gated PixelCNN, {settings['prior_layers']} layers of
{settings['prior_channels']} channels, {vq['prior_steps']} steps on the fixed codes) that the MNIST domain classifier
(test accuracy {classifier['test_accuracy'] * 100:.2f} %, {classifier['epochs']} epochs) labels with ≥ 90 % confidence
(target ≥ 80 %; the same classifier on real test digits: {vq['test_confident_fraction'] * 100:.1f} %):

| temperature | confident | predicted classes 0-9 |
|---|---:|---|
{samples}

![prior samples, temperature 1](results/{picture_prefix(result_name)}_prior_samples_t1.png)
"""


if __name__ == "__main__":
    main()
