"""SSIM against scikit-image's implementation of Wang et al. 2004, on data of every kind the package meets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from autoencoders.data import load_dataset
from autoencoders.metrics.recon import gaussian_window, ssim

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def reference_ssim(x: torch.Tensor, x_hat: torch.Tensor, value_range: tuple[float, float], sigma: float = 1.5) -> np.ndarray:
    """scikit-image's SSIM of each image pair (N, C, H, W), Wang et al.'s settings."""
    return np.array([
        structural_similarity(
            a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(), gaussian_weights=True, sigma=sigma,
            use_sample_covariance=False, data_range=value_range[1] - value_range[0], channel_axis=-1,
        )
        for a, b in zip(x, x_hat)
    ])


def blurred(x: torch.Tensor) -> torch.Tensor:
    window = gaussian_window(5, 1.0)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    return torch.nn.functional.conv2d(torch.nn.functional.conv2d(padded, window.view(1, 1, -1, 1)), window.view(1, 1, 1, -1))


def test_ssim_matches_scikit_image_on_grey_colour_and_signed_images():
    generator = torch.Generator().manual_seed(0)
    sprites = load_dataset("sprites", limit=100).test[:50]  # 64x64, strokes on a black background
    noisy = (sprites + 0.2 * torch.randn(sprites.shape, generator=generator)).clamp(0, 1)
    colour = torch.rand(20, 3, 32, 32, generator=generator) * 2 - 1  # value range [-1, 1]
    colour_noisy = (colour + 0.2 * torch.randn(colour.shape, generator=generator)).clamp(-1, 1)
    for x, x_hat, value_range in [
        (sprites, blurred(sprites), (0.0, 1.0)), (sprites, noisy, (0.0, 1.0)), (colour, colour_noisy, (-1.0, 1.0)),
    ]:
        ours = ssim(x, x_hat, value_range).numpy()
        np.testing.assert_allclose(ours, reference_ssim(x, x_hat, value_range), atol=1e-3)
    assert ssim(colour, colour, (-1.0, 1.0)).tolist() == pytest.approx([1.0] * len(colour), abs=1e-6)


def test_ssim_of_images_smaller_than_the_window_shrinks_it():
    digits = load_dataset("digits").test[:50]  # 8x8: a 7x7 window of σ 1.5·7/11, as scikit-image with that σ
    noisy = (digits + 0.2 * torch.randn(digits.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    np.testing.assert_allclose(ssim(digits, noisy, (0.0, 1.0)).numpy(), reference_ssim(digits, noisy, (0.0, 1.0), 1.5 * 7 / 11), atol=1e-3)
    assert ssim(digits, digits, (0.0, 1.0)).tolist() == pytest.approx([1.0] * len(digits), abs=1e-6)
    with pytest.raises(ValueError, match="at least 3x3"):
        ssim(torch.rand(2, 1, 2, 8), torch.rand(2, 1, 2, 8), (0.0, 1.0))


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason=f"no MNIST files under {SHARED_DATA}")
def test_ssim_of_mnist_reconstructions_averages_only_where_the_window_fits():
    mnist = load_dataset("mnist", data_dir=SHARED_DATA, limit=2000)
    train, x = mnist.train.flatten(1).double(), mnist.test[:200]
    mean = train.mean(0)
    components = torch.linalg.svd(train - mean, full_matrices=False).Vh[:10]  # PCA: blurry, like an autoencoder's
    reconstruction = (((x.flatten(1).double() - mean) @ components.T) @ components + mean).view_as(x).float().clamp(0, 1)
    ours = ssim(x, reconstruction, (0.0, 1.0))
    np.testing.assert_allclose(ours.numpy(), reference_ssim(x, reconstruction, (0.0, 1.0)), atol=1e-3)
    # averaged over reflect-padded borders too (torchmetrics' default), the near-black border windows read 0.56
    assert 0.40 < float(ours.mean()) < 0.50
