"""TensorBatches: epochs, determinism, sharding, dynamic binarization, resuming."""

from __future__ import annotations

import pytest
import torch

from autoencoders.data import TensorBatches


def _ids(batches) -> torch.Tensor:
    """The item ids an epoch visits, in order (x holds each item's id)."""
    return torch.cat([x[:, 0] for x, _ in batches]).long()


def test_every_item_once_per_epoch_in_a_new_order():
    x = torch.arange(103.0).view(-1, 1)
    y = torch.arange(103) * 10
    batches = TensorBatches(x, y, batch_size=10, seed=4)
    assert len(batches) == 11
    epochs = []
    for _ in range(3):
        pairs = list(batches)
        assert [len(xb) for xb, _ in pairs] == [10] * 10 + [3]
        assert all(torch.equal(yb, xb[:, 0].long() * 10) for xb, yb in pairs)  # labels travel with their items
        order = _ids(pairs)
        assert torch.equal(order.sort().values, torch.arange(103))
        epochs.append(order)
    assert not torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[1], epochs[2])
    same_seed, other_seed = TensorBatches(x, y, batch_size=10, seed=4), TensorBatches(x, y, batch_size=10, seed=5)
    assert torch.equal(_ids(same_seed), epochs[0]) and torch.equal(_ids(same_seed), epochs[1])
    assert not torch.equal(_ids(other_seed), epochs[0])


def test_unshuffled_drop_last_and_no_labels():
    x = torch.arange(25.0).view(-1, 1)
    plain = list(TensorBatches(x, batch_size=10, shuffle=False))
    assert torch.equal(_ids(plain), torch.arange(25)) and all(yb is None for _, yb in plain)
    dropped = TensorBatches(x, batch_size=10, drop_last=True)
    assert len(dropped) == 2 and [len(xb) for xb, _ in dropped] == [10, 10]


@pytest.mark.parametrize("shuffle", [True, False])
def test_ddp_shards_are_disjoint_and_equal(shuffle):
    x = torch.arange(103.0).view(-1, 1)
    shards = [TensorBatches(x, batch_size=8, shuffle=shuffle, seed=1, rank=rank, world_size=4) for rank in range(4)]
    assert {len(shard) for shard in shards} == {4}  # 25 items each, in batches of 8
    for epoch in range(2):
        seen = [_ids(shard) for shard in shards]
        assert [len(ids) for ids in seen] == [25] * 4
        union = torch.cat(seen)
        assert union.unique().numel() == 100  # disjoint; 3 items sit out this epoch
    with pytest.raises(ValueError, match="rank"):
        TensorBatches(x, rank=4, world_size=4)


def test_dynamic_binarization():
    probabilities = torch.rand(400, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    batches = TensorBatches(probabilities, batch_size=100, shuffle=False, binarize=True, seed=7)
    first, second = torch.cat([x for x, _ in batches]), torch.cat([x for x, _ in batches])
    assert set(first.unique().tolist()) == {0.0, 1.0}
    assert abs(first.mean() - probabilities.mean()) < 0.01
    assert not torch.equal(first, second)  # a new draw every epoch
    assert torch.equal(first, torch.cat([x for x, _ in TensorBatches(probabilities, batch_size=100, shuffle=False, binarize=True, seed=7)]))
    # pixels that are 0 or 1 stay so
    exact = (probabilities > 0.5).float()
    assert torch.equal(torch.cat([x for x, _ in TensorBatches(exact, batch_size=100, binarize=True, shuffle=False)]), exact)


def test_resume_continues_the_same_sequence():
    x = torch.rand(50, 3)
    straight = TensorBatches(x, batch_size=7, seed=3, binarize=True)
    expected = [torch.cat([xb for xb, _ in straight]) for _ in range(4)]
    interrupted = TensorBatches(x, batch_size=7, seed=3, binarize=True)
    for _ in range(2):
        list(interrupted)
    state = interrupted.state_dict()
    assert state == {"epoch": 2}
    resumed = TensorBatches(x, batch_size=7, seed=3, binarize=True)
    resumed.load_state_dict(state)
    assert torch.equal(torch.cat([xb for xb, _ in resumed]), expected[2])
    resumed.set_epoch(1)
    assert torch.equal(torch.cat([xb for xb, _ in resumed]), expected[1])
