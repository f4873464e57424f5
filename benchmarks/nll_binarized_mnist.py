"""Test NLL of a convolutional VAE on binarized MNIST, by importance sampling.

Training: conv VAE (stride-2 convs 32-64 channels, latent 32, Bernoulli decoder) on MNIST with dynamic
binarization (a fresh Bernoulli draw of every training image each epoch), Adam 1e-3 with cosine decay,
batch 128, at most ``--budget-minutes`` of wall-clock training on the CPU (Lightning's max_time stops it).
Test set: the 10,000 MNIST test images binarized once with seed 0. NLL: -log p(x) estimated with K
importance samples from q(z|x) (K=1000 by default), averaged over ``--eval-items`` test images.

    python benchmarks/nll_binarized_mnist.py [--budget-minutes 30] [--epochs 120] [--samples 1000] [--eval-items 10000]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-minutes", type=float, default=30.0)
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--eval-items", type=int, default=10000)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "nll-conv-vae")
    parser.add_argument("--skip-training", action="store_true", help="evaluate an existing --out run")
    args = parser.parse_args()

    import torch

    import autoencoders
    from autoencoders.io import load, load_run_data

    if not args.skip_training:
        minutes = int(args.budget_minutes)
        autoencoders.train(
            "vae", "mnist-binary", args.out, arch="conv", hidden=(32, 64), latent_dim=32, batch_size=128,
            epochs=args.epochs, lr=1e-3, seed=0, data_dir=data_dir(), progress=False, overwrite=True,
            settings={"training.lr_schedule": "cosine", "training.max_time": f"00:{minutes // 60:02d}:{minutes % 60:02d}:00",
                      "training.log_every": 100},
        )
    config = json.loads((args.out / "config.json").read_text())
    model = load(args.out)
    dataset = load_run_data(args.out, data_dir=data_dir())
    test = dataset.test[: args.eval_items]
    torch.manual_seed(0)
    started = time.perf_counter()
    nll_values, elbo_values = [], []
    with torch.no_grad():
        for start in range(0, test.shape[0], 100):
            x = test[start : start + 100]
            nll_values.append(-model.log_marginal_likelihood(x, samples=args.samples, chunk=250))
            elbo_values.append(model.log_importance_weights(x, samples=1)[0])
            done = start + x.shape[0]
            if done % 1000 == 0:
                print(f"{done} items: NLL {torch.cat(nll_values).mean():.2f}", flush=True)
    nll = torch.cat(nll_values).double()
    elbo = torch.cat(elbo_values).double()
    eval_seconds = time.perf_counter() - started
    training = config["training"]
    result = {
        "nll_nats": nll.mean().item(),
        "nll_standard_error": (nll.std() / math.sqrt(len(nll))).item(),
        "negative_elbo_nats": (-elbo).mean().item(),
        "samples": args.samples,
        "eval_items": int(len(nll)),
        "eval_seconds": eval_seconds,
        "training_seconds": training.get("seconds"),
        "training_steps": training.get("steps_done"),
        "training_epochs": training.get("epochs_done"),
        "budget_minutes": args.budget_minutes,
        "model": config["model"],
        "target": "<= 89.8 nats (pythae's reproduced VAE: 89.78)",
    }
    write_result("nll_binarized_mnist", result)
    write_table(
        "Binarized MNIST test NLL, conv VAE (benchmarks/nll_binarized_mnist.py)",
        f"""Conv VAE (stride-2 convs 32-64, latent 32, Bernoulli decoder), dynamic binarization in training, Adam 1e-3
cosine, batch 128. Budget: {args.budget_minutes:.0f} minutes of training on 2 CPU cores; used
{training.get('seconds', 0) / 60:.1f} min, {training.get('steps_done')} steps ({training.get('epochs_done')} epochs).
Test: MNIST test images binarized once (seed 0), first {len(nll)} of 10,000.

| metric | value |
| --- | ---: |
| NLL, importance sampling K={args.samples} (nats) | **{nll.mean():.2f}** ± {result['nll_standard_error']:.2f} (s.e.) |
| negative ELBO (nats) | {(-elbo).mean():.2f} |
| target | ≤ 89.8 (pythae's reproduced VAE: 89.78) |

Evaluation took {eval_seconds / 60:.1f} min.""",
    )
    print(json.dumps({k: result[k] for k in ("nll_nats", "nll_standard_error", "negative_elbo_nats", "eval_items")}))


if __name__ == "__main__":
    main()
