"""The command line end to end on tiny data, and its promises: fast listing, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from autoencoders.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "cvae"
    result = invoke("train", "cvae", "--data", "digits", "--hidden", "64", "--latent-dim", "4", "--max-steps", "40",
                    "--out", out, "--no-progress", "--set", "beta=0.5")
    assert result.exit_code == 0, result.output
    return out


def test_listing_commands_do_not_import_torch():
    # `autoencoders --help` and `autoencoders models` must answer at once: no torch or Lightning import
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom autoencoders.cli import app\n"
        "r = CliRunner().invoke(app, ['models'])\nassert 'beta-vae' in r.output, r.output\n"
        "r = CliRunner().invoke(app, ['--help'])\nassert 'train' in r.output\n"
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_train_records_settings_and_evaluate_prints_json(cvae_run):
    config = json.loads((cvae_run / "config.json").read_text())
    assert config["model"]["config"]["beta"] == 0.5 and config["model"]["config"]["num_classes"] == 10
    result = invoke("evaluate", cvae_run, "--metrics", "mse,psnr,nll", "-k", "20", "--json")
    values = json.loads(result.stdout)
    assert set(values) == {"mse", "psnr", "nll"}
    assert 0 < values["mse"] < 0.2 and values["nll"] > 0
    assert json.loads((cvae_run / "metrics.json").read_text())["psnr"] == values["psnr"]


def test_sample_reconstruct_interpolate_write_pictures(cvae_run, tmp_path):
    assert invoke("sample", cvae_run, "-n", "16", "--label", "3", "-o", tmp_path / "s.png").exit_code == 0
    assert invoke("sample", cvae_run, "-n", "5", "--label", "3", "-o", tmp_path / "s.npy").exit_code == 0
    assert np.load(tmp_path / "s.npy").shape == (5, 1, 8, 8)
    assert invoke("reconstruct", cvae_run, "-o", tmp_path / "r.png").exit_code == 0
    assert invoke("interpolate", cvae_run, "--pairs", "3", "--steps", "6", "-o", tmp_path / "i.png").exit_code == 0
    for name in ("s.png", "r.png", "i.png"):
        image = Image.open(tmp_path / name)
        assert min(image.size) >= 32 and len(set(image.convert("L").getdata())) > 2  # a real picture


def test_encode_then_decode_round_trips_codes(cvae_run, tmp_path):
    assert invoke("encode", cvae_run, "-o", tmp_path / "codes.npy").exit_code == 0
    codes = np.load(tmp_path / "codes.npy")
    assert codes.shape == (359, 4)
    assert invoke("encode", cvae_run, "-o", tmp_path / "codes.parquet").exit_code == 0
    result = invoke("decode", cvae_run, tmp_path / "codes.npy", "--label", "1", "-o", tmp_path / "decoded.npy")
    assert result.exit_code == 0
    assert np.load(tmp_path / "decoded.npy").shape == (359, 1, 8, 8)


def test_bad_input_gives_a_clear_error(tmp_path, cvae_run):
    result = invoke("train", "vea", "--data", "digits", "--out", tmp_path / "x", "--no-progress")
    assert result.exit_code == 2 and "Did you mean 'vae'" in result.output
    result = invoke("train", "vae", "--data", "digitz", "--out", tmp_path / "y", "--no-progress")
    assert result.exit_code == 2 and "digits" in result.output
    result = invoke("train", "vae", "--data", "digits", "--set", "betta=2", "--out", tmp_path / "z", "--no-progress")
    assert result.exit_code == 2 and "unknown setting(s) betta" in result.output
    result = invoke("sample", tmp_path / "nowhere")
    assert result.exit_code == 2 and "does not exist" in result.output
    np.save(tmp_path / "wrong.npy", np.zeros((3, 7)))
    result = invoke("decode", cvae_run, tmp_path / "wrong.npy", "--label", "1")
    assert result.exit_code == 2 and "(N, 4)" in result.output


def test_yaml_config_with_flags_winning(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("data: digits\nlatent_dim: 3\nhidden: [16]\nmax_steps: 5\nset:\n  recon_loss: mse\n")
    out = tmp_path / "run"
    result = invoke("train", "ae", "--config", config, "--latent-dim", "2", "--out", out, "--no-progress", "--no-evaluate")
    assert result.exit_code == 0, result.output
    model_config = json.loads((out / "config.json").read_text())["model"]["config"]
    assert model_config["latent_dim"] == 2 and model_config["hidden"] == [16] and model_config["recon_loss"] == "mse"
