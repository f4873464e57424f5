"""Lightning data module over an in-memory ``Dataset``: batches are tensor slices, sharded per process."""

from __future__ import annotations

import lightning.pytorch as pl

from autoencoders.data import Dataset, TensorBatches
from autoencoders.data.batches import SemiSupervisedBatches
from autoencoders.data.splits import balanced_subset


class TensorDataModule(pl.LightningDataModule):
    def __init__(
        self, dataset: Dataset, batch_size: int, seed: int, val_batch_size: int = 1024, labels: bool = True,
        labelled_items: int | None = None,
    ):
        super().__init__()
        self.dataset = dataset
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.seed = seed
        self.labels = labels  # conditional models need y; others skip moving it
        self.labelled_items = labelled_items  # semi-supervised: only this many training items keep their label

    def _batches(self, split: str, batch_size: int, shuffle: bool) -> TensorBatches:
        world_size = self.trainer.world_size if self.trainer else 1
        rank = self.trainer.global_rank if self.trainer else 0
        return TensorBatches(
            self.dataset.split(split),
            self.dataset.labels(split) if self.labels else None,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=False,
            seed=self.seed,
            binarize=self.dataset.binarize_train and split == "train",
            rank=rank,
            world_size=world_size,
        )

    def train_dataloader(self) -> TensorBatches:
        if self.labelled_items is None:
            return self._batches("train", self.batch_size, shuffle=True)
        labels = self.dataset.labels("train")
        if labels is None or self.dataset.num_classes < 2:
            raise ValueError(f"semi-supervised training needs class labels; dataset {self.dataset.name!r} has none")
        return SemiSupervisedBatches(
            self.dataset.split("train"), labels, balanced_subset(labels, self.labelled_items, self.seed),
            labelled_batch_size=self.batch_size, batch_size=self.batch_size, shuffle=True, seed=self.seed,
            binarize=self.dataset.binarize_train, rank=self.trainer.global_rank if self.trainer else 0,
            world_size=self.trainer.world_size if self.trainer else 1,
        )

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val", self.val_batch_size, shuffle=False)
