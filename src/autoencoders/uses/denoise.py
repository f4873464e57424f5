"""Denoising: a model trained to undo corruption (``dae``; any family whose config has a ``noise`` field)
maps noisy items to clean ones.

    from autoencoders.uses.denoise import denoise, denoise_path
    clean = denoise(model, noisy)                        # tensors in, tensors out
    denoise_path("runs/dae", "noisy/", "clean/")         # image files, a folder of them, or a .npy array

Items are read at the model's own size: an image of another size is refused rather than resized, since
resampling would blur the very detail a denoiser is asked to keep. Outputs keep the inputs' names (a folder of
images gives a folder of PNG files) or their array layout (a uint8 ``.npy`` gives a uint8 ``.npy``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from autoencoders.data.inputs import read_items, write_items

DENOISE_BATCH = 1024


def is_denoising(model) -> bool:
    """Whether ``model`` was trained to remove corruption (its config names the noise it was trained on)."""
    return model.denoises


def check_denoising(model) -> None:
    if not is_denoising(model):
        raise ValueError(
            f"a {model.name!r} model was not trained to remove noise; train a denoising model, e.g. "
            "`autoencoders train dae --data mnist --noise gaussian --noise-level 0.3 --out runs/dae`"
        )
    if model.uses_labels:
        raise ValueError(f"{model.name!r} needs class labels to encode; denoising takes unlabelled items")


@torch.no_grad()
def denoise(model, noisy: Tensor, batch_size: int = DENOISE_BATCH) -> Tensor:
    """The model's clean estimate of each noisy item, clipped to the model's value range."""
    check_denoising(model)
    shape = tuple(model.config.input_shape)
    if tuple(noisy.shape[1:]) != shape:
        raise ValueError(f"the model takes items of shape {shape}; got a batch of shape {tuple(noisy.shape)}")
    model.eval()
    low, high = model.config.value_range
    parts = [model.reconstruct(noisy[start : start + batch_size].float()) for start in range(0, len(noisy), batch_size)]
    return torch.cat(parts).clamp(low, high)


def add_gaussian_noise(x: Tensor, sigma: float, value_range: tuple[float, float], seed: int = 0) -> Tensor:
    """``x`` plus Gaussian noise of standard deviation ``sigma`` times the value range's width (not clipped).

    The same scaling as the DAE's training corruption, so σ = 0.3 on [0, 1] images means what ``noise_level
    0.3`` means in training.
    """
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x + sigma * (value_range[1] - value_range[0]) * noise


def denoise_path(run: str | Path, input_path: str | Path, output: str | Path) -> list[Path]:
    """Denoise the items in ``input_path`` with the denoising model saved in ``run``; returns the files written."""
    from autoencoders.io import load

    model = load(run)
    check_denoising(model)
    value_range = tuple(model.config.value_range)
    items = read_items(input_path, tuple(model.config.input_shape), value_range)
    return write_items(denoise(model, items.values), output, value_range, like=items)
