"""Pictures of data, models and runs: image grids, line plots, loss curves and the latent space in 2-D.

Grids of images are ``PIL.Image`` objects with exact pixels (nearest-neighbour upscaling keeps 8x8 digits
crisp); charts are ``matplotlib.figure.Figure`` objects built without pyplot, so no global state and no GUI
backend are involved. ``save_picture`` writes either kind to a PNG file; ``figure_to_png_bytes`` and
``image_to_png_bytes`` give the PNG bytes (for embedding, e.g. in the HTML report).

Array arguments may be torch tensors or numpy arrays.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from PIL import Image, ImageDraw, ImageFont

Picture = Image.Image | Figure

MIN_CELL_PIXELS = 64  # default upscaling makes every image at least this wide, so small items stay visible
MAX_LEGEND_CLASSES = 20  # integer labels with more distinct values get a colorbar instead of a legend
PROJECTIONS = ("pca", "tsne", "umap")
TRAIN_COLOR, VAL_COLOR = "tab:blue", "tab:orange"


# -- helpers ---------------------------------------------------------------------------------------------
def _as_array(values: Any) -> np.ndarray:
    """A numpy array of a tensor or array-like, keeping its dtype."""
    if hasattr(values, "detach"):  # a torch tensor; checked by duck typing so this module needs no torch
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _as_float_array(values: Any) -> np.ndarray:
    return _as_array(values).astype(np.float32, copy=False)


def _looks_like_sequence(item_shape: Sequence[int]) -> bool:
    """A 2-D item whose last axis is a few channels and shorter than the first: (T, C), not (H, W)."""
    return len(item_shape) == 2 and item_shape[1] <= 4 and item_shape[0] > item_shape[1]


def is_image_shape(item_shape: Sequence[int]) -> bool:
    """Whether items of this shape are images: (C, H, W) with 1 (grey) or 3 (RGB) channels."""
    return len(item_shape) == 3 and item_shape[0] in (1, 3)


def _image_batch(images: Any, name: str = "image_grid") -> np.ndarray:
    """Images as a float array (N, H, W, C); raises a ValueError for anything that is not a batch of images."""
    array = _as_float_array(images)
    if array.ndim == 3 and not _looks_like_sequence(array.shape[1:]):
        array = array[:, None]  # (N, H, W): grey images
    if array.ndim != 4 or array.shape[1] not in (1, 3):
        raise ValueError(
            f"{name} takes images of shape (N, C, H, W) with C = 1 (grey) or 3 (RGB), or (N, H, W); got an "
            f"array of shape {tuple(array.shape)}. Tables (N, D) and sequences (N, T, C) are not images: "
            "draw them with line_plot_grid."
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} got no images (an empty batch)")
    return array.transpose(0, 2, 3, 1)


def _to_bytes(values: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Map ``value_range`` linearly onto 0..255; values outside it are clipped, NaN becomes 0."""
    low, high = float(value_range[0]), float(value_range[1])
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low; got {value_range}")
    scaled = np.nan_to_num((values - low) / (high - low) * 255.0, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(scaled, 0.0, 255.0).round().astype(np.uint8)


def _fraction_to_byte(fraction: float) -> int:
    return int(round(min(max(fraction, 0.0), 1.0) * 255))


def _cells(images: Any, value_range: tuple[float, float], scale: int | None, name: str) -> np.ndarray:
    """Images as uint8 cells (N, h, w, C), upscaled by ``scale`` with nearest neighbour."""
    batch = _to_bytes(_image_batch(images, name), value_range)
    if scale is None:
        scale = max(1, math.ceil(MIN_CELL_PIXELS / max(batch.shape[1:3])))
    if scale < 1 or int(scale) != scale:
        raise ValueError(f"scale must be a positive integer; got {scale}")
    return batch.repeat(scale, axis=1).repeat(scale, axis=2)


def _tile(cells: np.ndarray, ncol: int, padding: int, pad_byte: int) -> np.ndarray:
    """Cells (N, h, w, C) in rows of ``ncol``, with ``padding`` pixels around and between them."""
    count, height, width, channels = cells.shape
    nrows = math.ceil(count / ncol)
    grid = np.full(
        (nrows * (height + padding) + padding, ncol * (width + padding) + padding, channels), pad_byte, np.uint8
    )
    for index, cell in enumerate(cells):
        row, column = divmod(index, ncol)
        top, left = padding + row * (height + padding), padding + column * (width + padding)
        grid[top : top + height, left : left + width] = cell
    return grid


def _to_image(grid: np.ndarray) -> Image.Image:
    return Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)


def _label_rows(image: Image.Image, labels: Sequence[str], centres: Sequence[float]) -> Image.Image:
    """Add a white margin on the left with one label per row, centred on the row's vertical position."""
    font = ImageFont.load_default(size=14)
    measure = ImageDraw.Draw(image)
    margin = 12 + max(int(measure.textlength(str(label), font=font)) for label in labels)
    white, black = (255, 0) if image.mode == "L" else ((255, 255, 255), (0, 0, 0))
    labelled = Image.new(image.mode, (image.width + margin, image.height), white)
    labelled.paste(image, (margin, 0))
    draw = ImageDraw.Draw(labelled)
    for label, centre in zip(labels, centres):
        draw.text((margin - 6, centre), str(label), fill=black, font=font, anchor="rm")
    return labelled


# -- image grids -----------------------------------------------------------------------------------------
def image_grid(
    images: Any,
    nrow: int | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    padding: int = 2,
    pad_value: float = 1.0,
    scale: int | None = None,
    row_labels: Sequence[str] | None = None,
) -> Image.Image:
    """A grid of images, ``nrow`` per row (default ceil(sqrt(N))).

    ``images``: (N, C, H, W) with C = 1 (grey, an "L" image) or 3 (RGB), or (N, H, W). Values are mapped from
    ``value_range`` to 0..255 and clipped. ``scale`` upscales each image by an integer factor (nearest
    neighbour); by default each image becomes at least 64 pixels wide. ``padding`` pixels of brightness
    ``pad_value`` (0 black .. 1 white, whatever the value range) surround every image. ``row_labels`` adds a
    margin on the left with one label per grid row.
    """
    cells = _cells(images, value_range, scale, "image_grid")
    ncol = nrow or math.ceil(math.sqrt(len(cells)))
    image = _to_image(_tile(cells, ncol, padding, _fraction_to_byte(pad_value)))
    if row_labels is not None:
        cell_height = cells.shape[1]
        centres = [padding + row * (cell_height + padding) + cell_height / 2 for row in range(len(row_labels))]
        image = _label_rows(image, row_labels, centres)
    return image


def reconstruction_grid(
    inputs: Any,
    reconstructions: Any,
    value_range: tuple[float, float] = (0.0, 1.0),
    nrow: int | None = None,
    padding: int = 2,
    pad_value: float = 1.0,
    scale: int | None = None,
    band: int = 6,
    band_value: float = 0.55,
    row_labels: tuple[str, str] | None = ("input", "reconstruction"),
) -> Image.Image:
    """Inputs above their reconstructions: pairs of rows (a row of inputs, their reconstructions below).

    Item ``i`` sits in pair ``i // nrow``, column ``i % nrow`` (default ``nrow``: min(N, 8)). A grey band of
    ``band`` pixels separates consecutive pairs. ``row_labels`` names the two rows of a pair in a left margin
    (None: no margin). Other arguments as in ``image_grid``.
    """
    input_cells = _cells(inputs, value_range, scale, "reconstruction_grid")
    output_cells = _cells(reconstructions, value_range, scale, "reconstruction_grid")
    if input_cells.shape != output_cells.shape:
        raise ValueError(
            f"inputs and reconstructions must have the same shape; got {tuple(_as_array(inputs).shape)} and "
            f"{tuple(_as_array(reconstructions).shape)}"
        )
    count, cell_height, _, _ = input_cells.shape
    ncol = nrow or min(count, 8)
    pad_byte = _fraction_to_byte(pad_value)
    parts: list[np.ndarray] = []
    centres: list[float] = []
    top = 0
    for start in range(0, count, ncol):
        inputs_row = _tile(input_cells[start : start + ncol], ncol, padding, pad_byte)
        outputs_row = _tile(output_cells[start : start + ncol], ncol, padding, pad_byte)[padding:]
        if parts:
            band_strip = np.full((band, *inputs_row.shape[1:]), _fraction_to_byte(band_value), np.uint8)
            parts.append(band_strip)
            top += band
        centres += [top + padding + cell_height / 2, top + 2 * padding + cell_height * 1.5]
        parts += [inputs_row, outputs_row]
        top += inputs_row.shape[0] + outputs_row.shape[0]
    image = _to_image(np.concatenate(parts, axis=0))
    if row_labels is not None:
        image = _label_rows(image, list(row_labels) * (len(centres) // 2), centres)
    return image


def interpolation_strip(
    frames: Any,
    value_range: tuple[float, float] = (0.0, 1.0),
    padding: int = 2,
    pad_value: float = 1.0,
    scale: int | None = None,
    row_labels: Sequence[str] | None = None,
) -> Image.Image:
    """Interpolations, one per row, left to right: ``frames`` is (rows, steps, C, H, W) or (steps, C, H, W).

    A model's ``interpolate`` returns (steps, rows, ...); pass it transposed (``frames.transpose(0, 1)``).
    """
    array = _as_float_array(frames)
    if array.ndim == 4:
        array = array[None]
    if array.ndim != 5:
        raise ValueError(
            "interpolation_strip takes frames of shape (rows, steps, C, H, W) or (steps, C, H, W); got "
            f"{tuple(array.shape)}. For sequences or tables use line_plot_grid."
        )
    rows, steps = array.shape[:2]
    return image_grid(
        array.reshape(rows * steps, *array.shape[2:]),
        nrow=steps,
        value_range=value_range,
        padding=padding,
        pad_value=pad_value,
        scale=scale,
        row_labels=row_labels,
    )


def latent_traversal_grid(
    frames: Any,
    dims: Sequence[int],
    kl: Sequence[float] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    padding: int = 2,
    scale: int | None = None,
) -> Image.Image:
    """Latent traversals: row r decodes one code with dimension ``dims[r]`` swept left to right, the others fixed.

    ``frames`` is (rows, steps, C, H, W); each row is labelled ``z<dim>``, with its KL in nats when ``kl`` (one
    value per row) is given, so a reader sees which dimensions the model uses.
    """
    labels = [f"z{dim}" if kl is None else f"z{dim}  KL {value:.2f}" for dim, value in zip(dims, kl or [None] * len(dims))]
    array = _as_float_array(frames)
    if array.ndim != 5 or array.shape[0] != len(labels):
        raise ValueError(
            f"latent_traversal_grid takes frames (rows, steps, C, H, W) with one row per entry of dims ({len(labels)}); "
            f"got an array of shape {tuple(array.shape)}"
        )
    return interpolation_strip(array, value_range=value_range, padding=padding, scale=scale, row_labels=labels)


# -- charts ----------------------------------------------------------------------------------------------
def line_plot_grid(
    items: Any,
    overlay: Any = None,
    ncols: int | None = None,
    titles: Sequence[str] | None = None,
    labels: tuple[str, str] = ("input", "reconstruction"),
    channel_names: Sequence[str] | None = None,
    value_range: tuple[float, float] | None = None,
) -> Figure:
    """Small multiples for non-image items: sequences (N, T, C) and vectors or table rows (N, D).

    Each item gets its own axes: one line per channel against time, or a vector's values against the
    feature index. ``overlay`` (same shape, e.g. reconstructions) is drawn dashed on the same axes, named by
    ``labels``. ``value_range`` fixes the y-limits; ``ncols`` defaults to min(N, 4).
    """
    array = _as_float_array(items)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"line_plot_grid takes sequences (N, T, C) or vectors (N, D); got shape {tuple(array.shape)}. "
            "For images use image_grid."
        )
    is_vector = array.ndim == 2
    if is_vector:
        array = array[:, :, None]  # one "channel" over the feature index
    x_label = "feature" if is_vector else "time step"
    marker = "o" if is_vector and array.shape[1] <= 40 else None  # table columns are points, not a curve
    second = None if overlay is None else _as_float_array(overlay).reshape(array.shape)
    count, _, channels = array.shape
    ncols = ncols or min(count, 4)
    nrows = math.ceil(count / ncols)
    figure = Figure(figsize=(2.9 * ncols, 2.1 * nrows + 0.5), layout="constrained")
    axes_grid = figure.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    colors = [f"C{channel % 10}" for channel in range(channels)]
    # one channel: the overlay gets its own colour; several: it shares its channel's colour, dashed
    overlay_colors = ["C1"] if channels == 1 else colors
    for index, axes in enumerate(axes_grid.flat):
        if index >= count:
            axes.set_visible(False)
            continue
        for channel in range(channels):
            axes.plot(array[index, :, channel], color=colors[channel], linewidth=1.2, marker=marker, markersize=3)
            if second is not None:
                axes.plot(second[index, :, channel], color=overlay_colors[channel], linewidth=1.2, linestyle="--",
                          marker="x" if marker else None, markersize=4, alpha=0.8)
        if titles is not None:
            axes.set_title(str(titles[index]), fontsize=9)
        if value_range is not None:
            axes.set_ylim(*value_range)
        axes.grid(alpha=0.3)
        axes.tick_params(labelsize=8)
    for axes in axes_grid[-1]:
        axes.set_xlabel(x_label, fontsize=9)
    handles = []
    if second is not None:
        line_colors = ("C0", "C1") if channels == 1 else ("black", "black")
        handles += [Line2D([], [], color=line_colors[0], label=labels[0]),
                    Line2D([], [], color=line_colors[1], linestyle="--", label=labels[1])]
    if channels > 1:
        names = channel_names or [f"channel {channel}" for channel in range(channels)]
        handles += [Line2D([], [], color=colors[channel], label=str(names[channel])) for channel in range(channels)]
    if handles:
        figure.legend(
            handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=9, frameon=False
        )
    return figure


def _split_metric_column(column: str) -> tuple[str, str, str] | None:
    """``train/kl_step`` -> ("train", "kl", " (per step)"); None for columns that are not train/val terms."""
    split, slash, term = column.partition("/")
    if split not in ("train", "val") or not slash or not term:
        return None
    for suffix, note in (("_step", " (per step)"), ("_epoch", " (epoch mean)")):
        if term.endswith(suffix):
            return split, term.removesuffix(suffix), note
    return split, term, ""


def loss_curves(metrics: Any, title: str | None = None) -> Figure:
    """Training and validation curves from a run's ``metrics.csv`` (a path) or the same table as a DataFrame.

    Lightning's CSVLogger writes sparse rows (each row fills only some columns). Every ``train/<term>`` and
    ``val/<term>`` column is drawn against ``step``, one axes per term with train and val together; the
    y-axis is logarithmic when a term is positive throughout and spans more than a decade.
    """
    import pandas as pd

    table = metrics if isinstance(metrics, pd.DataFrame) else pd.read_csv(metrics)
    if "step" in table:
        steps = pd.to_numeric(table["step"], errors="coerce")
    else:  # a table without steps: plot against the row number
        steps = pd.Series(table.index, index=table.index)
    terms: dict[str, list[tuple[str, str, pd.Series]]] = {}
    for column in table.columns:
        parts = _split_metric_column(str(column))
        if parts is None:
            continue
        split, term, note = parts
        values = pd.to_numeric(table[column], errors="coerce")
        present = values.notna() & steps.notna()
        if present.any():
            series = pd.Series(values[present].to_numpy(), index=steps[present].to_numpy()).sort_index()
            terms.setdefault(term, []).append((split, note, series))
    if not terms:
        raise ValueError("the metrics table has no train/* or val/* values to plot")

    names = sorted(terms, key=lambda name: (name != "loss", list(terms).index(name)))  # the total loss first
    ncols = min(len(names), 3)
    nrows = math.ceil(len(names) / ncols)
    figure = Figure(figsize=(4.4 * ncols, 3.3 * nrows + (0.4 if title else 0)), layout="constrained")
    axes_grid = figure.subplots(nrows, ncols, squeeze=False)
    for axes in axes_grid.flat[len(names):]:
        axes.set_visible(False)
    for name, axes in zip(names, axes_grid.flat):
        _draw_term(axes, name, terms[name])
    if title:
        figure.suptitle(title)
    return figure


def _draw_term(axes: Axes, name: str, curves: list[tuple[str, str, Any]]) -> None:
    all_values = np.concatenate([series.to_numpy() for _, _, series in curves])
    for split, note, series in sorted(curves, key=lambda curve: curve[0] != "train"):
        few_points = len(series) <= 25
        axes.plot(
            series.index, series.to_numpy(), label=split + note,
            color=TRAIN_COLOR if split == "train" else VAL_COLOR,
            marker="o" if few_points else None, markersize=3.5, linewidth=1.4,
        )
    finite = all_values[np.isfinite(all_values)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 10:
        axes.set_yscale("log")
    axes.set_title(name)
    axes.set_xlabel("step")
    axes.set_ylabel(name)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=9)


def _project(codes: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, str, tuple[str, str]]:
    """2-D points for ``codes`` (N, D), a description for the title, and the two axis labels."""
    count, dimensions = codes.shape
    if dimensions == 2:
        return codes, "latent codes (2-D, shown as they are)", ("z[0]", "z[1]")
    if dimensions == 1:  # one coordinate: spread the points vertically at random so their density shows
        jitter = np.random.default_rng(seed).uniform(-1.0, 1.0, count)
        return np.column_stack([codes[:, 0], jitter]), "latent codes (1-D)", ("z[0]", "random jitter")
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed)
        points = pca.fit_transform(codes)
        first, second = pca.explained_variance_ratio_ * 100
        description = f"PCA of {dimensions}-D codes ({first + second:.0f}% of the variance shown)"
        return points, description, (f"PC 1 ({first:.1f}% variance)", f"PC 2 ({second:.1f}% variance)")
    if method == "tsne":
        from sklearn.manifold import TSNE

        if count < 4:
            raise ValueError(f"t-SNE needs at least 4 points; got {count}")
        perplexity = min(30.0, (count - 1) / 3)
        points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(codes)
        return points, f"t-SNE of {dimensions}-D codes (perplexity {perplexity:.0f})", ("t-SNE 1", "t-SNE 2")
    if method == "umap":
        try:
            import umap
        except ImportError as error:
            raise ImportError(
                "the UMAP projection needs the umap-learn package: pip install umap-learn "
                "(or use method='pca' or 'tsne')"
            ) from error
        points = umap.UMAP(n_components=2, random_state=seed).fit_transform(codes)
        return points, f"UMAP of {dimensions}-D codes", ("UMAP 1", "UMAP 2")
    raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")


def latent_scatter(
    codes: Any,
    labels: Any = None,
    method: str = "pca",
    max_points: int = 5000,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    label_name: str | None = None,
    title: str | None = None,
    colormap: str = "viridis",
) -> Figure:
    """Codes (N, latent_dim) in 2-D, coloured by label.

    The projection is the identity for 2-D codes, else PCA, t-SNE or UMAP (``method``; UMAP needs
    umap-learn). At most ``max_points`` codes are drawn, a seeded random subset. Integer labels with at most
    20 values are classes (a legend, named by ``class_names``); other labels (angles, many values) get a
    colorbar in ``colormap`` (a cyclic one such as "hsv" suits angles). Labels with several columns
    (factor indices) colour by the first. ``label_name`` titles the legend or colorbar.
    """
    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
    points = _as_float_array(codes)
    if points.ndim != 2 or points.shape[0] == 0:
        raise ValueError(f"latent_scatter takes codes of shape (N, latent_dim); got {tuple(points.shape)}")
    colors = None if labels is None else _as_array(labels)
    if colors is not None:
        if colors.ndim == 2:
            colors = colors[:, 0]
            label_name = label_name or "factor 0"
        if len(colors) != len(points):
            raise ValueError(f"{len(points)} codes but {len(colors)} labels")
    if len(points) > max_points:
        chosen = np.random.default_rng(seed).choice(len(points), max_points, replace=False)
        points = points[chosen]
        colors = None if colors is None else colors[chosen]

    projected, description, (x_label, y_label) = _project(points, method, seed)
    figure = Figure(figsize=(7.0, 5.6), layout="constrained")
    axes = figure.subplots()
    style = dict(s=float(np.clip(15000 / len(projected), 5, 36)), alpha=0.8, linewidths=0)
    if colors is None:
        axes.scatter(projected[:, 0], projected[:, 1], color=TRAIN_COLOR, **style)
    elif _is_categorical(colors):
        _scatter_classes(axes, projected, colors, class_names, label_name, style)
    else:
        scatter = axes.scatter(projected[:, 0], projected[:, 1], c=colors.astype(float), cmap=colormap, **style)
        figure.colorbar(scatter, ax=axes, label=label_name or "label")
    axes.set_title(title or f"{description}, {len(projected)} points")
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.grid(alpha=0.3)
    return figure


def latent_against_prior(
    codes: Any, prior: Any, labels: Any = None, class_names: Sequence[str] | None = None, seed: int = 0,
    max_points: int = 5000,
) -> Figure:
    """Codes of data (coloured by class) over samples of the prior (grey): does the code match the prior?

    2-D codes are drawn as they are; wider codes are projected on the first two principal axes of the prior
    samples, so the prior's shape is what fixes the view.
    """
    points, prior_points = _as_float_array(codes), _as_float_array(prior)
    rng = np.random.default_rng(seed)
    if len(points) > max_points:
        chosen = rng.choice(len(points), max_points, replace=False)
        points, labels = points[chosen], None if labels is None else _as_array(labels)[chosen]
    if points.shape[1] == 2:
        projected, prior_projected, axis_names = points, prior_points, ("z[0]", "z[1]")
        description = "2-D codes"
    else:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed).fit(prior_points)
        projected, prior_projected = pca.transform(points), pca.transform(prior_points)
        axis_names, description = ("prior PC 1", "prior PC 2"), f"{points.shape[1]}-D codes on the prior's principal axes"
    figure = Figure(figsize=(7.0, 5.6), layout="constrained")
    axes = figure.subplots()
    style = dict(s=float(np.clip(15000 / len(projected), 5, 36)), alpha=0.8, linewidths=0)
    axes.scatter(prior_projected[:, 0], prior_projected[:, 1], color="0.75", s=style["s"], alpha=0.5, linewidths=0)
    colors = None if labels is None else _as_array(labels)
    if colors is not None and _is_categorical(colors):
        _scatter_classes(axes, projected, colors, class_names, "class", style)
    else:
        axes.scatter(projected[:, 0], projected[:, 1], color=TRAIN_COLOR, **style)
    axes.set_title(f"{description}: test items (colour) over prior samples (grey)")
    axes.set_xlabel(axis_names[0])
    axes.set_ylabel(axis_names[1])
    axes.grid(alpha=0.3)
    return figure


def _is_categorical(labels: np.ndarray) -> bool:
    is_discrete = labels.dtype.kind in "biu"
    return is_discrete and len(np.unique(labels)) <= MAX_LEGEND_CLASSES


def _scatter_classes(
    axes: Axes,
    points: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None,
    label_name: str | None,
    style: dict[str, Any],
) -> None:
    """One scatter of all points (classes interleaved, none hidden under another) and a legend of classes."""
    classes = np.unique(labels)
    palette = colormaps["tab10" if len(classes) <= 10 else "tab20"].colors
    colors = list(palette[: len(classes)])
    positions = np.searchsorted(classes, labels)  # 0..K-1, the colour index of each point
    norm = BoundaryNorm(np.arange(-0.5, len(classes) + 0.5), len(classes))
    axes.scatter(points[:, 0], points[:, 1], c=positions, cmap=ListedColormap(colors), norm=norm, **style)

    def name_of(value: Any) -> str:
        if class_names is not None and 0 <= int(value) < len(class_names):
            return str(class_names[int(value)])
        return str(value)

    handles = [
        Line2D([], [], linestyle="", marker="o", markersize=7, color=colors[index], label=name_of(value))
        for index, value in enumerate(classes)
    ]
    axes.legend(handles=handles, title=label_name or "label", loc="center left", bbox_to_anchor=(1.01, 0.5),
                frameon=False, fontsize=9)


def rate_distortion_curves(panels: dict[str, dict[str, list[dict[str, float]]]], rate: str = "bytes_per_item") -> Figure:
    """Quality against size: one row per panel (a dataset), PSNR and SSIM against ``rate``.

    ``panels`` maps a title to curves, each a codec's name and its points: dicts with ``rate`` (bytes per
    item, or ``bits_per_value``), ``psnr`` and, where measured, ``ssim``. A codec with one point (lossless
    PNG) is drawn as a vertical line at its size.
    """
    if not panels or not any(panels.values()):
        raise ValueError("rate_distortion_curves needs at least one curve")
    figure = Figure(figsize=(10, 3.8 * len(panels)), layout="constrained")
    axes_grid = figure.subplots(len(panels), 2, squeeze=False)
    colors = colormaps["tab10"]
    names = list(dict.fromkeys(name for curves in panels.values() for name in curves))
    for row, (title, curves) in zip(axes_grid, panels.items()):
        for axes, quality in zip(row, ("psnr", "ssim")):
            for name, points in curves.items():
                color = colors(names.index(name) % 10)
                points = sorted(points, key=lambda point: point[rate])
                if len(points) == 1 and quality not in points[0]:
                    axes.axvline(points[0][rate], color=color, linestyle=":", label=name)
                    continue
                drawn = [point for point in points if quality in point]
                if drawn:
                    axes.plot([p[rate] for p in drawn], [p[quality] for p in drawn], marker="o", markersize=3.5,
                              color=color, label=name, linewidth=1.4)
            axes.set_xscale("log")
            # plain numbers at 1, 2, 5 x 10^k: the default 10^k labels of minor ticks run into each other
            axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axes.xaxis.set_minor_formatter(NullFormatter())
            axes.set_xlabel("bytes per image" if rate == "bytes_per_item" else rate.replace("_", " "))
            axes.set_ylabel("PSNR (dB)" if quality == "psnr" else "SSIM")
            axes.set_title(f"{title}: {quality.upper()}")
            axes.grid(alpha=0.3, which="both")
        row[0].legend(fontsize=8)
    return figure


def anomaly_score_histogram(scores: Any, threshold: float | None = None, title: str | None = None) -> Figure:
    """The distribution of anomaly scores (higher = more unusual), with the outlier threshold as a line."""
    values = _as_float_array(scores).ravel()
    if values.size == 0:
        raise ValueError("anomaly_score_histogram needs at least one score")
    figure = Figure(figsize=(7, 3.4), layout="constrained")
    axes = figure.subplots()
    axes.hist(values, bins=min(60, max(10, int(math.sqrt(values.size)))), color=TRAIN_COLOR, alpha=0.85)
    if threshold is not None:
        flagged = int((values > threshold).sum())
        axes.axvline(threshold, color="tab:red", linestyle="--", label=f"threshold {threshold:.4g} ({flagged} flagged)")
        axes.legend(fontsize=9)
    axes.set_xlabel("anomaly score")
    axes.set_ylabel("items")
    axes.set_yscale("log")
    axes.set_title(title or f"{values.size} scored items")
    axes.grid(alpha=0.3)
    return figure


# -- output ----------------------------------------------------------------------------------------------
def figure_to_png_bytes(figure: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def image_to_png_bytes(image: Image.Image) -> bytes:
    """The image as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def picture_to_png_bytes(picture: Picture) -> bytes:
    """PNG bytes of either kind of picture."""
    return figure_to_png_bytes(picture) if isinstance(picture, Figure) else image_to_png_bytes(picture)


def save_picture(picture: Picture, path: str | Path) -> Path:
    """Write an image or a figure to ``path`` as PNG (folders are created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(picture_to_png_bytes(picture))
    return path
