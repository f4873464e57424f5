"""Input corruption for denoising models (the DAE and the denoising VAE share it).

Gaussian noise scaled to the data's value range, masking (values set to the range's low end), or
salt-and-pepper (values set to either end), each hitting a ``level`` fraction of the values.
"""

from __future__ import annotations

import torch
from torch import Tensor

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
