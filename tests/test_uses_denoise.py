"""Denoising with a tiny trained DAE: PSNR improves on noisy digits; the command reads and writes images, folders
and arrays, and refuses what it cannot do with a clear message."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import autoencoders
from autoencoders.cli import app
from autoencoders.data import load_dataset
from autoencoders.metrics.recon import psnr
from autoencoders.models.ae import AE, DAE, AEConfig, DAEConfig
from autoencoders.uses.denoise import add_gaussian_noise, denoise, denoise_path
from autoencoders.training.fit import fit_model

runner = CliRunner()
SIGMA = 0.3


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def dae_run(tmp_path_factory, one_thread):
    """A DAE trained in memory by the library's training module, saved as a model folder."""
    config = DAEConfig(input_shape=(1, 8, 8), hidden=(128,), latent_dim=16, noise="gaussian", noise_level=SIGMA, recon_loss="bce")
    torch.manual_seed(0)
    model = fit_model(DAE(config), load_dataset("digits").train, max_steps=400, batch_size=32, lr=2e-3)
    folder = tmp_path_factory.mktemp("denoise") / "dae"
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").test[:64]


def test_denoising_raises_psnr_over_the_noisy_input(dae_run, digits):
    model = autoencoders.load(dae_run)
    noisy = add_gaussian_noise(digits, SIGMA, (0.0, 1.0), seed=1)
    assert (noisy - digits).std() == pytest.approx(SIGMA, rel=0.1)
    noisy_psnr = psnr(digits, noisy, (0.0, 1.0)).mean()
    denoised = denoise(model, noisy)
    assert denoised.shape == digits.shape and denoised.min() >= 0 and denoised.max() <= 1
    assert psnr(digits, denoised, (0.0, 1.0)).mean() > noisy_psnr + 3.0  # dB


def test_folder_of_images_to_folder_keeps_names(dae_run, digits, tmp_path):
    noisy = add_gaussian_noise(digits[:3], SIGMA, (0.0, 1.0), seed=2).clamp(0, 1)
    (tmp_path / "in" / "sub").mkdir(parents=True)
    names = ["a.png", "b.png", "sub/c.png"]
    for name, item in zip(names, noisy):
        Image.fromarray((item[0].numpy() * 255).round().astype(np.uint8)).save(tmp_path / "in" / name)
    result = invoke("denoise", dae_run, tmp_path / "in", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    for name in names:
        image = Image.open(tmp_path / "out" / name)
        assert image.size == (8, 8) and image.mode == "L"
    # the written image is the model's output for the image read, up to 8-bit rounding
    read = torch.tensor(np.asarray(Image.open(tmp_path / "in" / "a.png")), dtype=torch.float32)[None, None] / 255
    expected = denoise(autoencoders.load(dae_run), read)[0, 0].numpy() * 255
    assert np.abs(np.asarray(Image.open(tmp_path / "out" / "a.png"), dtype=np.float32) - expected).max() <= 0.51


def test_arrays_keep_layout_and_dtype(dae_run, digits, tmp_path):
    noisy = add_gaussian_noise(digits[:5], SIGMA, (0.0, 1.0), seed=3).clamp(0, 1)
    np.save(tmp_path / "float.npy", noisy[:, 0].numpy())  # (N, H, W) one-channel images
    np.save(tmp_path / "bytes.npy", (noisy.numpy() * 255).round().astype(np.uint8))
    denoise_path(dae_run, tmp_path / "float.npy", tmp_path / "float-out.npy")
    assert invoke("denoise", dae_run, tmp_path / "bytes.npy", "-o", tmp_path / "bytes-out.npy").exit_code == 0
    floats, bytes_ = np.load(tmp_path / "float-out.npy"), np.load(tmp_path / "bytes-out.npy")
    assert floats.shape == (5, 8, 8) and floats.dtype == np.float32
    assert bytes_.shape == (5, 1, 8, 8) and bytes_.dtype == np.uint8
    np.testing.assert_allclose(floats, denoise(autoencoders.load(dae_run), noisy)[:, 0].numpy(), atol=1e-6)


def test_one_image_to_one_image(dae_run, tmp_path):
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(tmp_path / "one.png")
    assert invoke("denoise", dae_run, tmp_path / "one.png", "-o", tmp_path / "one-clean.png").exit_code == 0
    assert Image.open(tmp_path / "one-clean.png").size == (8, 8)


def test_clear_errors(dae_run, tmp_path):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "big.png")
    result = invoke("denoise", dae_run, tmp_path / "big.png", "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "28x28" in result.output and "8x8" in result.output
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5), np.float32))
    result = invoke("denoise", dae_run, tmp_path / "wrong.npy", "-o", tmp_path / "x.npy")
    assert result.exit_code == 2 and "(N, 1, 8, 8)" in result.output
    np.save(tmp_path / "two.npy", np.zeros((2, 1, 8, 8), np.float32))
    result = invoke("denoise", dae_run, tmp_path / "two.npy", "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "2 items" in result.output
    plain = tmp_path / "ae"
    AE(AEConfig(input_shape=(1, 8, 8), hidden=(16,), latent_dim=4)).save_pretrained(plain)
    result = invoke("denoise", plain, tmp_path / "two.npy", "-o", tmp_path / "x.npy")
    assert result.exit_code == 2 and "not trained to remove noise" in result.output
