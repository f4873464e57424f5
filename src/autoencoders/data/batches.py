"""``TensorBatches``: mini-batches sliced from in-memory tensors, reproducible per (seed, epoch) and shardable."""

from __future__ import annotations

import math
from typing import Any, Iterator

import torch

from autoencoders.data.splits import stream_seed


class TensorBatches:
    """An iterable of ``(x_batch, y_batch)`` tuples (``y_batch`` None without labels) over whole tensors.

    Every ``iter()`` is one epoch and advances the epoch counter (``set_epoch`` sets it). The shuffled order is
    ``torch.randperm`` from a generator seeded by (seed, epoch), the same on every process; with
    ``world_size > 1`` each rank takes every ``world_size``-th index of it, after the order is cut to a multiple
    of ``world_size``, so the ranks see disjoint, equal shares (up to ``world_size - 1`` items sit out an epoch,
    different ones each epoch when shuffled). ``binarize`` replaces each x batch by a Bernoulli draw with its
    values as probabilities (dynamic binarization), new every epoch and reproducible by seed. ``state_dict``
    holds the epoch counter so a resumed run continues the same sequence; ``resume_at`` makes the next epoch
    start after the batches a mid-epoch checkpoint had already trained on.

    ``x`` may be ``Rows`` (see ``streaming``) instead of a tensor: batches are then read from its file.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        batch_size: int = 64,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        binarize: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}); got {rank}")
        if y is not None and len(y) != len(x):
            raise ValueError(f"x has {len(x)} items but y has {len(y)}")
        self.x = x.contiguous() if isinstance(x, torch.Tensor) else x
        self.y = None if y is None else y.contiguous()
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.binarize = binarize
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skip = 0  # batches of the next epoch already trained on (a mid-epoch resume)

    def _share(self) -> int:
        """Items this rank sees per epoch."""
        return len(self.x) // self.world_size

    def __len__(self) -> int:
        share = self._share()
        return share // self.batch_size if self.drop_last else math.ceil(share / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` produce epoch ``epoch``."""
        self.epoch = epoch

    def resume_at(self, batches: int) -> None:
        """Make the next ``iter()`` skip its first ``batches`` batches, without reading them."""
        self.skip = batches

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])

    def _order(self, epoch: int) -> torch.Tensor | None:
        """This rank's item indices for ``epoch``, or None when they are simply 0, 1, 2, ... (contiguous slices)."""
        if not self.shuffle and self.world_size == 1:
            return None
        total = len(self.x)
        if self.shuffle:
            order = torch.randperm(total, generator=torch.Generator().manual_seed(stream_seed("order", self.seed, epoch)))
        else:
            order = torch.arange(total)
        return order[: self._share() * self.world_size][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        # A generator: the epoch is read (and advanced) when the first batch is asked for, so an iterator
        # made and dropped unused (Lightning makes one at set-up) does not skip an epoch, and a
        # ``set_epoch`` call before the first batch still counts.
        epoch, self.epoch = self.epoch, self.epoch + 1
        skip, self.skip = self.skip, 0
        order = self._order(epoch)
        draws = None
        if self.binarize:  # each rank draws from its own stream
            draws = torch.Generator().manual_seed(stream_seed("binarize", self.seed, epoch, self.rank))
        for number, start in enumerate(range(0, len(self) * self.batch_size, self.batch_size)):
            if number < skip:
                if draws is not None:  # the skipped batches' draws, so the later ones are those of a straight run
                    torch.bernoulli(torch.zeros(min(self.batch_size, self._share() - start), *self.x.shape[1:]), generator=draws)
                continue
            if order is None:
                x = self.x[start : start + self.batch_size]
                y = None if self.y is None else self.y[start : start + self.batch_size]
            else:
                index = order[start : start + self.batch_size]
                x = self.x.index_select(0, index)
                y = None if self.y is None else self.y.index_select(0, index)
            if draws is not None:
                x = torch.bernoulli(x, generator=draws)
            yield x, y


class SemiSupervisedBatches(TensorBatches):
    """Batches for semi-supervised training: every item unlabelled (y = -1), plus a labelled batch appended.

    Each batch is ``(x, y)`` with the ``batch_size`` usual items (labels hidden) followed by
    ``labelled_batch_size`` items of the labelled subset ``labelled_index`` with their labels, taken in a
    seeded order that is reshuffled whenever the subset is used up, so even 100 labels take part in every
    step. Every rank draws the same labelled items.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, labelled_index: torch.Tensor, labelled_batch_size: int, **options):
        super().__init__(x, torch.full((len(x),), -1, dtype=torch.long), **options)
        self.labelled_x = x.index_select(0, labelled_index)
        self.labelled_y = y.long().index_select(0, labelled_index)
        self.labelled_batch_size = min(labelled_batch_size, len(labelled_index))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        labelled = self._labelled_batches(self.epoch)
        for _ in range(self.skip):  # a mid-epoch resume: the labelled batches the skipped ones took
            next(labelled)
        for (x, y), (labelled_x, labelled_y) in zip(super().__iter__(), labelled):
            yield torch.cat([x, labelled_x]), torch.cat([y, labelled_y])

    def _labelled_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        draws = torch.Generator().manual_seed(stream_seed("labelled-batches", self.seed, epoch))
        count = len(self.labelled_y)
        order, position = torch.randperm(count, generator=draws), 0
        while True:
            if position + self.labelled_batch_size > count:
                order, position = torch.randperm(count, generator=draws), 0
            index = order[position : position + self.labelled_batch_size]
            position += self.labelled_batch_size
            labelled_x = self.labelled_x.index_select(0, index)
            if self.binarize:
                labelled_x = torch.bernoulli(labelled_x, generator=draws)
            yield labelled_x, self.labelled_y.index_select(0, index)
