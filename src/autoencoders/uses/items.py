"""Items a command names, and the files it writes them to.

In: test-set indices and image files (``"3,a.png"``), the way `interpolate --from` and `style-transfer --source`
name them. Out: ``write_items`` puts a batch of a model's items where the user asked, as an array (``.npy``), text
(``.txt``, a text model's strings) or a picture (an image grid, or line plots of series and tables).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from autoencoders.errors import InputError
from autoencoders.files import atomic_write_bytes

TEXT_SEPARATOR = "-" * 8  # the line after each string in a .txt of samples (the strings hold newlines of their own)
MAX_GRID_ITEMS = 1024  # a picture of more items is unreadable (and 8602 x 8602 pixels for 10,000 digits): use .npy


def text_alphabet(run: str | Path) -> str | None:
    """The alphabet of a run trained on text (one-hot characters), else None."""
    from autoencoders.io import read_config

    preprocessing = (read_config(run).get("data") or {}).get("preprocessing") or {}
    return preprocessing.get("alphabet") if preprocessing.get("kind") == "characters" else None


def write_items(
    items: Tensor, path: str | Path, value_range: tuple[float, float], nrow: int | None = None, alphabet: str | None = None,
) -> Path:
    """Write ``items`` to ``path`` by its suffix: ``.npy`` (the array), ``.txt`` (a text model's strings, each
    followed by a line ``TEXT_SEPARATOR``) or a picture (an image grid, or line plots of series and vectors).
    ``alphabet``: a text model's characters (``text_alphabet``)."""
    import numpy as np

    from autoencoders import plots

    path = Path(path)
    if path.suffix == ".npy":
        import io

        buffer = io.BytesIO()
        np.save(buffer, items.cpu().numpy())
        atomic_write_bytes(path, buffer.getvalue())
        return path
    if path.suffix == ".txt":
        if alphabet is None:
            raise InputError(f"{path}: .txt is for text models (trained on characters); give a .png or a .npy file")
        from autoencoders.data.sequences import to_text

        atomic_write_bytes(path, "".join(f"{text}\n{TEXT_SEPARATOR}\n" for text in to_text(items.cpu(), alphabet)).encode())
        return path
    if alphabet is not None:
        raise InputError(f"{path}: a text model's items are text; give a .txt (one string per line) or a .npy file")
    if len(items) > MAX_GRID_ITEMS:
        raise InputError(f"{path}: a picture of {len(items)} items is unreadable; picture at most {MAX_GRID_ITEMS}, or write them all to a .npy file")
    path.parent.mkdir(parents=True, exist_ok=True)
    if plots.is_image_shape(tuple(items.shape[1:])):
        plots.image_grid(items, nrow=nrow, value_range=tuple(value_range)).save(path)
    else:  # series (N, T, C) and vectors (N, D)
        plots.save_picture(plots.line_plot_grid(items.cpu(), ncols=nrow, titles=[f"item {i}" for i in range(len(items))]), path)
    return path


def first_test_items(run: str | Path, n: int, data_dir=None) -> tuple[Tensor, Tensor | None]:
    """The run's first ``n`` test items, with their labels when the data has them."""
    from autoencoders.io import load_run_data

    dataset = load_run_data(run, data_dir=data_dir)
    labels = dataset.test_labels
    return dataset.test[:n], None if labels is None else labels[:n]


def chosen_items(
    run: str | Path, model, text: str, option: str, label: int | None = None, data_dir=None, with_labels: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Items named by test-set indices and/or image files ("3", "a.png", "3,a.png"), with their labels when the
    model is conditional and ``with_labels`` (else None); ``option`` names the flag in messages. Image files take
    ``label``."""
    from autoencoders.data.inputs import read_image

    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise InputError(f"{option} names no items; give test-set indices or image files")
    test = labels = None
    if any(part.isdigit() for part in parts):
        from autoencoders.io import load_run_data

        dataset = load_run_data(run, data_dir=data_dir)
        test, labels = dataset.test, dataset.test_labels
    items, item_labels = [], []
    for part in parts:
        if part.isdigit():
            if int(part) >= len(test):
                raise InputError(f"{option}: index {part} is beyond the test set's {len(test)} items")
            items.append(test[int(part)])
            item_labels.append(None if labels is None else labels[int(part)])
        elif Path(part).is_file():
            if len(model.config.input_shape) != 3:
                raise InputError(
                    f"{option}: {part} is a file, but the model takes items of shape {tuple(model.config.input_shape)}, "
                    "not images; give test-set indices"
                )
            items.append(read_image(part, model.config.input_shape, model.config.value_range, resize=True))
            item_labels.append(None if label is None else torch.tensor(label))
        else:
            raise InputError(f"{option}: {part!r} is neither a test-set index nor an image file")
    if not (model.conditional and with_labels):
        return torch.stack(items), None
    if any(value is None for value in item_labels):
        raise InputError(f"this model is conditional: pass --label CLASS for the image files in {option}")
    return torch.stack(items), torch.stack([torch.as_tensor(value) for value in item_labels])


def interpolate_run(
    run: str | Path, pairs: int = 4, steps: int = 10, start: str | None = None, end: str | None = None,
    mode: str = "linear", label: int | None = None, data_dir=None,
) -> Tensor:
    """Frames (pairs, steps, *item) decoded along lines (or arcs, ``mode="slerp"``) between pairs of items: those
    ``start`` and ``end`` name (``chosen_items``), else test items i and ``pairs`` + i."""
    from autoencoders.io import load
    from autoencoders.models.base import INTERPOLATION_MODES

    if mode not in INTERPOLATION_MODES:
        raise InputError(f"--mode must be one of {', '.join(INTERPOLATION_MODES)}; got {mode!r}")
    if (start is None) != (end is None):
        raise InputError("give both --from and --to (or neither, to interpolate between test items)")
    model = load(run)
    if start is None:
        x, y = first_test_items(run, 2 * pairs, data_dir)
        x1, x2 = x[:pairs], x[pairs:]
        y1, y2 = (None, None) if y is None or not model.conditional else (y[:pairs], y[pairs:])
    else:
        x1, y1 = chosen_items(run, model, start, "--from", label, data_dir)
        x2, y2 = chosen_items(run, model, end, "--to", label, data_dir)
        if len(x1) != len(x2):
            raise InputError(f"--from names {len(x1)} item(s) and --to {len(x2)}; give as many of each (one row per pair)")
    return model.interpolate(x1, x2, steps, y1, y2, mode=mode).transpose(0, 1)


def write_interpolations(frames: Tensor, path: str | Path, value_range: tuple[float, float]) -> Path:
    """Frames (pairs, steps, *item) as a ``.npy`` array, or as a picture with one strip per pair (images only)."""
    from autoencoders.plots import interpolation_strip, is_image_shape

    path = Path(path)
    if path.suffix == ".npy":
        return write_items(frames, path, value_range)
    if not is_image_shape(tuple(frames.shape[2:])):
        raise InputError(f"items of shape {tuple(frames.shape[2:])} are not images: write them with -o FILE.npy")
    interpolation_strip(frames, tuple(value_range)).save(path)
    return path
