"""The command line end to end on tiny data, and its promises: fast listing, clear errors."""

from __future__ import annotations

import json
import math
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
    validation = json.loads(invoke("evaluate", cvae_run, "--metrics", "psnr", "--split", "val", "--json").stdout)
    saved = json.loads((cvae_run / "metrics.json").read_text())
    assert saved["val/psnr"] == validation["psnr"] and saved["psnr"] == values["psnr"]  # the test split's stays


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_evaluate_on_a_missing_gpu_says_so(cvae_run):
    result = invoke("evaluate", cvae_run, "--metrics", "mse", "--device", "cuda")
    assert result.exit_code == 2 and "no CUDA GPU" in result.output and "'cpu'" in result.output


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
    # 2e-3 is text in YAML 1.1 (no dot); it must arrive as a number
    config.write_text("data: digits\nlatent_dim: 3\nhidden: [16]\nmax_steps: 5\nlr: 2e-3\nset:\n  recon_loss: mse\n")
    out = tmp_path / "run"
    result = invoke("train", "ae", "--config", config, "--latent-dim", "2", "--out", out, "--no-progress", "--no-evaluate")
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "config.json").read_text())
    model_config = saved["model"]["config"]
    assert model_config["latent_dim"] == 2 and model_config["hidden"] == [16] and model_config["recon_loss"] == "mse"
    assert saved["training"]["lr"] == 0.002


def test_model_settings_as_flags(tmp_path):
    out = tmp_path / "aae"
    result = invoke("train", "aae", "--data", "digits", "--prior", "mog", "--components", "4", "--supervised", "--latent-dim", "2",
                    "--hidden", "32", "--generator-lr", "4e-4", "--set", "discriminator_lr=1e-4", "--max-steps", "3", "--out", out,
                    "--no-progress", "--no-evaluate")
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())["model"]["config"]
    assert (config["prior"], config["components"], config["supervised"], config["num_classes"]) == ("mog", 4, True, 10)
    assert (config["generator_lr"], config["discriminator_lr"]) == (4e-4, 1e-4)  # numbers, though YAML 1.1 reads them as text
    out = tmp_path / "dropout"
    result = invoke("train", "ae", "--data", "digits", "--dropout", "0.5", "--hidden", "32", "--max-steps", "2", "--out", out,
                    "--no-progress", "--no-evaluate")
    assert result.exit_code == 0 and json.loads((out / "config.json").read_text())["model"]["config"]["latent_dropout"] == 0.5
    result = invoke("train", "ae", "--data", "digits", "--priorr", "mog", "--out", tmp_path / "bad", "--no-progress")
    assert result.exit_code == 2 and "unknown setting(s) priorr" in result.output


def test_style_transfer_renders_every_label(tmp_path):
    out = tmp_path / "aae"
    result = invoke("train", "aae", "--data", "digits", "--supervised", "--latent-dim", "2", "--hidden", "32",
                    "--max-steps", "20", "--out", out, "--no-progress", "--no-evaluate")
    assert result.exit_code == 0, result.output
    result = invoke("style-transfer", out, "--source", "0,1", "--labels", "2-5", "-o", tmp_path / "styles.npy")
    assert result.exit_code == 0, result.output
    grid = np.load(tmp_path / "styles.npy")  # each source, then it as labels 2, 3, 4, 5
    assert grid.shape == (2 * 5, 1, 8, 8)
    Image.fromarray((np.load(tmp_path / "styles.npy")[0, 0] * 255).astype(np.uint8)).save(tmp_path / "source.png")
    result = invoke("style-transfer", out, "--source", tmp_path / "source.png", "-o", tmp_path / "styles.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "styles.png").size[0] > Image.open(tmp_path / "styles.png").size[1]  # one row of 11
    result = invoke("style-transfer", out, "--source", "0", "--labels", "3-12")
    assert result.exit_code == 2 and "classes in 0..9" in result.output


def test_benchmark_lines_and_semi_supervised_evaluation(tmp_path):
    out = tmp_path / "acai"
    result = invoke("train", "acai", "--data", "lines", "--arch", "acai", "--latent-dim", "16", "--set", "depth=4",
                    "--max-steps", "4", "--limit", "600", "--out", out, "--no-progress", "--no-evaluate")
    assert result.exit_code == 0, result.output
    result = invoke("benchmark", "lines", out, "--pairs", "8", "--steps", "5", "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(scores) == {"lines_mean_distance", "lines_smoothness"}
    # after 4 steps every mixture may decode to one line: then smoothness is undefined (NaN)
    assert 0 < scores["lines_mean_distance"] < 2 and (math.isnan(scores["lines_smoothness"]) or 0 <= scores["lines_smoothness"] <= 1)
    assert json.loads((out / "metrics.json").read_text())["lines_pairs"] == 8

    semi = tmp_path / "semi"
    result = invoke("train", "aae-semi", "--data", "digits", "--labels", "50", "--hidden", "64", "--max-steps", "30",
                    "--out", semi, "--no-progress", "--no-evaluate")
    assert result.exit_code == 0, result.output
    result = invoke("evaluate", semi, "--metrics", "classification_error,probe,kmeans", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0 <= metrics["classification_error"] < 0.9 and 0.1 < metrics["probe"] <= 1 and 0.1 < metrics["kmeans"] <= 1
