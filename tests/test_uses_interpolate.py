"""Interpolation: spherical interpolation's geometry, and the command between files and test-set indices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from autoencoders.cli import app
from autoencoders.models.ae import AE, AEConfig
from autoencoders.models.base import slerp

runner = CliRunner()
ALPHAS = torch.linspace(0, 1, 9).view(-1, 1, 1)


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def test_slerp_keeps_the_norm_of_equal_norm_codes_and_leaves_the_line():
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 16, generator=generator), torch.randn(5, 16, generator=generator)
    z2 = z2 / z2.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True)
    arc = slerp(z1[None], z2[None], ALPHAS)  # (steps, batch, latent)
    line = (1 - ALPHAS) * z1 + ALPHAS * z2
    torch.testing.assert_close(arc[0], z1)
    torch.testing.assert_close(arc[-1], z2)
    torch.testing.assert_close(arc.norm(dim=-1), z1.norm(dim=-1).expand(len(ALPHAS), -1))
    assert (line[4].norm(dim=-1) < 0.9 * z1.norm(dim=-1)).all()  # the line cuts inside the sphere
    assert (arc[1:-1] - line[1:-1]).norm(dim=-1).min() > 0.1
    # equal angular steps along the arc
    angles = torch.arccos(torch.nn.functional.cosine_similarity(arc[:-1], arc[1:], dim=-1))
    torch.testing.assert_close(angles, angles[:1].expand_as(angles))


def test_slerp_norms_of_orthogonal_codes_stay_between_the_endpoints_norms():
    z1, z2 = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 4.0]])
    norms = slerp(z1[None], z2[None], ALPHAS).norm(dim=-1).flatten()
    assert norms.min() >= 3.0 - 1e-5 and norms.max() <= 4.0 + 1e-5


def test_slerp_falls_back_to_the_line_where_the_arc_is_undefined():
    z1 = torch.tensor([[1.0, 2.0]])
    for z2 in (2 * z1, -z1, torch.zeros_like(z1)):
        torch.testing.assert_close(slerp(z1[None], z2[None], ALPHAS), (1 - ALPHAS) * z1 + ALPHAS * z2)


def test_model_interpolate_modes():
    torch.manual_seed(0)
    model = AE(AEConfig(input_shape=(1, 8, 8), hidden=(16,), latent_dim=4)).eval()
    x1, x2 = torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8)
    linear = model.interpolate(x1, x2, steps=5)
    spherical = model.interpolate(x1, x2, steps=5, mode="slerp")
    assert linear.shape == spherical.shape == (5, 3, 1, 8, 8)
    torch.testing.assert_close(linear[[0, -1]], spherical[[0, -1]])
    assert not torch.allclose(linear[2], spherical[2])
    with pytest.raises(ValueError, match="slerp"):
        model.interpolate(x1, x2, mode="cubic")


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """An untrained model saved with the built-in digits as its data: enough to test the plumbing."""
    import json

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("interpolate") / "ae"
    AE(AEConfig(input_shape=(1, 8, 8), hidden=(16,), latent_dim=4)).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["data"] = {"name": "digits", "seed": 0, "limit": None, "options": {}}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_cli_between_indices_files_and_both(model_folder, tmp_path):
    for index, value in enumerate((0, 255)):
        Image.fromarray(np.full((8, 8), value, np.uint8)).save(tmp_path / f"{index}.png")
    result = invoke("interpolate", model_folder, "--from", 3, "--to", 17, "--steps", 7, "-o", tmp_path / "i.npy")
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "i.npy").shape == (1, 7, 1, 8, 8)
    result = invoke("interpolate", model_folder, "--from", f"{tmp_path / '0.png'},5", "--to", f"{tmp_path / '1.png'},6",
                    "--mode", "slerp", "--steps", 6, "-o", tmp_path / "s.npy")
    assert result.exit_code == 0, result.output
    frames = np.load(tmp_path / "s.npy")
    assert frames.shape == (2, 6, 1, 8, 8)
    model = AE.from_pretrained(model_folder)
    black, white = torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    np.testing.assert_allclose(frames[0, 0], model.reconstruct(black)[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(frames[0, -1], model.reconstruct(white)[0].numpy(), atol=1e-6)
    result = invoke("interpolate", model_folder, "--from", 3, "--to", 17, "--mode", "slerp", "-o", tmp_path / "strip.png")
    assert result.exit_code == 0 and Image.open(tmp_path / "strip.png").width > Image.open(tmp_path / "strip.png").height


def test_cli_default_behaviour_is_unchanged(model_folder, tmp_path):
    assert invoke("interpolate", model_folder, "--pairs", 3, "--steps", 4, "-o", tmp_path / "d.npy").exit_code == 0
    assert np.load(tmp_path / "d.npy").shape == (3, 4, 1, 8, 8)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("--from", "3"), "both --from and --to"),
        (("--from", "3,4", "--to", "5"), "as many of each"),
        (("--from", "3", "--to", "nowhere.png"), "neither a test-set index nor an image file"),
        (("--from", "3", "--to", "99999"), "beyond the test set"),
        (("--from", "3", "--to", "4", "--mode", "cubic"), "--mode must be one of linear, slerp"),
    ],
)
def test_cli_clear_errors(model_folder, tmp_path, arguments, message):
    result = invoke("interpolate", model_folder, *arguments, "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and message in result.output, result.output
