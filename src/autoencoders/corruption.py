"""Input corruption: the noises of the denoising models and the random moves of images.

Noises (the DAE and the denoising VAE share them): Gaussian noise scaled to the data's value range, masking
(values set to the range's low end), or salt-and-pepper (values set to either end), each hitting a ``level``
fraction of the values.

Random moves (the semi-supervised AAE's label augmentations and the categorical AAEs' consistency): each image
shifted by a few pixels, turned by a few degrees and resized a little, each by its own random amount, with
uncovered pixels set to the background.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# -- noises ---------------------------------------------------------------------------------------------
NOISES = ("gaussian", "masking", "salt-and-pepper")


def check_noise(noise: str, level: float) -> None:
    if noise not in NOISES:
        raise ValueError(f"unknown noise {noise!r}; choose one of {', '.join(NOISES)}")
    if level < 0 or (noise != "gaussian" and level > 1):
        raise ValueError(
            f"noise_level must be a standard deviation >= 0 (gaussian) or a fraction in [0, 1] (masking, "
            f"salt-and-pepper); got {level} for {noise}"
        )


def corrupt(x: Tensor, noise: str, level: float, value_range: tuple[float, float]) -> Tensor:
    """A corrupted copy of ``x``: std ``level`` × range (gaussian) or a ``level`` fraction of values hit."""
    low, high = value_range
    if noise == "gaussian":
        return x + level * (high - low) * torch.randn_like(x)
    hit = torch.rand_like(x) < level
    if noise == "masking":
        return torch.where(hit, torch.full_like(x, low), x)
    salt = torch.rand_like(x) < 0.5
    return torch.where(hit, torch.where(salt, torch.full_like(x, high), torch.full_like(x, low)), x)


# -- random moves of images -----------------------------------------------------------------------------
def check_resize_bound(name: str, scale: float) -> None:
    """A random resize's bound: the factor is drawn within 1 ± ``scale``, so it must stay in [0, 1)."""
    if not 0 <= scale < 1:
        raise ValueError(f"{name} is a largest relative change of size in [0, 1), e.g. 0.1; got {scale}")


def random_shift(x: Tensor, pixels: int, fill: float) -> Tensor:
    """Each image of ``x`` (N, C, H, W) moved by its own random offset of up to ``pixels`` in each direction.

    Uncovered pixels take ``fill`` (the background). The usual augmentation for a classifier that sees few
    labelled digits: the same digit a pixel or two aside is still the same digit.
    """
    n, _, height, width = x.shape
    padded = F.pad(x, (pixels, pixels, pixels, pixels), value=fill)
    offsets = torch.randint(2 * pixels + 1, (2, n, 1), device=x.device)
    rows = (offsets[0] + torch.arange(height, device=x.device))[:, None, :, None]  # (N, 1, H, 1)
    cols = (offsets[1] + torch.arange(width, device=x.device))[:, None, None, :]  # (N, 1, 1, W)
    items = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[items, channels, rows, cols]


def random_rotate_scale(x: Tensor, degrees: float, scale: float, fill: float) -> Tensor:
    """Each image of ``x`` (N, C, H, W) turned by its own random angle in [-degrees, degrees] and resized by a
    random factor in [1 - scale, 1 + scale] about its centre (bilinear; uncovered pixels take ``fill``)."""
    n = x.shape[0]
    angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(degrees)
    # affine_grid maps output coordinates to input ones, so a zoom by s samples the input at 1/s
    inverse_zoom = 1 / (1 + (torch.rand(n, device=x.device) * 2 - 1) * scale)
    cos, sin = angle.cos() * inverse_zoom, angle.sin() * inverse_zoom
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # grid_sample pads with zeros: sample the offset from the background so that padding is the background
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
