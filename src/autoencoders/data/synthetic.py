"""Datasets made here, seeded and without downloads: ACAI lines, dSprites-style sprites, sine series, 8x8 digits.

Train and val items come from streams seeded by the run's seed; the test items are the same for every seed.
With ``limit`` only the kept items are rendered, and they are the first items of the full split.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch

from autoencoders.data.registry import DATASETS, Dataset, Request
from autoencoders.data.splits import generator as stream_generator
from autoencoders.data.splits import three_way_split

_CHUNK = 2048  # items rendered at once: bounds the (chunk, H, W) temporaries to a few tens of MB


def _split_sizes(request: Request, train_size: int, test_size: int, default_val: int) -> dict[str, int]:
    """Items per split; a fractional ``val_size`` is a fraction of ``train_size``."""
    val_size = default_val if request.val_size is None else request.val_size
    val = round(val_size * train_size) if isinstance(val_size, float) else int(val_size)
    return {"train": int(train_size), "val": val, "test": int(test_size)}


def _generate(
    request: Request,
    sizes: dict[str, int],
    sample: Callable[[int, torch.Generator], torch.Tensor],
    render: Callable[[torch.Tensor], torch.Tensor],
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """split -> (items, parameters): draw every split's parameters, then render the ones ``limit`` keeps."""
    splits = {}
    for split, size in sizes.items():
        stream = (request.name, split) if split == "test" else (request.name, split, request.seed)
        parameters = sample(size, stream_generator(*stream))[: request.limit]
        splits[split] = (render(parameters), parameters)
    return splits


# ACAI lines: 32x32, a line of length 15 and width 2 from the centre pixel, background -1, line +1.
LINE_IMAGE_SIZE = 32
LINE_LENGTH = 15.0
LINE_WIDTH = 2.0


def render_lines(angles: torch.Tensor) -> torch.Tensor:
    """Antialiased lines at ``angles`` (radians): float32 (N, 1, 32, 32) in [-1, 1].

    The line starts at pixel (16, 16) and ends at column 16 + 15 cos(angle), row 16 - 15 sin(angle): angle 0
    points right, pi/2 up. A pixel's coverage is ``clip(width / 2 + 0.5 - d, 0, 1)`` for the distance ``d``
    from its centre to the segment: a box-filtered line of the given width.
    """
    angles = torch.as_tensor(angles, dtype=torch.float32).reshape(-1, 1, 1)
    offsets = torch.arange(LINE_IMAGE_SIZE, dtype=torch.float32) - LINE_IMAGE_SIZE // 2
    right, up = offsets.view(1, 1, -1), -offsets.view(1, -1, 1)  # pixel centres relative to the start; rows go down
    images = torch.empty(len(angles), 1, LINE_IMAGE_SIZE, LINE_IMAGE_SIZE)
    for start in range(0, len(angles), _CHUNK):
        cos, sin = angles[start : start + _CHUNK].cos(), angles[start : start + _CHUNK].sin()
        along = (right * cos + up * sin).clamp(0.0, LINE_LENGTH)  # closest point of the segment
        distance = torch.hypot(right - along * cos, up - along * sin)
        coverage = (LINE_WIDTH / 2 + 0.5 - distance).clamp_(0.0, 1.0)
        images[start : start + _CHUNK, 0] = coverage * 2.0 - 1.0
    return images


def _uniform_angles(count: int, stream: torch.Generator) -> torch.Tensor:
    return torch.rand(count, generator=stream, dtype=torch.float64).mul_(2 * math.pi).float()


def load_lines(request: Request, train_size: int = 60000, test_size: int = 10000) -> Dataset:
    """ACAI lines; labels are the angles in [0, 2 pi)."""
    splits = _generate(request, _split_sizes(request, train_size, test_size, 5000), _uniform_angles, render_lines)
    return _synthetic_dataset(request, splits, value_range=(-1.0, 1.0))


# dSprites factors: shape, scale, orientation, x position, y position.
SPRITE_IMAGE_SIZE = 64
SPRITE_FACTOR_NAMES = ["shape", "scale", "orientation", "x", "y"]
SPRITE_FACTOR_SIZES = [3, 6, 40, 32, 32]
SPRITE_SHAPES = ["square", "ellipse", "heart"]
_SPRITE_HALF_SIZE = 9.6  # pixels from the centre to the edge of the shape's box at scale 1
_SPRITE_REACH = 14  # template half-width in pixels: the box's half-diagonal (9.6 * sqrt 2) fits inside
_SPRITE_FIRST_PIXEL = 2  # top-left pixel of the template at position 0: sprite centres span pixels 16-47


def sample_factors(count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` uniformly random sprite factor indices: int64 (count, 5) in the order of ``SPRITE_FACTOR_NAMES``."""
    sizes = torch.tensor(SPRITE_FACTOR_SIZES, dtype=torch.float64)
    return (torch.rand(count, len(sizes), generator=generator, dtype=torch.float64) * sizes).long()


def _inside_shape(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Whether sprite-frame points (u right, v down; the shape's box is [-1, 1]^2) are inside the shape."""
    if shape == 0:  # square
        return torch.maximum(u.abs(), v.abs()) <= 1.0
    if shape == 1:  # ellipse, twice as long as wide
        return u.square() + (2.0 * v).square() <= 1.0
    # heart: (x^2 + y^2 - 1)^3 <= x^2 y^3, whose box x in [-1.14, 1.14], y in [-1, 1.25] is fitted into [-1, 1]^2
    x, y = 1.14 * u, 0.125 - 1.125 * v
    return (x.square() + y.square() - 1.0).pow(3) <= x.square() * y.pow(3)


@functools.cache
def _sprite_templates() -> torch.Tensor:
    """Every (shape, scale, orientation) sprite around its centre: float32 (3, 6, 40, 29, 29).

    Positions move sprites in whole-pixel steps, so an image is one of these templates pasted at (x, y).
    """
    offsets = torch.arange(-_SPRITE_REACH, _SPRITE_REACH + 1, dtype=torch.float64)
    dx, dy = offsets.view(1, 1, 1, -1), offsets.view(1, 1, -1, 1)  # from the centre, which lies on a pixel centre
    scale = torch.linspace(0.5, 1.0, SPRITE_FACTOR_SIZES[1], dtype=torch.float64)
    half_size = (_SPRITE_HALF_SIZE * scale).view(-1, 1, 1, 1)
    angle = torch.arange(SPRITE_FACTOR_SIZES[2], dtype=torch.float64) * (2 * math.pi / SPRITE_FACTOR_SIZES[2])
    cos, sin = angle.cos().view(1, -1, 1, 1), angle.sin().view(1, -1, 1, 1)
    u = (dx * cos + dy * sin) / half_size  # rotated into the sprite's frame: (scale, orientation, 29, 29)
    v = (dy * cos - dx * sin) / half_size
    return torch.stack([_inside_shape(shape, u, v) for shape in range(len(SPRITE_SHAPES))]).float()


def render_sprites(factors: torch.Tensor) -> torch.Tensor:
    """Binary sprites from factor indices (N, 5) (see ``sample_factors``): float32 (N, 1, 64, 64) of 0 and 1.

    scale is linear in [0.5, 1]; orientation takes 40 steps of 2 pi / 40; x and y move the centre in whole-pixel
    steps over the central 32 pixels (x rightward, y downward). A pixel is on when its centre lies inside.
    """
    factors = torch.as_tensor(factors, dtype=torch.int64).reshape(-1, len(SPRITE_FACTOR_SIZES))
    if len(factors) and ((factors < 0).any() or (factors >= torch.tensor(SPRITE_FACTOR_SIZES)).any()):
        raise ValueError(f"sprite factors must be indices below {SPRITE_FACTOR_SIZES} ({SPRITE_FACTOR_NAMES})")
    shape, scale, orientation, x, y = factors.unbind(1)
    window = torch.arange(2 * _SPRITE_REACH + 1)
    rows = (_SPRITE_FIRST_PIXEL + y).view(-1, 1, 1) + window.view(1, -1, 1)
    columns = (_SPRITE_FIRST_PIXEL + x).view(-1, 1, 1) + window.view(1, 1, -1)
    images = torch.zeros(len(factors), SPRITE_IMAGE_SIZE, SPRITE_IMAGE_SIZE)
    images[torch.arange(len(factors)).view(-1, 1, 1), rows, columns] = _sprite_templates()[shape, scale, orientation]
    return images.unsqueeze(1)


def load_sprites(request: Request, train_size: int = 50000, test_size: int = 5000) -> Dataset:
    """dSprites-style sprites from random factors; labels are the factor indices (N, 5)."""
    splits = _generate(request, _split_sizes(request, train_size, test_size, 5000), sample_factors, render_sprites)
    return _synthetic_dataset(
        request, splits, value_range=(0.0, 1.0), binary=True,
        factor_names=list(SPRITE_FACTOR_NAMES), factor_sizes=list(SPRITE_FACTOR_SIZES),
    )


# Sine series: each item sums 3 sines whose frequencies all its channels share, with per-channel phases and
# amplitudes summing to 0.8, plus N(0, 0.05^2) noise, clipped to [-1, 1] (reached about once per 10^4 values).
_SINE_COMPONENTS = 3
_SINE_PEAK = 0.8
_SINE_NOISE = 0.05


def sample_sines(
    count: int, length: int, channels: int, generator: torch.Generator | None = None, steps: torch.Tensor | None = None
) -> torch.Tensor:
    """``count`` random multivariate series: float32 (count, length, channels) in [-1, 1].

    ``steps`` (count, length) is the time of every value in steps, 0, 1, ..., length - 1 by default; a warped
    time (same generator state) gives the same series with its frequencies changed where the warp is.
    """
    shape = (count, 1, channels, _SINE_COMPONENTS)
    cycles = 1.0 + 7.0 * torch.rand(count, 1, 1, _SINE_COMPONENTS, generator=generator)  # 1-8 per series
    phase = 2 * math.pi * torch.rand(shape, generator=generator)
    amplitude = 0.2 + 0.8 * torch.rand(shape, generator=generator)
    amplitude = amplitude * (_SINE_PEAK / amplitude.sum(-1, keepdim=True))
    steps = torch.arange(length, dtype=torch.float32).expand(count, length) if steps is None else steps
    time = (steps / length).view(count, length, 1, 1)
    series = (amplitude * torch.sin(2 * math.pi * cycles * time + phase)).sum(-1)
    noise = _SINE_NOISE * torch.randn(series.shape, generator=generator)
    return (series + noise).clamp_(-1.0, 1.0)


def load_sine(
    request: Request, train_size: int = 10000, test_size: int = 2000, length: int = 64, channels: int = 3
) -> Dataset:
    """Sine series of shape (length, channels), values in [-1, 1]; no labels."""
    sizes = _split_sizes(request, train_size, test_size, 1000)
    def sample(count: int, stream: torch.Generator) -> torch.Tensor:
        return sample_sines(count, length, channels, stream)

    splits = _generate(request, sizes, sample, lambda series: series)  # the series need no rendering
    return _synthetic_dataset(request, splits, labelled=False, value_range=(-1.0, 1.0))


def _synthetic_dataset(
    request: Request, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], labelled: bool = True, **fields
) -> Dataset:
    """A Dataset of generated splits, labelled by their generating parameters unless ``labelled`` is False."""
    labels = {split: parameters if labelled else None for split, (_, parameters) in splits.items()}
    return Dataset(
        name=request.name,
        train=splits["train"][0], val=splits["val"][0], test=splits["test"][0],
        train_labels=labels["train"], val_labels=labels["val"], test_labels=labels["test"],
        item_shape=tuple(splits["train"][0].shape[1:]),
        num_classes=0,
        description=DATASETS[request.name].description,
        **fields,
    )


def load_digits(request: Request) -> Dataset:
    """scikit-learn's 8x8 digits as (1, 8, 8) in [0, 1]; 70/10/20% train/val/test (the test split fixed)."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = torch.from_numpy(digits.images).float().div_(16.0).unsqueeze(1)
    labels = torch.from_numpy(digits.target).long()
    train, val, test = three_way_split(len(images), request.seed, request.val_size, None, default_val=0.1, default_test=0.2)
    return Dataset(
        name=request.name,
        train=images[train], val=images[val], test=images[test],
        train_labels=labels[train], val_labels=labels[val], test_labels=labels[test],
        item_shape=(1, 8, 8),
        value_range=(0.0, 1.0),
        num_classes=10,
        description=DATASETS["digits"].description,
        class_names=[str(digit) for digit in range(10)],
    )
