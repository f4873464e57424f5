"""Augmentation with generated samples: a small CNN trained on 100 labelled MNIST images, with and without them.

Per seed: the 100 labelled images are a class-balanced subset of the MNIST training split picked by the seed
(10 per digit, the same subset ``aae-semi --labels 100`` uses). Only they are used; no other training image,
labelled or not. Arms, each the same classifier trained for the same number of steps:
- ``100 real``: the 100 images alone.
- ``+ cvae``: plus ``--synthetic`` samples of a conditional VAE trained on those same 100 labelled images
  (MLP 512-256, 8-d code, Bernoulli decoder, ``--cvae-steps`` full batches, Adam 1e-3), written by the library's
  ``augment`` (class-balanced, prior sampler) and read back from its ``.npz``.
- ``+ shifts``: plus as many randomly shifted copies (up to 2 px each way) of the 100 images: the classical
  augmentation a user would otherwise pick.
- ``+ shifts + cvae``: both.
The classifier is LeNet-5 (ReLU, max pooling), Adam 1e-3 with weight decay 5e-4, batches of 128 (all 100
images when alone), ``--classifier-steps`` steps in every arm. Test accuracy on the 10,000 MNIST test images.

    python benchmarks/augmentation.py [--seeds 0,1,2] [--synthetic 1000] [--budget-minutes 25]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, data_dir, write_result, write_table  # noqa: E402

RESULT_NAME = "augmentation"
SECTION = "Augmentation with generated samples, 100 MNIST labels (benchmarks/augmentation.py)"
ARMS = ("100 real", "+ cvae", "+ shifts", "+ shifts + cvae")


def train_cvae(x, y, steps: int, seed: int, folder: Path) -> Path:
    """A conditional VAE on the labelled images only, saved as a model folder for ``augment``."""
    import torch

    from autoencoders.data.batches import TensorBatches
    from autoencoders.models.cvae import CVAE, CVAEConfig

    torch.manual_seed(seed)
    model = CVAE(CVAEConfig(input_shape=(1, 28, 28), latent_dim=8, hidden=(512, 256), recon_loss="bce", num_classes=10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = TensorBatches(x, y, batch_size=len(x), seed=seed)
    model.train()
    step = 0
    while step < steps:
        for items, labels in batches:
            loss = model.loss(items, labels, step)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    model.eval().save_pretrained(folder)
    return folder


def shifted_copies(x, y, count: int, seed: int):
    """``count`` copies of the items, each moved by a random whole-pixel shift of up to 2 px in x and y."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    index = torch.arange(count) % len(x)
    padded = F.pad(x[index], (2, 2, 2, 2))
    dx, dy = torch.randint(0, 5, (2, count), generator=generator)
    rows = (torch.arange(28)[None, :] + dy[:, None])  # (count, 28) source rows of each copy
    cols = (torch.arange(28)[None, :] + dx[:, None])
    shifted = padded[torch.arange(count)[:, None, None], 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)
    return shifted, y[index]


def lenet():
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: the small classifier of the table."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def train_and_test(x, y, test_x, test_y, steps: int, seed: int, batch_size: int = 128) -> float:
    """LeNet-5 trained for ``steps`` seeded mini-batches (Adam 1e-3, weight decay 5e-4); test accuracy."""
    import torch
    import torch.nn.functional as F

    from autoencoders.data.batches import TensorBatches

    torch.manual_seed(seed)
    network = lenet()
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3, weight_decay=5e-4)
    batches = TensorBatches(x, y.long(), batch_size=min(batch_size, len(x)), seed=seed)
    network.train()
    step = 0
    while step < steps:
        for items, labels in batches:
            loss = F.cross_entropy(network(items), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break
    network.eval()
    with torch.no_grad():
        predicted = torch.cat([network(test_x[start : start + 2000]).argmax(1) for start in range(0, len(test_x), 2000)])
    return float((predicted == test_y).float().mean())


def table(results: dict, args) -> str:
    seeds = sorted(results["seeds"], key=int)
    lines = ["| training data | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd |", "|---|" + "---|" * (len(seeds) + 1)]
    for arm in ARMS:
        values = [results["seeds"][s][arm] for s in seeds if arm in results["seeds"][s]]
        if not values:
            continue
        spread = f" ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else ""
        cells = " | ".join(f"{100 * results['seeds'][s][arm]:.2f} %" if arm in results["seeds"][s] else "—" for s in seeds)
        lines.append(f"| {arm} | {cells} | {100 * statistics.mean(values):.2f}{spread} % |")
    return (
        f"Test accuracy (10,000 MNIST test images) of a small CNN trained on 100 labelled images (10 per digit, picked "
        f"by the seed) and nothing else; `+ cvae`: {args.synthetic} class-balanced samples of a cvae trained on those "
        f"same 100 images ({args.cvae_steps} steps), written by `augment`; `+ shifts`: {args.synthetic} copies shifted "
        f"by up to 2 px. LeNet-5, {args.classifier_steps} steps per arm. One CPU thread on a shared 2-core machine, "
        f"{results['wall_minutes']:.1f} min of wall time in all.\n\n" + "\n".join(lines)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--synthetic", type=int, default=1000, help="generated (and shifted) items per arm")
    parser.add_argument("--cvae-steps", type=int, default=2000)
    parser.add_argument("--classifier-steps", type=int, default=400)
    parser.add_argument("--budget-minutes", type=float, default=25.0, help="no new seed starts after this")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from autoencoders.data import load_dataset
    from autoencoders.data.splits import balanced_subset
    from autoencoders.uses.augment import augment_run

    dataset = load_dataset("mnist", data_dir=data_dir())
    # seeds run earlier with the same settings are kept, so seeds can be added in later runs
    same = ("labels", "synthetic", "cvae_steps", "classifier_steps")
    path = ROOT / "results" / f"{RESULT_NAME}.json"
    earlier = json.loads(path.read_text()) if path.exists() else {}
    kept = all(earlier.get("settings", {}).get(key) == getattr(args, key) for key in same)
    results: dict = {"seeds": earlier["seeds"] if kept and "seeds" in earlier else {}, "wall_minutes": 0.0}
    previous_minutes = earlier.get("wall_minutes", 0.0) if kept else 0.0
    for seed in [int(s) for s in args.seeds.split(",")]:
        if time.perf_counter() - started > args.budget_minutes * 60:
            print(f"budget spent: seed {seed} not run", flush=True)
            break
        chosen = balanced_subset(dataset.train_labels, args.labels, seed)
        x, y = dataset.train[chosen], dataset.train_labels[chosen]
        folder = train_cvae(x, y, args.cvae_steps, seed, ROOT / "runs" / f"augmentation-cvae{args.labels}-seed{seed}")
        synthetic_path = augment_run(folder, args.synthetic, folder / "synthetic.npz", seed=seed)
        arrays = np.load(synthetic_path)
        generated_x, generated_y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
        shifted_x, shifted_y = shifted_copies(x, y, args.synthetic, seed)
        training_sets = {
            "100 real": (x, y),
            "+ cvae": (torch.cat([x, generated_x]), torch.cat([y, generated_y])),
            "+ shifts": (torch.cat([x, shifted_x]), torch.cat([y, shifted_y])),
            "+ shifts + cvae": (torch.cat([x, shifted_x, generated_x]), torch.cat([y, shifted_y, generated_y])),
        }
        scores = results["seeds"].setdefault(str(seed), {})
        for arm, (train_x, train_y) in training_sets.items():
            scores[arm] = train_and_test(train_x, train_y, dataset.test, dataset.test_labels, args.classifier_steps, seed)
            results["wall_minutes"] = previous_minutes + (time.perf_counter() - started) / 60
            print(seed, arm, f"{scores[arm]:.4f}", f"{results['wall_minutes']:.1f} min", flush=True)
            write_result(RESULT_NAME, {**results, "settings": vars(args)})
            write_table(SECTION, table(results, args))


if __name__ == "__main__":
    main()
