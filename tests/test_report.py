"""The HTML report of real (tiny) runs: self-contained, the right sections per model, pictures saved."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import autoencoders
from autoencoders.report import write_report

pytestmark = pytest.mark.slow  # trains three tiny models (about 20 seconds on two cores)

PICTURES = ("loss", "reconstructions", "samples", "interpolation", "latent")
IMAGE_SOURCE = re.compile(r'<img[^>]*\ssrc="([^"]*)"')


def train_tiny(model: str, folder: Path) -> Path:
    return autoencoders.train(
        model, "digits", folder, latent_dim=4, max_steps=20, progress=False, settings={"training.log_every": 5}
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny run per model kind: generative, conditional generative, not generative."""
    root = tmp_path_factory.mktemp("runs")
    return {name: train_tiny(name, root / name) for name in ("vae", "cvae", "ae")}


@pytest.fixture(scope="module")
def reports(runs) -> dict[str, str]:
    (runs["vae"] / "metrics.json").write_text(json.dumps({"mse": 0.012345, "elbo": -42.5}))
    return {name: write_report(run).read_text() for name, run in runs.items()}


def section_ids(page: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', page)


def section(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S)
    assert match, f"no {anchor} section"
    return match.group(1)


def embedded_images(page: str) -> list[Image.Image]:
    images = []
    for source in IMAGE_SOURCE.findall(page):
        assert source.startswith("data:image/png;base64,"), source[:60]
        image = Image.open(io.BytesIO(base64.b64decode(source.removeprefix("data:image/png;base64,"))))
        image.load()
        images.append(image)
    return images


@pytest.mark.parametrize("name", ["vae", "cvae", "ae"])
def test_report_is_self_contained(name, reports, runs):
    page = reports[name]
    assert (runs[name] / "report.html").exists()
    links = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    assert links and all(link.startswith(("data:image/png;base64,", "#")) for link in links)
    assert "<script" not in page and "<link" not in page
    images = embedded_images(page)
    assert len(images) == page.count("<img")
    for image in images:
        assert image.width >= 100 and image.height >= 60
        low, high = image.convert("L").getextrema()
        assert high - low > 50  # not a blank picture


def test_vae_report_sections_and_pictures(reports, runs):
    page = reports["vae"]
    assert section_ids(page) == ["header", "metrics", "loss", "reconstructions", "samples", "interpolation", "latent", "traversals"]
    header = section(page, "header")
    assert "vae" in header and "digits" in header and autoencoders.__version__ in header
    assert "latent_dim" in header and "training steps" in header
    metrics = section(page, "metrics")
    assert "mse" in metrics and "0.01235" in metrics and "-42.5" in metrics
    for name in PICTURES:
        path = runs["vae"] / "pictures" / f"{name}.png"
        assert path.exists() and Image.open(path).format == "PNG"


def test_cvae_report_samples_one_row_per_class(reports, runs):
    page = reports["cvae"]
    assert "samples" in section_ids(page)
    assert "one class per row" in section(page, "samples")
    samples = Image.open(runs["cvae"] / "pictures" / "samples.png")
    cell = 64 + 2  # 8x8 digits upscaled to 64 pixels, plus the padding
    assert samples.height == 10 * cell + 2  # ten classes, one row each


def test_ae_report_has_no_samples(reports, runs):
    page = reports["ae"]
    assert section_ids(page) == ["header", "loss", "reconstructions", "interpolation", "latent"]
    assert not (runs["ae"] / "pictures" / "samples.png").exists()


def test_reconstruction_picture_shows_the_test_items(runs, reports):
    """The upper row of the reconstruction grid holds the first test items, as the data loader gives them."""
    from autoencoders.io import load_run_data

    test_items = load_run_data(runs["ae"]).test[:8]
    grid = np.asarray(Image.open(runs["ae"] / "pictures" / "reconstructions.png").convert("L"))
    first_row = grid[2 : 2 + 64, -(8 * 66) :]  # right of the label margin
    for index, item in enumerate(test_items):
        cell = first_row[:, index * 66 : index * 66 + 64]
        expected = np.clip(item[0].numpy() * 255, 0, 255).round().repeat(8, 0).repeat(8, 1)
        assert np.abs(cell.astype(float) - expected).max() <= 1


def test_report_leaves_the_random_stream_alone_and_is_repeatable(runs, reports):
    state = torch.get_rng_state()
    first = write_report(runs["vae"], n_items=4).read_text()
    assert torch.equal(torch.get_rng_state(), state)
    assert write_report(runs["vae"], n_items=4).read_text() == first  # seeded samples: the same page


def test_report_without_test_data_keeps_what_it_can(runs, monkeypatch):
    import autoencoders.io
    from autoencoders.data.errors import DataError

    def missing(*args, **kwargs):
        raise DataError("digits files not found; pass --data-dir")

    monkeypatch.setattr(autoencoders.io, "load_run_data", missing)
    page = write_report(runs["vae"]).read_text()
    assert "pass --data-dir" in section(page, "data")
    assert "samples" in section_ids(page) and "reconstructions" not in section_ids(page)


def test_report_rejects_unknown_projection(runs):
    with pytest.raises(ValueError, match="pca"):
        write_report(runs["ae"], projection="isomap")
