"""Procedural datasets: ACAI lines, dSprites-style sprites, sine series."""

from __future__ import annotations

import math

import pytest
import torch

from autoencoders.data import DataError, load_dataset
from autoencoders.data.synthetic import (
    SPRITE_FACTOR_NAMES,
    SPRITE_FACTOR_SIZES,
    render_lines,
    render_sprites,
    sample_factors,
)


def _line_geometry(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(direction of the coverage centroid, its distance from the centre, farthest half-covered pixel) per line."""
    coverage = (images[:, 0] + 1) / 2
    offsets = torch.arange(32.0) - 16
    right, up = offsets.view(1, 1, -1), -offsets.view(1, -1, 1)
    total = coverage.sum((1, 2))
    centroid_x, centroid_y = (coverage * right).sum((1, 2)) / total, (coverage * up).sum((1, 2)) / total
    direction = torch.atan2(centroid_y, centroid_x)
    along = right * direction.cos().view(-1, 1, 1) + up * direction.sin().view(-1, 1, 1)
    reach = torch.where(coverage >= 0.5, along, torch.tensor(-100.0)).amax((1, 2))
    return direction, torch.hypot(centroid_x, centroid_y), reach


def test_lines_geometry():
    angles = torch.linspace(0, 2 * math.pi, 721)[:-1]
    images = render_lines(angles)
    assert images.shape == (720, 1, 32, 32) and images.dtype == torch.float32
    assert images.min() == -1.0 and images.max() == 1.0
    direction, centroid_distance, reach = _line_geometry(images)
    error = torch.remainder(direction - angles + math.pi, 2 * math.pi) - math.pi
    assert error.abs().max() < math.radians(1)
    assert torch.all((centroid_distance > 7.0) & (centroid_distance < 8.0))  # half of 15 px
    assert torch.all((reach >= 14.5) & (reach <= 16.0))  # 15 px plus at most the round cap
    # 2 px wide: about two fully covered pixels across the line's middle
    coverage = (images + 1) / 2
    assert torch.all((coverage.sum((1, 2, 3)) / 15 - 2.0).abs() < 0.3)
    # pi/2 points up: rows 16 (the centre) to 1 fully covered, the round caps half covered, nothing below
    column = images[180, 0, :, 16]
    assert torch.all(column[1:17] == 1.0) and column[0] == 0.0 and column[17] == 0.0 and torch.all(column[18:] == -1.0)


def test_lines_dataset_is_seeded():
    first = load_dataset("lines", seed=1, limit=64)
    again, other = load_dataset("lines", seed=1, limit=64), load_dataset("lines", seed=2, limit=64)
    assert first.item_shape == (1, 32, 32) and first.value_range == (-1.0, 1.0) and first.num_classes == 0
    assert torch.equal(first.train, again.train) and torch.equal(first.val_labels, again.val_labels)
    assert not torch.equal(first.train, other.train)
    assert torch.equal(first.test, other.test)  # the test lines do not depend on the seed
    assert torch.equal(render_lines(first.train_labels), first.train)
    assert first.train_labels.dtype == torch.float32 and 0 <= first.train_labels.min() and first.train_labels.max() < 2 * math.pi
    full = load_dataset("lines", train_size=200, test_size=50, val_size=0.25)
    assert (len(full.train), len(full.val), len(full.test)) == (200, 50, 50)
    assert torch.equal(full.train[:64], load_dataset("lines", train_size=200, limit=64).train)


def test_sprites_render_their_factors():
    data = load_dataset("sprites", limit=300)
    assert data.item_shape == (1, 64, 64) and data.binary and data.num_classes == 0
    assert data.factor_names == SPRITE_FACTOR_NAMES and data.factor_sizes == SPRITE_FACTOR_SIZES == [3, 6, 40, 32, 32]
    assert set(data.train.unique().tolist()) == {0.0, 1.0}
    assert data.train_labels.shape == (300, 5) and data.train_labels.dtype == torch.int64
    assert torch.equal(render_sprites(data.train_labels), data.train)
    assert torch.all(data.train.sum((1, 2, 3)) > 20)  # every sprite is visible
    assert torch.equal(data.test, load_dataset("sprites", seed=5, limit=300).test)


def test_sprite_factors_change_what_they_should():
    base = torch.tensor([0, 5, 3, 10, 20])
    variants = base.repeat(3, 1)
    variants[:, 0] = torch.arange(3)
    shapes = render_sprites(variants)
    assert not torch.equal(shapes[0], shapes[1]) and not torch.equal(shapes[1], shapes[2]) and not torch.equal(shapes[0], shapes[2])
    scales = base.repeat(6, 1)
    scales[:, 1] = torch.arange(6)
    areas = render_sprites(scales).sum((1, 2, 3))
    assert torch.all(areas[1:] > areas[:-1])
    # one x step moves the whole sprite one pixel right, one y step one pixel down, even at the borders
    steps = torch.stack([base, base + torch.tensor([0, 0, 0, 1, 0]), base + torch.tensor([0, 0, 0, 0, 1])])
    moved = render_sprites(steps)
    assert torch.equal(moved[1, 0, :, 1:], moved[0, 0, :, :-1]) and torch.equal(moved[2, 0, 1:], moved[0, 0, :-1])
    corners = render_sprites(torch.tensor([[0, 5, 5, 0, 0], [0, 5, 5, 31, 31], [0, 5, 5, 15, 15]]))
    assert corners.sum((1, 2, 3)).unique().numel() == 1  # nothing cut off at the extreme positions
    factors = sample_factors(1000, torch.Generator().manual_seed(0))
    assert torch.all(factors >= 0) and torch.all(factors < torch.tensor(SPRITE_FACTOR_SIZES))
    assert [factors[:, column].unique().numel() for column in range(5)] == SPRITE_FACTOR_SIZES
    with pytest.raises(ValueError, match="indices below"):
        render_sprites(torch.tensor([[3, 0, 0, 0, 0]]))


def test_sine_series():
    data = load_dataset("sine", limit=500)
    assert data.item_shape == (64, 3) and data.train.shape == (500, 64, 3) and data.train_labels is None
    assert data.value_range == (-1.0, 1.0) and -1.0 <= data.train.min() and data.train.max() <= 1.0
    assert 0.3 < data.train.std() < 0.7
    assert torch.equal(data.train, load_dataset("sine", limit=500).train)
    assert not torch.equal(data.train, load_dataset("sine", seed=1, limit=500).train)
    custom = load_dataset("sine", length=16, channels=2, train_size=40, test_size=10, val_size=5)
    assert custom.item_shape == (16, 2) and (len(custom.train), len(custom.val), len(custom.test)) == (40, 5, 10)
    with pytest.raises(DataError, match="accepts train_size, test_size, length, channels"):
        load_dataset("sine", width=3)
