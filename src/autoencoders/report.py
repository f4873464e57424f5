"""``write_report``: one self-contained HTML page per run, with its pictures also saved as PNG files.

The page opens offline: every picture is embedded as a base64 PNG data URI and the CSS is inline; nothing
is fetched from elsewhere. Sections appear only when the run has what they need: metrics from
``metrics.json``, loss curves from ``metrics.csv``, samples for generative models, pictures of the test
data when the run's dataset can be loaded. Images get image grids; tables and sequences get line plots.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from autoencoders import plots
from autoencoders.progress import track
from autoencoders.uses.detect import DETECTION_FOLDER

REPORT_FILE = "report.html"
PICTURES_FOLDER = "pictures"
INTERPOLATION_STEPS = 10
INTERPOLATION_PAIRS = 4
TRAVERSAL_STEPS = 9  # values per swept code dimension, the middle one 0
LATENT_POINTS = 5000
SAMPLES_PER_CLASS = 8
STYLE_SOURCES = 8
FRAME_SEQUENCES = 4  # sequences of images shown, one row of frames each
MAX_SAMPLED_CLASSES = 20  # conditional models with more classes show the first ones only
TRAINING_KEYS = ("batch_size", "lr", "epochs", "max_steps", "seed", "precision", "patience")


@dataclass
class Section:
    anchor: str  # the element id, also the table-of-contents link target
    title: str
    body: str  # HTML


def write_report(
    run_dir: str | Path,
    data_dir: str | Path | None = None,
    projection: str = "pca",
    n_items: int = 16,
    seed: int = 0,
) -> Path:
    """Write ``run_dir/report.html`` (and ``run_dir/pictures/*.png``); returns the report's path.

    ``projection`` (pca | tsne | umap) draws the latent space; ``n_items`` test items are reconstructed
    (and as many samples drawn); ``seed`` fixes the samples and the latent subset. ``data_dir`` is where the
    run's dataset lives when not where the run recorded it.
    """
    from autoencoders.io import load, read_config

    if projection not in plots.PROJECTIONS:
        raise ValueError(f"unknown projection {projection!r}; choose one of {', '.join(plots.PROJECTIONS)}")
    if projection == "umap" and importlib.util.find_spec("umap") is None:  # fail before the slow work
        raise ImportError(
            "the UMAP projection needs the umap-learn package: pip install umap-learn (or use pca or tsne)"
        )

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    pictures = PictureWriter(run_dir / PICTURES_FOLDER)
    # building the model and the data draws random numbers: the caller's generator state is restored after
    with torch.random.fork_rng(), torch.no_grad():
        model = load(run_dir)
        dataset, data_problem = _load_test_data(run_dir, data_dir)
        torch.manual_seed(seed)  # the same samples every time
        model_sections = _model_sections(model, dataset, projection, n_items, seed, pictures)

    sections = [_header(run_dir, config, model, dataset)]
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        sections.append(_metrics_section(json.loads(metrics_path.read_text())))
    loss_section = _loss_section(run_dir / "metrics.csv", pictures)
    if loss_section is not None:
        sections.append(loss_section)
    if dataset is None:
        sections.append(Section("data", "Test data", f'<p class="note">{html.escape(data_problem)}</p>'))
    sections += model_sections
    rate_distortion_path = run_dir / RATE_DISTORTION_FILE
    if rate_distortion_path.exists():
        sections.append(_rate_distortion_section(json.loads(rate_distortion_path.read_text()), pictures))
    if (run_dir / DETECTION_FOLDER / "summary.json").exists():  # written by `autoencoders detect`
        try:
            sections.append(_anomaly_section(run_dir / DETECTION_FOLDER, model, pictures))
        except (KeyError, TypeError, ValueError, OSError) as error:  # files edited or damaged since detect wrote them
            note = f"{DETECTION_FOLDER}/ could not be read ({type(error).__name__}: {error}); run `autoencoders detect` again."
            sections.append(Section("anomaly", "Anomaly detection", f'<p class="note">{html.escape(note)}</p>'))

    report_path = run_dir / REPORT_FILE
    title = f"{model.name} on {config.get('data', {}).get('name', '?')}"
    report_path.write_text(_page(title, sections), encoding="utf-8")
    return report_path


def _model_sections(
    model, dataset, projection: str, n_items: int, seed: int, pictures: "PictureWriter"
) -> list[Section]:
    """The pictures of what the model does: those on test data only when the data could be loaded."""
    if len(model.config.input_shape) == 4:  # sequences of images (length, C, H, W): rows of frames
        return _frame_sequence_sections(model, dataset, projection, seed, pictures)
    wanted = [
        (dataset is not None, lambda: _reconstruction_section(model, dataset, n_items, pictures)),
        (model.generative, lambda: _samples_section(model, dataset, n_items, pictures)),
        (dataset is not None and len(dataset.test) >= 2, lambda: _interpolation_section(model, dataset, pictures)),
        (dataset is not None, lambda: _latent_section(model, dataset, projection, seed, pictures)),
        (dataset is not None and model.has_code_prior, lambda: _prior_section(model, dataset, seed, pictures)),
        (dataset is not None and _has_traversals(model, dataset), lambda: _traversal_section(model, dataset, pictures)),
        (dataset is not None and model.transfers_style and _is_image_data(dataset),
         lambda: _style_transfer_section(model, dataset, pictures)),
    ]
    builders = [build for chosen, build in wanted if chosen]
    return [build() for build in track(builders, len(builders), "drawing the report's pictures")]


def _frame_sequence_sections(model, dataset, projection: str, seed: int, pictures: "PictureWriter") -> list[Section]:
    """Sequences of images: each sequence one row of frames (moving digits); reconstructions, samples, codes."""
    length, value_range, sections = model.config.input_shape[0], tuple(model.config.value_range), []
    if dataset is not None:
        inputs = dataset.test[:FRAME_SEQUENCES]
        rows = torch.stack([inputs, model.reconstruct(inputs)], 1).flatten(0, 2)  # a sequence, then its reconstruction
        caption = f"The first {len(inputs)} test sequences, one frame per column, each above its reconstruction."
        picture = plots.image_grid(rows, nrow=length, value_range=value_range)
        sections.append(Section("reconstructions", "Reconstructions", pictures.add(picture, "reconstructions", caption, pixelated=True)))
    if model.generative:
        picture = plots.image_grid(model.sample(FRAME_SEQUENCES).flatten(0, 1), nrow=length, value_range=value_range)
        caption = f"{FRAME_SEQUENCES} sequences drawn from the model, one per row."
        sections.append(Section("samples", "Samples", pictures.add(picture, "samples", caption, pixelated=True)))
    if dataset is not None:
        sections.append(_latent_section(model, dataset, projection, seed, pictures))
    return sections


# -- pictures --------------------------------------------------------------------------------------------
class PictureWriter:
    """Saves each picture to ``folder/<name>.png`` and returns the HTML that embeds the same PNG."""

    def __init__(self, folder: Path):
        self.folder = folder

    def add(self, picture: plots.Picture, name: str, caption: str, pixelated: bool = False) -> str:
        png = plots.picture_to_png_bytes(picture)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{name}.png").write_bytes(png)
        source = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        style = ' class="pixels"' if pixelated else ""
        return (
            f'<figure><img{style} src="{source}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)} <span class=\"file\">({PICTURES_FOLDER}/{name}.png)</span>"
            "</figcaption></figure>"
        )


def _is_image_data(dataset) -> bool:
    return plots.is_image_shape(dataset.item_shape)


def _class_name(dataset, label: int) -> str:
    names = getattr(dataset, "class_names", None) if dataset is not None else None
    return str(names[label]) if names and 0 <= label < len(names) else f"class {label}"


def _class_labels(model, labels: Tensor | None) -> Tensor | None:
    """The labels a conditional model takes (None for the others)."""
    return labels if model.conditional else None


def _reconstruction_section(model, dataset, n_items: int, pictures: PictureWriter) -> Section:
    inputs = dataset.test[:n_items]
    labels = None if dataset.test_labels is None else dataset.test_labels[:n_items]
    reconstructions = model.reconstruct(inputs, _class_labels(model, labels))
    value_range = tuple(model.config.value_range)
    if _is_image_data(dataset):
        picture = plots.reconstruction_grid(inputs, reconstructions, value_range=value_range)
        caption = f"The first {len(inputs)} test items (upper row of each pair) and their reconstructions (below)."
    else:
        titles = [f"test item {index}" for index in range(len(inputs))]
        picture = plots.line_plot_grid(inputs, overlay=reconstructions, titles=titles)
        caption = f"The first {len(inputs)} test items (solid) and their reconstructions (dashed)."
    body = pictures.add(picture, "reconstructions", caption, pixelated=_is_image_data(dataset))
    return Section("reconstructions", "Reconstructions", body)


def _samples_section(model, dataset, n_items: int, pictures: PictureWriter) -> Section:
    num_classes = model.sample_classes
    is_image = plots.is_image_shape(model.config.input_shape)
    value_range = tuple(model.config.value_range)
    if num_classes > 0:
        per_class = SAMPLES_PER_CLASS if is_image else 3  # line plots take far more room than images
        classes = range(min(num_classes, MAX_SAMPLED_CLASSES))
        rows = [model.sample(per_class, y=torch.full((per_class,), label, dtype=torch.long)) for label in classes]
        clusters = getattr(model.config, "clusters", None)  # aae-cluster: rows are clusters, not classes
        names = [f"cluster {label}" if clusters else _class_name(dataset, label) for label in classes]
        samples = torch.cat(rows)
        caption = f"{per_class} samples of each class, one class per row."
        if num_classes > MAX_SAMPLED_CLASSES:
            caption += f" The first {MAX_SAMPLED_CLASSES} of {num_classes} classes are shown."
        if is_image:
            picture = plots.image_grid(samples, nrow=per_class, value_range=value_range, row_labels=names)
        else:
            titles = [name for name in names for _ in range(per_class)]
            picture = plots.line_plot_grid(samples, ncols=per_class, titles=titles)
    else:
        samples = model.sample(n_items)
        caption = f"{n_items} samples: codes drawn from the prior, decoded."
        picture = (
            plots.image_grid(samples, value_range=value_range)
            if is_image
            else plots.line_plot_grid(samples, titles=[f"sample {i}" for i in range(n_items)])
        )
    return Section("samples", "Samples", pictures.add(picture, "samples", caption, pixelated=is_image))


def _interpolation_section(model, dataset, pictures: PictureWriter) -> Section:
    pairs = min(INTERPOLATION_PAIRS, len(dataset.test) // 2)
    starts, ends = dataset.test[:pairs], dataset.test[pairs : 2 * pairs]
    labels = dataset.test_labels
    start_labels = None if labels is None else _class_labels(model, labels[:pairs])
    end_labels = None if labels is None else _class_labels(model, labels[pairs : 2 * pairs])
    frames = model.interpolate(starts, ends, INTERPOLATION_STEPS, start_labels, end_labels)  # (steps, pairs, ...)
    frames = frames.transpose(0, 1)  # one row per pair
    if _is_image_data(dataset):
        picture = plots.interpolation_strip(frames, value_range=tuple(model.config.value_range))
        caption = (
            f"Each row decodes {INTERPOLATION_STEPS} evenly spaced points on the line between the codes of two test "
            "items (left: the first item's code, right: the second's)."
        )
    else:
        titles = [f"step {step + 1} of {INTERPOLATION_STEPS}" for step in range(INTERPOLATION_STEPS)]
        picture = plots.line_plot_grid(frames[0], ncols=5, titles=titles)
        caption = (
            f"{INTERPOLATION_STEPS} evenly spaced points on the line between the codes of two test items, decoded "
            "(first panel: the first item's code, last panel: the second's)."
        )
    body = pictures.add(picture, "interpolation", caption, pixelated=_is_image_data(dataset))
    return Section("interpolation", "Interpolation", body)


def _latent_section(model, dataset, projection: str, seed: int, pictures: PictureWriter) -> Section:
    items, labels = dataset.test, dataset.test_labels
    if len(items) > LATENT_POINTS:  # a seeded random subset, so every class shows
        chosen = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))[:LATENT_POINTS]
        items, labels = items[chosen], None if labels is None else labels[chosen]
    codes = model.encode_batches(items, _class_labels(model, labels))
    label_name, class_names = _label_description(dataset, labels)
    is_angle = labels is not None and labels.is_floating_point()
    figure = plots.latent_scatter(
        codes, labels, method=projection, seed=seed, class_names=class_names, label_name=label_name,
        colormap="hsv" if is_angle else "viridis",  # angles wrap around: a cyclic colormap, vivid on white
    )
    caption = f"Codes of {len(items)} test items (the encoder's mean), projected to 2-D"
    caption += f" and coloured by {label_name}." if label_name else "."
    return Section("latent", "Latent space", pictures.add(figure, "latent", caption))


def _prior_section(model, dataset, seed: int, pictures: PictureWriter) -> Section:
    items, labels = dataset.test[:LATENT_POINTS], dataset.test_labels
    labels = None if labels is None else labels[:LATENT_POINTS]
    codes = model.encode_batches(items)
    figure = plots.latent_against_prior(
        codes, model.sample_prior(len(items)), labels, class_names=getattr(dataset, "class_names", None), seed=seed
    )
    caption = (
        f"Codes of {len(items)} test items over as many samples of the {model.config.prior} prior: the discriminator "
        "pushes the codes to fill the prior, so that decoded prior samples look like data."
    )
    return Section("prior", "Latent space against the prior", pictures.add(figure, "prior", caption))


def _has_traversals(model, dataset) -> bool:
    """VAE-family models with one flat Gaussian code, on images: each dimension can be swept under its prior."""
    from autoencoders.models.vae import VAE

    return isinstance(model, VAE) and not model.conditional and model.code_size == model.config.latent_dim and _is_image_data(dataset)


def _traversal_section(model, dataset, pictures: PictureWriter) -> Section:
    from autoencoders.metrics.disentanglement import TRAVERSAL_SPAN, latent_traversals

    frames, dims, kl = latent_traversals(model, dataset.test[0], dataset.test[:LATENT_POINTS], steps=TRAVERSAL_STEPS)
    picture = plots.latent_traversal_grid(frames, dims, kl, value_range=tuple(model.config.value_range))
    caption = (
        f"Latent traversals of the first test item: each row sweeps one code dimension from {-TRAVERSAL_SPAN} to "
        f"{TRAVERSAL_SPAN} (left to right) with the others fixed at the item's code; rows in order of the dimension's "
        "mean KL over the test items (nats), so unused dimensions (KL near 0) come last and change nothing."
    )
    return Section("traversals", "Latent traversals", pictures.add(picture, "traversals", caption, pixelated=True))


def _style_transfer_section(model, dataset, pictures: PictureWriter) -> Section:
    sources = dataset.test[:STYLE_SOURCES]
    classes = torch.arange(model.config.num_classes)
    frames = model.style_transfer(sources, classes)
    grid = torch.cat([sources.unsqueeze(1), frames], dim=1).flatten(0, 1)
    picture = plots.image_grid(grid, nrow=len(classes) + 1, value_range=tuple(model.config.value_range))
    caption = (
        f"Style transfer: each row takes the style code of a test item (left) and decodes it with every label "
        f"({', '.join(_class_name(dataset, int(label)) for label in classes)})."
    )
    return Section("style", "Style transfer", pictures.add(picture, "style_transfer", caption, pixelated=True))


def _label_description(dataset, labels: Tensor | None) -> tuple[str | None, list[str] | None]:
    """What the colours of the latent picture mean, and the class names for its legend."""
    if labels is None:
        return None, None
    if labels.dim() == 2:
        factor_names = getattr(dataset, "factor_names", None)
        return (factor_names[0] if factor_names else "factor 0"), None
    if labels.is_floating_point():  # the datasets' float labels are angles
        return "angle (radians)", None
    return "class", getattr(dataset, "class_names", None)


def _loss_section(metrics_csv: Path, pictures: PictureWriter) -> Section | None:
    if not metrics_csv.exists():
        return None
    try:
        figure = plots.loss_curves(metrics_csv)
    except ValueError:  # no train/val values logged yet (e.g. a run stopped before its first log)
        return None
    caption = "Training and validation loss terms against the training step (log scale where they span over a decade)."
    return Section("loss", "Loss curves", pictures.add(figure, "loss", caption))


RATE_DISTORTION_FILE = "rate_distortion.json"  # written by benchmarks/rate_distortion.py


def _rate_distortion_section(results: dict[str, Any], pictures: PictureWriter) -> Section:
    """Bytes per image against PSNR/SSIM for this model's compressed files and the usual image codecs."""
    curves = results["curves"]
    dataset = str(results.get("dataset", "test set"))
    caption = f"Rate-distortion on the first {results.get('items', '?')} {dataset} test images (log size axis)."
    figure = pictures.add(plots.rate_distortion_curves({dataset: curves}), "rate_distortion", caption)
    header = "<tr><th>codec</th><th>setting</th><th>bytes/image</th><th>PSNR dB</th><th>SSIM</th></tr>"
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(str(point.get('setting', '')))}</td>"
        f"<td>{point['bytes_per_item']:.1f}</td><td>{point.get('psnr', float('inf')):.2f}</td>"
        f"<td>{point.get('ssim', 1.0):.3f}</td></tr>"
        for name, points in curves.items()
        for point in sorted(points, key=lambda point: point["bytes_per_item"])
    )
    note = f'<p class="hint">From {RATE_DISTORTION_FILE} ({html.escape(str(results.get("budget", "")))}).</p>'
    return Section("rate-distortion", "Rate-distortion", figure + f"<table><thead>{header}</thead><tbody>{rows}</tbody></table>" + note)


def _anomaly_section(folder: Path, model, pictures: PictureWriter) -> Section:
    """The last ``detect`` of this run: the histogram of anomaly scores and the most anomalous items."""
    import pandas as pd

    from autoencoders.data.images import read_npy

    summary = json.loads((folder / "summary.json").read_text())
    scores = pd.read_csv(folder / "scores.csv")["anomaly_score"].to_numpy()
    caption = (
        f"Anomaly scores ({summary['score']}) of {summary['items']} items of {summary['data']}; threshold "
        f"{summary['threshold']:.4g} ({summary['threshold_from']}) flags {summary['outliers']}."
    )
    body = pictures.add(plots.anomaly_score_histogram(scores, summary["threshold"]), "anomaly_scores", caption)
    worst_ids, worst_scores = summary["worst_ids"], summary["worst_scores"]
    worst_path = folder / "worst.npy"
    if worst_path.exists() and plots.is_image_shape(model.config.input_shape):
        worst = read_npy(worst_path)  # memory-mapped, no pickle: a crafted header allocates nothing
        grid = plots.image_grid(worst, nrow=min(8, len(worst)), value_range=tuple(model.config.value_range))
        names = ", ".join(f"{item_id} ({score:.3g})" for item_id, score in zip(worst_ids, worst_scores))
        body += pictures.add(grid, "anomaly_worst", f"The most anomalous items, worst first: {names}.", pixelated=True)
    else:
        body += _table([(str(item_id), f"{score:.4g}") for item_id, score in zip(worst_ids, worst_scores)], ("id", "anomaly score"))
    flagged_features = summary.get("flagged_features")  # tables: written by detect when rows were flagged
    if flagged_features:
        note = (f"The columns the {summary['outliers']} flagged rows owe their reconstruction error to: each column's "
                "share of a row's squared error (after the run's scaling), averaged over the flagged rows.")
        body += f'<p class="note">{html.escape(note)}</p>'
        body += _table([(str(entry["feature"]), f"{float(entry['mean_share']):.1%}") for entry in flagged_features],
                       ("feature", "mean share of the error"))
    return Section("anomaly", "Anomaly detection", body)


# -- text sections ---------------------------------------------------------------------------------------
def _load_test_data(run_dir: Path, data_dir: str | Path | None) -> tuple[Any, str]:
    """The run's dataset, or None and why it could not be loaded (the report then shows what it can)."""
    from autoencoders.data.errors import DataError
    from autoencoders.io import ModelFileError, load_run_data

    try:
        return load_run_data(run_dir, data_dir=data_dir), ""
    except (DataError, ModelFileError, FileNotFoundError) as error:
        return None, (
            "The test data could not be loaded, so reconstructions, interpolations and the latent space are left "
            f"out: {error}"
        )


def _format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_format_value(item) for item in value) + ")"
    return str(value)


def _format_seconds(seconds: float) -> str:
    minutes, rest = divmod(float(seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest:.0f} s" if minutes else f"{rest:.1f} s"


def _table(rows: list[tuple[str, str]], header: tuple[str, str] | None = None) -> str:
    head = ""
    if header:
        head = f"<thead><tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr></thead>"
    body = "".join(f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>" for name, value in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _header(run_dir: Path, config: dict[str, Any], model, dataset) -> Section:
    from autoencoders import __version__
    from autoencoders.catalog import MODEL_DESCRIPTIONS

    data = config.get("data", {})
    training = config.get("training", {})
    model_text = f"{model.name}: {MODEL_DESCRIPTIONS[model.name]}" if model.name in MODEL_DESCRIPTIONS else model.name
    data_text = str(data.get("name", "?"))
    if dataset is not None and dataset.description:
        data_text += f": {dataset.description}"
    summary = [("model", model_text), ("dataset", data_text), ("run folder", str(run_dir))]
    if dataset is not None:
        summary.append(("test items", f"{len(dataset.test)} of shape {_format_value(tuple(dataset.item_shape))}"))
    if "steps_done" in training:
        summary.append(("training steps", str(training["steps_done"])))
    if "epochs_done" in training:
        summary.append(("epochs", str(training["epochs_done"])))
    if "seconds" in training:
        summary.append(("training time", _format_seconds(training["seconds"])))
    trained_with = config.get("autoencoders_version", "?")
    summary.append(("autoencoders version", f"{trained_with} (trained), {__version__} (this report)"))

    model_settings = _model_settings(config["model"])
    training_settings = [
        (name, _format_value(training[name])) for name in TRAINING_KEYS if training.get(name) is not None
    ]
    data_settings = [(f"data {name}", _format_value(value)) for name, value in (data.get("options") or {}).items()]
    if data.get("limit") is not None:
        data_settings.append(("data limit", str(data["limit"])))
    body = (
        _table(summary)
        + '<div class="columns">'
        + f"<div><h3>Model settings</h3>{_table(model_settings)}</div>"
        + f"<div><h3>Training settings</h3>{_table(training_settings + data_settings)}</div>"
        + "</div>"
    )
    return Section("header", "Run", body)


# settings read only by some archs (or families): other runs do not list them (an mlp run has no "scales")
ARCH_SETTINGS = {"depth": ("acai",), "scales": ("acai",), "cell": ("rnn", "crnn", "vrnn")}


def _model_settings(model: dict[str, Any]) -> list[tuple[str, str]]:
    """The model's config as table rows, without the network settings that its arch ignores."""
    values = model.get("config", {})
    readers = {values.get("arch"), model.get("name")}
    return [
        (name, _format_value(value)) for name, value in values.items()
        if name not in ARCH_SETTINGS or readers & set(ARCH_SETTINGS[name])
    ]


def _metrics_section(metrics: dict[str, Any]) -> Section:
    from autoencoders.catalog import metric_unit

    def label(name: str) -> str:
        unit, direction = metric_unit(name)
        details = ", ".join(part for part in (unit, direction) if part)
        return f"{name} ({details})" if details else name

    rows = [(label(str(name)), _format_value(value)) for name, value in metrics.items()]
    note = '<p class="hint">From metrics.json (written by autoencoders evaluate); ↑ higher is better, ↓ lower is better.</p>'
    return Section("metrics", "Metrics", _table(rows, header=("metric", "value")) + note)


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 2rem 3rem; }
h1 { font-size: 1.6rem; margin: 0.5rem 0 0.2rem; }
h2 { font-size: 1.25rem; border-bottom: 2px solid #d8dce3; padding-bottom: 0.3rem; margin-top: 0; }
h3 { font-size: 1rem; margin: 1rem 0 0.4rem; }
nav a { margin-right: 1rem; color: #2456a6; text-decoration: none; }
section { background: white; border-radius: 8px; padding: 1.2rem 1.5rem; margin: 1.2rem 0;
          box-shadow: 0 1px 3px rgba(0, 0, 0, 0.08); }
table { border-collapse: collapse; font-size: 0.92rem; }
th, td { text-align: left; padding: 0.25rem 1rem 0.25rem 0; border-bottom: 1px solid #eceef2; vertical-align: top; }
th { font-weight: 600; color: #4a4f59; }
td { font-variant-numeric: tabular-nums; }
.columns { display: flex; flex-wrap: wrap; gap: 2.5rem; }
figure { margin: 0; }
img { max-width: 100%; height: auto; }
img.pixels { image-rendering: pixelated; }
figcaption { color: #4a4f59; font-size: 0.9rem; margin-top: 0.4rem; }
.file { color: #8a8f99; }
.note { color: #8a5a00; }
.hint { color: #6b7280; font-size: 0.9rem; }
"""


def _page(title: str, sections: list[Section]) -> str:
    navigation = " ".join(f'<a href="#{section.anchor}">{html.escape(section.title)}</a>' for section in sections)
    body = "\n".join(
        f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>{section.body}</section>'
        for section in sections
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>{html.escape(title)}</h1>
<nav>{navigation}</nav>
{body}
</main>
</body>
</html>
"""
