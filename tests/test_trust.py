"""Trust: nothing read from a file runs code, no run is lost, bad input ends in one clear line (exit code 2)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import autoencoders
from autoencoders.cli import app
from autoencoders.errors import InputError
from autoencoders.io import ModelFileError, load
from autoencoders.training.folder import claim_run_folder
from autoencoders.training.run import parse_duration, training_config

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def one_line_error(result, code: int = 2) -> str:
    """The message of a command that failed cleanly: the exit code, one line, no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith(("error:", "internal error:"))]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    return autoencoders.train(
        "ae", "digits", tmp_path_factory.mktemp("trust") / "run", hidden=(16,), latent_dim=2, epochs=1, progress=False,
    )


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "copy"))


class PlantedCode:
    """Unpickling this makes a folder: what a planted checkpoint would do with os.system instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


# -- nothing from a file runs code ---------------------------------------------------------------------------
def test_resume_never_unpickles_code_even_when_torch_is_told_to(run_copy, tmp_path, monkeypatch):
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": PlantedCode(marker)}, run_copy / "checkpoints" / "last.ckpt")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # people set it to read old checkpoints
    result = invoke("train", "ae", "--out", run_copy, "--resume", "--epochs", "2", "--no-progress", "--no-evaluate")
    assert "not a checkpoint this library wrote" in one_line_error(result)
    assert not marker.exists()


def test_a_runs_recorded_data_dir_is_only_a_hint(run_copy, tmp_path, monkeypatch, caplog):
    from autoencoders.io import load_run_data, run_data_dir

    config = json.loads((run_copy / "config.json").read_text())
    config["data"]["data_dir"] = str(tmp_path / "planted")
    (run_copy / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("AUTOENCODERS_DATA", str(tmp_path / "mine"))
    assert run_data_dir(config["data"], None) == str(tmp_path / "mine")
    assert run_data_dir(config["data"], tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("AUTOENCODERS_DATA")
    with caplog.at_level("INFO", logger="autoencoders"):
        assert run_data_dir(config["data"], None) == str(tmp_path / "planted")
    assert "the folder the run recorded" in caplog.text  # the user is told where data is read from
    assert len(load_run_data(run_copy).test) > 0  # digits are built in: the hint does not stand in the way


# -- no run is lost --------------------------------------------------------------------------------------------
def test_a_rerun_never_replaces_a_run_silently(run_copy):
    weights = (run_copy / "model.safetensors").read_bytes()
    result = invoke("train", "ae", "--data", "digits", "--max-steps", "3", "--out", run_copy, "--no-progress", "--no-evaluate")
    assert "--resume" in one_line_error(result) and "--overwrite" in result.output
    assert (run_copy / "model.safetensors").read_bytes() == weights
    (run_copy / "report.html").write_text("the old run's report")
    result = invoke("train", "ae", "--data", "digits", "--hidden", "8", "--max-steps", "3", "--out", run_copy, "--overwrite",
                    "--no-progress", "--no-evaluate")
    assert result.exit_code == 0, result.output
    assert json.loads((run_copy / "config.json").read_text())["model"]["config"]["hidden"] == [8]
    assert not (run_copy / "report.html").exists()  # nothing of the old run is left beside the new one
    assert not (run_copy / "checkpoints" / "best.ckpt").exists()  # 3 steps: no epoch ended, no best yet


def test_one_writer_at_a_time_and_a_dead_writers_lock_is_taken_over(tmp_path, caplog):
    folder = tmp_path / "busy"
    folder.mkdir()
    with claim_run_folder(folder):
        with pytest.raises(InputError, match=rf"is being trained by pid {os.getpid()}"):
            autoencoders.train("ae", "digits", folder, max_steps=2, progress=False)
    # a lock file whose holder died (killed, so it never removed the file) is not held: the next training proceeds
    (folder / ".lock").write_text("pid 999999 on elsewhere since yesterday")
    with caplog.at_level("INFO", logger="autoencoders"):
        autoencoders.train("ae", "digits", folder, hidden=(8,), max_steps=2, progress=False)
    assert "pid 999999" in caplog.text and "taking it over" in caplog.text
    assert not (folder / ".lock").exists()


def test_resume_removes_half_written_files_and_falls_back_to_best(run_copy, caplog):
    (run_copy / "checkpoints" / "last.ckpt").unlink()  # its first write died
    leftover = run_copy / "checkpoints" / ".last.ckpt.k2j3.tmp"
    leftover.write_bytes(b"half a checkpoint")
    with caplog.at_level("INFO", logger="autoencoders"):
        autoencoders.train("ae", "digits", run_copy, epochs=2, resume=True, progress=False)
    assert not leftover.exists() and "half-written" in caplog.text
    assert "resuming from best.ckpt" in caplog.text
    assert json.loads((run_copy / "config.json").read_text())["training"]["epochs_done"] == 2


# -- one error path ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--latent-dim", "-3"], "latent_dim must lie in [1, 1048576]; got -3"),
        (["--latent-dim", "0"], "latent_dim must lie in [1, 1048576]; got 0"),
        (["--epochs", "0"], "epochs must be at least 1; got 0"),
        (["--set", "training.max_time=a fortnight"], "max_time is a duration"),
        (["--set", "beta=.nan"], "beta takes a finite number"),
        (["--set", "training.precision=half"], "unknown training setting precision 'half'"),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(tmp_path, flags, message):
    result = invoke("train", "vae", "--data", "digits", "--out", tmp_path / "run", "--no-progress", *flags)
    assert message in one_line_error(result)
    assert not (tmp_path / "run").exists()


def test_durations_in_any_common_form():
    assert [parse_duration(text) for text in ("90s", "15min", "1h", "1h30min", "00:00:05:00", "2:30", 45)] == [
        "00:00:01:30", "00:00:15:00", "00:01:00:00", "00:01:30:00", "00:00:05:00", "00:00:02:30", "00:00:00:45",
    ]
    assert training_config({"max_time": "1min"}).max_time == "00:00:01:00"
    for bad in ("0s", "soon", "1 fortnight", -5):
        with pytest.raises(ValueError, match="max_time is a duration"):
            parse_duration(bad)


def test_a_diverging_run_ends_in_one_line_that_tells_the_truth_about_checkpoints(tmp_path):
    items = tmp_path / "items.npy"
    np.save(items, np.random.default_rng(0).uniform(0, 1e30, (200, 6)).astype(np.float32))  # the squared error overflows float32 at once
    result = invoke("train", "ae", "--data", items, "--hidden", "8", "--max-steps", "5", "--out", tmp_path / "run", "--no-progress")
    line = one_line_error(result)
    assert "became non-finite" in line and "No checkpoint had been written yet" in line


def test_sample_zero_items_is_refused(finished_run):
    result = invoke("sample", finished_run, "-n", "0", "--sampler", "gmm")
    assert result.exit_code == 2 and "-n" in result.output and "Traceback" not in result.output


def test_a_library_failure_is_one_line_with_a_hint_and_debug_shows_the_traceback(finished_run, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("an invariant broke")

    monkeypatch.setattr("autoencoders.report.write_report", broken)
    line = one_line_error(invoke("report", finished_run), code=1)
    assert "RuntimeError: an invariant broke" in line and "--debug" in invoke("report", finished_run).output
    with pytest.raises(RuntimeError, match="an invariant broke"):
        invoke("--debug", "report", finished_run)


# -- files from disk are checked before they are used -----------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda config: config["model"]["config"].update(latent_dim=1e12), "latent_dim takes an integer"),
        (lambda config: config["model"]["config"].update(hidden=[10**9]), "hidden must lie in"),
        (lambda config: config["model"]["config"].update(input_shape=[1, 10**6, 10**6]), "input_shape"),
        (lambda config: config["model"]["config"].update(hidden=[65536, 65536, 65536], latent_dim=2**20), "weights, more than"),
        (lambda config: config.update(model=None), "not an object"),
        (lambda config: config.update(data=[]), "'data' entry is a list"),
        (lambda config: config["model"].update(name=["ae"]), "no 'model.name'"),
    ],
)
def test_crafted_config_values_are_refused_before_any_allocation(run_copy, change, message):
    config = json.loads((run_copy / "config.json").read_text())
    change(config)
    (run_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match=message):
        load(run_copy)
    assert message.split()[0] in one_line_error(invoke("evaluate", run_copy, "--metrics", "mse"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda tensor: tensor.to(torch.int64), "dtype mismatch"),
        (lambda tensor: tensor.to(torch.float16), "dtype mismatch"),
        (lambda tensor: torch.full_like(tensor, float("nan")), "NaN or infinite weights"),
    ],
)
def test_weights_of_another_type_or_not_finite_are_refused(run_copy, change, message):
    from safetensors.torch import load_file, save_file

    path = run_copy / "model.safetensors"
    state = load_file(path)
    first = next(iter(state))
    state[first] = change(state[first])
    save_file(state, path)
    with pytest.raises(ModelFileError, match=message):
        load(run_copy)


def test_a_damaged_detection_folder_becomes_a_note_in_the_report(run_copy):
    from autoencoders.report import write_report

    (run_copy / "anomaly").mkdir()
    (run_copy / "anomaly" / "summary.json").write_text('{"score": "recon"}')  # edited by hand: keys missing
    page = write_report(run_copy).read_text()
    assert "could not be read" in page and "autoencoders detect" in page
