"""One-class anomaly detection: MNIST and Fashion-MNIST, against what a user would otherwise pick.

Images: for each class, the detector is fitted on that class of the training set (train + val splits) and
scores the whole test set; the other nine classes are the anomalies. AUROC per class and its mean, for the
library's ``AnomalyDetector`` (per class, one trained autoencoder for each of ``--networks``: an MLP and a
convolutional one by default; their reconstruction, latent and RaPP scores, sums of them, an ensemble of
both networks, and the self-supervised rotation score alone and added to the conv network's latent sum) and,
in the same run on the same data, PCA reconstruction error (32 components) and IsolationForest on the pixels. Tables (the
breast-cancer data among them) are measured by benchmarks/anomaly_tables.py.

CPU budget: one thread; ``--budget-minutes`` (default 80) stops the run, whatever is done being written
(results/anomaly_one_class.json and the RESULTS.md section after every class).
``--merge`` keeps the saved datasets a run leaves out, so that the two datasets can run side by side:

    ... anomaly_one_class.py --datasets mnist --merge  &  ... anomaly_one_class.py --datasets fashion-mnist --merge

    AUTOENCODERS_DATA=../shared/data .venv/bin/python benchmarks/anomaly_one_class.py [--networks mlp:512-256-128,conv:32-64]
        [--latent-dim 32] [--steps 3000] [--datasets mnist,fashion-mnist] [--classes 0,1,...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, data_dir, write_result, write_table  # noqa: E402

NAME = "anomaly_one_class"
SECTION = "Appendix: One-class anomaly detection, every score and class (benchmarks/anomaly_one_class.py)"
ISSUE_TARGETS = {"mnist": 0.98, "fashion-mnist": 0.95}
ENSEMBLE_NAME = "ensemble"
MEASURED_IN_ISSUE = {"mnist": {"pca": 0.955, "iforest": 0.856}, "fashion-mnist": {"pca": 0.905, "iforest": 0.920}}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="mnist,fashion-mnist")
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--model", default="ae")
    parser.add_argument("--networks", default="mlp:512-256-128,conv:32-64",
                        help="one autoencoder per class for each ARCH:WIDTHS (widths of an mlp, channels of a conv)")
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3000, help="training batches per class")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--neighbors", type=int, default=5)
    parser.add_argument("--latent-distance", default=SUMMED_DISTANCES,
                        help="the latent distances of the extra latent column and of the ensemble's latent part")
    parser.add_argument("--pool", type=int, default=4, help="recon score: error average-pooled over pool x pool patches")
    parser.add_argument("--components", type=int, default=256, help="rapp score: principal directions of the differences")
    parser.add_argument("--budget-minutes", type=float, default=80.0, help="wall-clock limit of the whole run")
    parser.add_argument("--merge", action="store_true",
                        help="keep the saved results of the datasets this run leaves out, e.g. to run "
                             "--datasets mnist and --datasets fashion-mnist side by side")
    return parser.parse_args()


def baselines(train: np.ndarray, test: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Anomaly scores (higher = more anomalous) of PCA reconstruction error and IsolationForest."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest

    pca = PCA(n_components=32, random_state=seed).fit(train)
    pca_error = ((test - pca.inverse_transform(pca.transform(test))) ** 2).sum(axis=1)
    forest = IsolationForest(random_state=seed).fit(train)
    return {"pca": pca_error, "iforest": -forest.score_samples(test)}


def networks(spec: str) -> list[tuple[str, tuple[int, ...]]]:
    """``--networks`` as (arch, widths) pairs: "mlp:512-256-128,conv:32-64"."""
    pairs = [network.split(":") for network in spec.split(",")]
    return [(arch, tuple(int(width) for width in widths.split("-"))) for arch, widths in pairs]


# the columns of one network (each score alone, or the standardized sum of its parts); "latent" is the kNN distance,
# MULTI_LATENT the sum of the --latent-distance distances (an extra detector on the same network)
NETWORK_SCORES = (("recon",), ("latent",), ("rapp",), ("recon", "rapp"), ("latent", "recon"))
SUMMED_DISTANCES = "knn+whitened+cosine"
MULTI_LATENT = "latent sum"
# across networks: (arch, part) pairs joined by AnomalyEnsemble (each standardized by the fitted items' scores, summed)
ENSEMBLE = (("mlp", "rapp"), ("conv", MULTI_LATENT))
# the self-supervised rotation score, its predictor of this network's architecture; alone and added to its latent sum
ROTATION_NETWORK = "conv"


def autoencoder_scores(train, test, args) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Scores of one autoencoder per network trained on ``train``: each part and sums of parts; and an ensemble."""
    from autoencoders import AnomalyDetector, AnomalyEnsemble

    scores, seconds, models, parts = {}, {}, {}, {}
    scoring = {"pool": args.pool, "neighbors": args.neighbors, "components": args.components}
    for arch, hidden in networks(args.networks):
        started = time.perf_counter()
        detector = AnomalyDetector(
            args.model, scores="recon+latent+rapp", **scoring,
            arch=arch, hidden=hidden, latent_dim=args.latent_dim, max_steps=args.steps, batch_size=args.batch_size,
        ).fit(train)
        seconds[arch] = round(time.perf_counter() - started, 1)
        models[arch], parts[arch] = detector.model_, detector.part_scores(test)
        for combination in NETWORK_SCORES:
            scores[f"{arch} {'+'.join(combination)}"] = detector.combine({part: parts[arch][part] for part in combination})
        summed = AnomalyDetector(detector.model_, scores="latent", latent_distance=args.latent_distance, **scoring).fit(train)
        parts[arch][MULTI_LATENT] = scores[f"{arch} {MULTI_LATENT}"] = summed.anomaly_score(test)
    if all(arch in models for arch, _ in ENSEMBLE):
        # the library's ensemble on the networks trained above; the test items' parts are already scored
        ensemble = AnomalyEnsemble([
            AnomalyDetector(models[arch], scores="latent", latent_distance=args.latent_distance, **scoring) if part == MULTI_LATENT
            else AnomalyDetector(models[arch], scores=part, **scoring)
            for arch, part in ENSEMBLE
        ]).fit(train)
        scores[ENSEMBLE_NAME] = ensemble.combine([parts[arch][part] for arch, part in ENSEMBLE])
    if ROTATION_NETWORK in models:
        started = time.perf_counter()
        rotation = AnomalyDetector(
            models[ROTATION_NETWORK], scores="latent+rotation", latent_distance=args.latent_distance, **scoring,
            max_steps=args.steps, batch_size=args.batch_size,
        ).fit(train)
        seconds["rotation"] = round(time.perf_counter() - started, 1)
        rotation_parts = rotation.part_scores(test)
        scores["rotation"] = rotation_parts["rotation"]
        scores[f"{ROTATION_NETWORK} {MULTI_LATENT}+rotation"] = rotation.combine(rotation_parts)
    return scores, seconds


def image_benchmark(args, deadline: float, results: dict) -> None:
    """Classes in turn, each on every dataset: a run cut short by the budget still covers all datasets alike."""
    import torch

    from autoencoders.data import load_dataset
    from autoencoders.uses.anomaly import auroc

    data = {}
    for name in args.datasets.split(","):
        dataset = load_dataset(name, data_dir=data_dir())
        data[name] = (
            torch.cat([dataset.train, dataset.val]), torch.cat([dataset.train_labels, dataset.val_labels]),
            dataset.test, dataset.test_labels.numpy(),
        )
        results["images"][name] = {}
    for label in (int(part) for part in args.classes.split(",")):
        for name, (items, labels, test, test_labels) in data.items():
            if time.time() > deadline:
                print(f"budget spent: {name} class {label} and later not run", flush=True)
                return
            started = time.perf_counter()
            train = items[labels == label]
            scores = baselines(train.flatten(1).numpy(), test.flatten(1).numpy())
            baseline_seconds = time.perf_counter() - started
            ae_scores, ae_seconds = autoencoder_scores(train, test, args)
            scores.update(ae_scores)
            results["images"][name][str(label)] = entry = {
                "auroc": {method: round(auroc(values, test_labels != label), 4) for method, values in scores.items()},
                "train_items": len(train), "ae_fit_seconds": ae_seconds,
                "seconds": round(time.perf_counter() - started, 1), "baseline_seconds": round(baseline_seconds, 1),
            }
            print(name, label, entry, flush=True)
            results["wall_minutes"] = round((time.time() - results["started"]) / 60, 1)
            save(results)


def save(results: dict) -> None:
    if results["settings"].get("merge"):
        results = merged_with_saved(results)
    write_result(NAME, results)
    write_table(SECTION, markdown(results))


def merged_with_saved(results: dict) -> dict:
    """``results`` plus the saved datasets it does not cover; the saved file is read anew each
    time, so that two runs on different datasets, side by side, keep each other's classes."""
    path = RESULTS / f"{NAME}.json"
    if not path.exists():
        return results
    saved = json.loads(path.read_text())
    merged = {**results, "images": {**saved.get("images", {}), **results["images"]}}
    merged["settings"] = {**results["settings"], "datasets": ",".join(merged["images"])}
    return merged


def markdown(results: dict) -> str:
    settings = results["settings"]
    described = ", ".join(f"{arch} {'-'.join(map(str, hidden))}" for arch, hidden in networks(settings["networks"]))
    lines = [
        f"`benchmarks/anomaly_one_class.py` — one class of the training set is normal, the whole test set is "
        f"scored, the other classes are the anomalies. Autoencoders: `{settings['model']}`, one per class for each "
        f"network ({described}; "
        f"latent {settings['latent_dim']}, {settings['steps']} steps of {settings['batch_size']} per class), scores "
        f"`recon` (mean squared error, pooled over {settings['pool']}x{settings['pool']} patches), `latent` (mean distance "
        f"to the {settings['neighbors']} nearest training codes), `{MULTI_LATENT}` (latent distances "
        f"{settings.get('latent_distance', SUMMED_DISTANCES)} to the {settings['neighbors']} nearest training codes, each "
        f"standardized by its scores on the fitted items and summed; whitened: after whitening the codes), `rapp` (RaPP's NAP: hidden-layer differences between "
        f"an image and its reconstruction, whitened along {settings['components']} principal directions); a+b is the sum "
        f"of the parts, each standardized by its scores on the fitted items, and {ENSEMBLE_NAME} is such a sum across "
        f"networks: {' + '.join(f'{arch} {part}' for arch, part in ENSEMBLE)}. `rotation` is the self-supervised score "
        f"(a network of the {ROTATION_NETWORK} encoder's architecture, trained {settings['steps']} steps on the class to "
        f"tell which of four quarter-turns an image was given; -log p of the right turn, summed over the turns), "
        f"alone and added to {ROTATION_NETWORK} {MULTI_LATENT} (`AnomalyDetector(scores=\"latent+rotation\")`). CPU budget: 1 thread on a 2-core "
        f"machine shared with other jobs, "
        + (f"one run per dataset side by side (--merge), each ≤ {settings['budget_minutes']:g} min wall (the last "
           f"written took {results.get('wall_minutes', '?')} min)." if settings.get("merge") else
           f"whole run ≤ {settings['budget_minutes']:g} min wall ({results.get('wall_minutes', '?')} min used)."),
        "",
    ]
    for name, per_class in results["images"].items():
        if not per_class:
            continue
        methods = list(next(iter(per_class.values()))["auroc"])
        lines += [f"**{name}** (target mean ≥ {ISSUE_TARGETS.get(name, '?')})", ""]
        lines.append("| class | " + " | ".join(methods) + " | fit s (each network, then rotation) |")
        lines.append("|---|" + "---|" * (len(methods) + 1))
        for label, entry in per_class.items():
            best = max(entry["auroc"].values())
            cells = [f"**{value:.3f}**" if value == best else f"{value:.3f}" for value in entry["auroc"].values()]
            fit_seconds = " + ".join(f"{value:.0f}" for value in entry["ae_fit_seconds"].values())
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {fit_seconds} |")
        means = {method: np.mean([entry["auroc"][method] for entry in per_class.values()]) for method in methods}
        lines.append(f"| mean of {len(per_class)} | " + " | ".join(f"{means[m]:.3f}" for m in methods) + " | |")
        ours = [method for method in methods if method not in ("pca", "iforest")]
        headline = max(ours, key=means.get)  # the best mean of the library's scores
        wins = sum(
            entry["auroc"][headline] > max(entry["auroc"]["pca"], entry["auroc"]["iforest"])
            for entry in per_class.values()
        )
        reference = MEASURED_IN_ISSUE.get(name, {})
        lines += [
            "",
            f"{headline} beats both baselines on {wins} of {len(per_class)} classes. "
            f"Issue's earlier measurement: PCA {reference.get('pca', '?')}, IsolationForest {reference.get('iforest', '?')}.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    import torch

    args = parse_args()
    torch.set_num_threads(1)
    started = time.time()
    deadline = started + 60 * args.budget_minutes
    results = {"settings": vars(args), "images": {}, "started": started}
    image_benchmark(args, deadline, results)
    results["wall_minutes"] = round((time.time() - started) / 60, 1)
    save(results)


if __name__ == "__main__":
    main()
