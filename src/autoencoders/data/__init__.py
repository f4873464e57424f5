"""Datasets for autoencoders: registered sets (downloaded or made here) and the user's own files.

    from autoencoders.data import load_dataset
    data = load_dataset("mnist", limit=1000)
    for x, y in data.batches("train", batch_size=128):
        ...

Importing this package does not import torch; ``TensorBatches`` (which does) loads on first use.
"""

from __future__ import annotations

from typing import Any

from autoencoders.data.errors import DataError
from autoencoders.data.registry import DATASETS, Dataset, DatasetSpec, dataset_status, load_dataset

__all__ = ["DATASETS", "DataError", "Dataset", "DatasetSpec", "TensorBatches", "dataset_status", "load_dataset"]


def __getattr__(name: str) -> Any:
    if name == "TensorBatches":
        from autoencoders.data.batches import TensorBatches

        return TensorBatches
    raise AttributeError(f"module 'autoencoders.data' has no attribute {name!r}")
