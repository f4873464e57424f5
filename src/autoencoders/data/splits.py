"""Deterministic random streams and train/val/test splits.

Each stream is named (e.g. ``("lines", "train", seed)``) and seeded from a hash of its name, so streams are
independent of one another and of how much is drawn from the others. Test sets never depend on the run's
seed: every run of a dataset is evaluated on the same items.
"""

from __future__ import annotations

import hashlib

import torch

from autoencoders.data.errors import DataError


def stream_seed(*name: object) -> int:
    """A 63-bit seed determined by ``name`` alone."""
    digest = hashlib.sha256("|".join(map(str, name)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(*name: object) -> torch.Generator:
    """A CPU generator seeded from ``name`` (see ``stream_seed``)."""
    return torch.Generator().manual_seed(stream_seed(*name))


def resolve_size(size: int | float | None, total: int, default: int | float, what: str) -> int:
    """A split size from a count, a fraction of ``total`` or the default; at least 1 unless 0 is asked for."""
    size = default if size is None else size
    if isinstance(size, float) and not 0.0 <= size < 1.0:
        raise DataError(f"{what} as a fraction must be in [0, 1); got {size}")
    count = max(1, round(size * total)) if isinstance(size, float) and size > 0 else int(size)
    if not 0 <= count < total:
        raise DataError(f"{what} must leave some of the {total} items for training; got {size}")
    return count


def split_off(total: int, size: int, *stream: object) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, taken) index tensors: ``size`` random indices taken out of ``range(total)``, both sorted."""
    order = torch.randperm(total, generator=generator(*stream))
    return order[size:].sort().values, order[:size].sort().values


def carve_validation(
    total: int, seed: int, val_size: int | float | None, default: int | float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices of an official training set: the validation items are picked by ``seed``."""
    return split_off(total, resolve_size(val_size, total, default, "val_size"), "val", seed)


def three_way_split(
    total: int,
    seed: int,
    val_size: int | float | None,
    test_size: int | float | None,
    default_val: int | float = 0.1,
    default_test: int | float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train, val, test) indices of data without an official test set.

    The test items are the same for every seed; the validation items are then picked by ``seed``.
    """
    if total < 3:
        raise DataError(f"need at least 3 items to make train, val and test splits; got {total}")
    rest, test = split_off(total, resolve_size(test_size, total, default_test, "test_size"), "test")
    # a fractional val_size is a fraction of all items, like test_size
    val_count = resolve_size(val_size, total, default_val, "val_size")
    kept, val = split_off(len(rest), min(val_count, len(rest)), "val", seed)
    if len(kept) == 0:
        raise DataError(f"val_size {val_size} and test_size {test_size} leave no training items out of {total}")
    return rest[kept], rest[val], test


def balanced_subset(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """Sorted indices of ``count`` items, as many of each class as possible (classes in turn), picked by ``seed``.

    For semi-supervised training: "100 labels" means 10 items of each of MNIST's 10 classes.
    """
    labels = torch.as_tensor(labels).long()
    classes = labels.unique()
    if not 0 < count <= len(labels):
        raise DataError(f"the labelled subset must hold 1 to {len(labels)} items; got {count}")
    if count < len(classes):
        raise DataError(f"{count} labelled items cannot cover all {len(classes)} classes; ask for at least {len(classes)}")
    order = torch.randperm(len(labels), generator=generator("labelled", seed))
    per_class = [order[labels[order] == label] for label in classes]  # each class's items, in seeded order
    share, extra = divmod(count, len(classes))
    chosen = []
    for index, members in enumerate(per_class):
        wanted = share + (1 if index < extra else 0)
        if len(members) < wanted:
            raise DataError(f"class {int(classes[index])} has {len(members)} items; {wanted} were asked for")
        chosen.append(members[:wanted])
    return torch.cat(chosen).sort().values
