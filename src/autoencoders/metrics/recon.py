"""Reconstruction quality: MSE, L1, BCE, Hamming distance, PSNR and SSIM, each averaged over items.

Every function takes the data ``x`` and the model's reconstruction ``x_hat`` in data space and returns
one number per item, so the caller can average over any number of batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def mse(x: Tensor, x_hat: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Mean squared error per value (the usual "MSE" of image papers)."""
    return (x - x_hat).square().flatten(1).mean(dim=1)


def l1(x: Tensor, x_hat: Tensor, value_range: tuple[float, float]) -> Tensor:
    return (x - x_hat).abs().flatten(1).mean(dim=1)


def bce(x: Tensor, x_hat: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Binary cross-entropy summed over an item's values, in nats (data and output in [0, 1])."""
    probability = x_hat.clamp(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(probability, x.clamp(0, 1), reduction="none").flatten(1).sum(dim=1)


def hamming(x: Tensor, x_hat: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Number of values that differ once both are thresholded at the middle of the value range."""
    middle = sum(value_range) / 2
    return ((x > middle) != (x_hat > middle)).flatten(1).sum(dim=1).float()


def psnr(x: Tensor, x_hat: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Peak signal-to-noise ratio in dB per item, the peak being the data's value range."""
    span = value_range[1] - value_range[0]
    error = (x - x_hat.clamp(*value_range)).square().flatten(1).mean(dim=1).clamp_min(1e-12)
    return 10 * torch.log10(span**2 / error)


def ssim(x: Tensor, x_hat: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Structural similarity (Wang et al. 2004; 11x11 Gaussian window, σ 1.5) per image."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    if x.dim() != 4:
        raise ValueError("ssim needs images (N, C, H, W)")
    span = value_range[1] - value_range[0]
    # small images (8x8 digits) get a window that fits
    kernel = min(11, x.shape[-1] - (1 - x.shape[-1] % 2), x.shape[-2] - (1 - x.shape[-2] % 2))
    return structural_similarity_index_measure(
        x_hat.clamp(*value_range), x, data_range=span, kernel_size=kernel, sigma=1.5 * kernel / 11, reduction="none"
    )


RECONSTRUCTION_METRICS = {"mse": mse, "l1": l1, "bce": bce, "hamming": hamming, "psnr": psnr, "ssim": ssim}
