"""Data augmentation: labelled synthetic items from a model that generates a chosen class.

Label-generating models are the conditional ones (cvae, aae --supervised) and the semi-supervised aae-semi,
whose categorical code is the class (aae-cluster's categories are unsupervised clusters, not labels). The
classes are balanced: ``n`` items split as evenly as the classes allow. They are written as PNG files in one
folder per class (which ``--data DIR`` reads back with the labels), or as one ``.npz`` with ``x`` and ``y``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def generates_labels(model) -> bool:
    """Whether ``model.sample(n, y)`` draws items of the class ``y`` (not of an unsupervised cluster)."""
    return model.sample_classes > 0 and (model.conditional or model.labelled_items is not None)


def balanced_labels(n: int, classes: list[int]) -> Tensor:
    """``n`` labels over ``classes``, as even as possible (the first classes get one more), in class order."""
    if n < 1 or not classes:
        raise ValueError(f"augmentation needs n >= 1 items and at least one class; got n={n}, classes={classes}")
    counts = [n // len(classes) + (index < n % len(classes)) for index in range(len(classes))]
    return torch.cat([torch.full((count,), label, dtype=torch.long) for label, count in zip(classes, counts)])


def synthesize(
    model, n: int, classes: list[int] | None = None, sampler: str = "prior", train: Tensor | None = None,
    train_labels: Tensor | None = None, components: int = 10, seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """(items, labels): ``n`` class-balanced samples of a label-generating model."""
    from autoencoders.uses.sampling import draw_samples

    if not generates_labels(model):
        raise ValueError(
            f"augmentation needs a model that generates a chosen class: cvae, aae --supervised or aae-semi; "
            f"{model.name} {'draws unsupervised clusters' if model.sample_classes else 'takes no label'}"
        )
    classes = list(range(model.sample_classes)) if classes is None else classes
    wrong = [label for label in classes if not 0 <= label < model.sample_classes]
    if wrong:
        raise ValueError(f"classes must be in 0..{model.sample_classes - 1}; got {wrong}")
    labels = balanced_labels(n, classes)
    return draw_samples(model, n, sampler, labels, train, train_labels, components, seed), labels


def class_folder_names(count: int, names: list[str] | None = None) -> list[str]:
    """Folder names that sort in class order: the dataset's class names where they are safe, else 00, 01, ..."""
    if names and len(names) == count and sorted(names) == names and all(name and "/" not in name for name in names):
        return list(names)
    width = len(str(count - 1))
    return [str(index).zfill(width) for index in range(count)]


def write_augmentation(
    items: Tensor, labels: Tensor, output: str | Path, value_range: tuple[float, float] = (0.0, 1.0),
    class_names: list[str] | None = None, num_classes: int | None = None,
) -> Path:
    """Write labelled items to ``output``: a ``.npz`` (``x`` in the data's range, ``y``) or a folder of class folders."""
    output = Path(output)
    if output.suffix == ".npz":
        output.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(output, x=items.cpu().numpy(), y=labels.cpu().numpy())
        return output
    if output.suffix:
        raise ValueError(f"-o must be a folder (PNG files in class folders) or a .npz file; got {output}")
    if items.dim() != 4 or items.shape[1] not in (1, 3):
        raise ValueError(f"only 1- or 3-channel images can be written as PNG; items have shape {tuple(items.shape[1:])}: use -o FILE.npz")
    from PIL import Image

    low, high = value_range
    pixels = ((items.float() - low) / (high - low)).clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    folders = class_folder_names(num_classes or int(labels.max()) + 1, class_names)
    for index, (image, label) in enumerate(zip(pixels, labels.tolist())):
        folder = output / folders[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(folder / f"{index:06d}.png")
    return output


def augment_run(
    run, n: int, output: str | Path, classes: list[int] | None = None, sampler: str = "prior", components: int = 10,
    seed: int = 0, data_dir=None,
) -> Path:
    """``autoencoders augment``: ``n`` balanced labelled samples of a run folder's model, written to ``output``."""
    from autoencoders.io import load, load_run_data, read_config

    model = load(run)
    train = train_labels = None
    if sampler == "gmm":
        dataset = load_run_data(run, data_dir=data_dir)
        train, train_labels = dataset.train, dataset.train_labels
    items, labels = synthesize(model, n, classes, sampler, train, train_labels, components, seed)
    preprocessing = read_config(run).get("data", {}).get("preprocessing") or {}
    return write_augmentation(
        items, labels, output, tuple(model.config.value_range), preprocessing.get("class_names"), model.sample_classes
    )
