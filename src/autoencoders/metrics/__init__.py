"""``evaluate``: named metrics of a trained model on a dataset split.

Reconstruction metrics (mse, l1, bce, hamming, psnr, ssim) work for every model; likelihood metrics
(nll, neg_elbo, kl) for the VAE family; representation metrics (probe, kmeans) for every model on labelled
data, classification_error and cluster_error for models with a label or cluster head, and cluster_stability
(label-free) for those models on images. Generation metrics
(fid, kid, precision, recall on Inception features; fid_domain, kid_domain, precision_domain, recall_domain and
is on the dataset's classifier) compare model samples (prior or latent-mixture sampler) with as many test items.
Disentanglement metrics (mig, factor-score) score the codes against the known factors of the sprites data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from autoencoders.files import atomic_write_json
from autoencoders.metrics.generation import GENERATION_METRICS
from autoencoders.metrics.disentanglement import DISENTANGLEMENT_METRICS
from autoencoders.metrics.likelihood import LIKELIHOOD_METRICS
from autoencoders.metrics.recon import RECONSTRUCTION_METRICS
from autoencoders.metrics.representation import REPRESENTATION_METRICS
from autoencoders.progress import track

METRICS = {
    **{name: "reconstruction" for name in RECONSTRUCTION_METRICS},
    **{name: "likelihood" for name in LIKELIHOOD_METRICS},
    **{name: "representation" for name in REPRESENTATION_METRICS},  # computed over whole splits
    **{name: "disentanglement" for name in DISENTANGLEMENT_METRICS},  # codes against known factors (sprites)
    **{name: "generation" for name in GENERATION_METRICS},  # model samples against test items
}


def default_metrics(model, item_shape: tuple[int, ...]) -> list[str]:
    names = ["mse", "l1"]
    if model.binary_output:
        names += ["bce", "hamming"]
    if len(item_shape) == 3:
        names += ["psnr", "ssim"]
    if model.has_likelihood:
        names += ["neg_elbo", "kl"]
    if model.classifies and model.labelled_items is not None:  # trained with labels: its predictions are classes
        names.append("classification_error")
    elif model.classifies:  # clusters, matched to classes by the metric
        names.append("cluster_error")
        if len(item_shape) == 3:
            names.append("cluster_stability")
    return names


@torch.no_grad()
def evaluate_model(
    model, dataset, metrics: list[str] | None = None, split: str = "test", samples: int = 1000,
    batch_size: int = 500, seed: int = 0, device: str = "cpu", sampler: str = "prior", generated: int = 10000,
    components: int = 10, data_dir: str | Path | None = None,
) -> dict[str, float]:
    """Mean of each metric over ``split``; returns {metric name: value}.

    Generation metrics compare ``generated`` samples drawn by ``sampler`` (prior | gmm, a ``components``-Gaussian
    mixture fitted on training codes) with as many items of ``split``; with gmm their names end in ``_gmm``.
    """
    metrics = metrics or default_metrics(model, dataset.item_shape)
    unknown = [name for name in metrics if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    torch.manual_seed(seed)
    model = model.to(device).eval()
    results = {name: REPRESENTATION_METRICS[name](model, dataset, split, seed=seed) for name in metrics if METRICS[name] == "representation"}
    results.update({name: DISENTANGLEMENT_METRICS[name](model, dataset, split, seed=seed) for name in metrics if METRICS[name] == "disentanglement"})
    generation = [name for name in metrics if METRICS[name] == "generation"]
    if generation:
        from autoencoders.metrics.generation import generation_metrics

        results.update(generation_metrics(
            model, dataset, generation, split, sampler, generated, components, seed=seed, data_dir=data_dir, device=device,
        ))
    metrics = [name for name in metrics if METRICS[name] not in ("representation", "disentanglement", "generation")]
    x_all, y_all = dataset.split(split), dataset.labels(split) if model.conditional else None
    totals = dict.fromkeys(metrics, 0.0)
    starts = range(0, x_all.shape[0] if metrics else 0, batch_size)
    for start in track(starts, len(starts), f"{', '.join(metrics)} on {x_all.shape[0]} {split} items"):
        x = x_all[start : start + batch_size].to(device)
        y = None if y_all is None else y_all[start : start + batch_size].to(device)
        reconstruction = model.reconstruct(x, y) if any(METRICS[m] == "reconstruction" for m in metrics) else None
        for name in metrics:
            if METRICS[name] == "reconstruction":
                values = RECONSTRUCTION_METRICS[name](x, reconstruction, tuple(model.config.value_range))
            else:
                values = LIKELIHOOD_METRICS[name](model, x, y, samples=samples)
            totals[name] += float(values.double().sum())
    return {**{name: total / x_all.shape[0] for name, total in totals.items()}, **results}


def evaluate(
    run: str | Path, metrics: list[str] | None = None, data: str | None = None, split: str = "test",
    samples: int = 1000, data_dir: str | Path | None = None, limit: int | None = None, save: bool = True,
    sampler: str = "prior", generated: int = 10000, components: int = 10, device: str = "cpu",
) -> dict[str, Any]:
    """Evaluate a run folder on its own dataset (or ``data``) with the model on ``device``; writes ``metrics.json``
    when ``save`` (names prefixed ``val/`` or ``train/`` for those splits).

    Data larger than memory (``Dataset.streamed``) is evaluated as it is read: every metric takes its split batch
    by batch (``evaluate_model``'s loop, the codes of ``encode_batches``), with progress; only per-item results
    (codes, predictions, features) are gathered."""
    from autoencoders.io import load, load_run_data

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but PyTorch sees no CUDA GPU on this machine; use 'cpu'")
    model = load(run)
    dataset = load_run_data(run, data_dir=data_dir, split_limit=limit, data=data)
    if tuple(dataset.item_shape) != tuple(model.config.input_shape):
        raise ValueError(
            f"dataset {dataset.name!r} has items of shape {tuple(dataset.item_shape)} but the model takes "
            f"{tuple(model.config.input_shape)}"
        )
    results = evaluate_model(
        model, dataset, metrics, split=split, samples=samples, sampler=sampler, generated=generated,
        components=components, data_dir=data_dir, device=device,
    )
    if save:
        # another split's numbers are kept apart, so that they never replace or pass for the test split's
        save_metrics(run, results if split == "test" else {f"{split}/{name}": value for name, value in results.items()})
    return results


def save_metrics(run: str | Path, results: dict[str, Any]) -> None:
    """Merge ``results`` into the run's ``metrics.json`` (what the report shows); a damaged file is replaced."""
    import json

    path = (Path(run).parent if Path(run).is_file() else Path(run)) / "metrics.json"  # a run or its weights file
    try:
        previous = json.loads(path.read_text()) if path.is_file() else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        previous = {}
    atomic_write_json(path, {**(previous if isinstance(previous, dict) else {}), **results})
