"""Progress of long commands: the library's loops report to a reporter when one is installed, silently
otherwise; the command line draws bars only on a terminal."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

import autoencoders
from autoencoders import cli
from autoencoders.metrics import evaluate
from autoencoders.progress import reporting, track
from autoencoders.report import write_report
from autoencoders.uses.detect import detect
from autoencoders.uses.compress import compress_files, decompress_file

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return autoencoders.train(
        "vae", "digits", tmp_path_factory.mktemp("progress") / "vae", hidden=(32,), latent_dim=4, max_steps=20,
        batch_size=64, progress=False,
    )


class Recorder:
    """A reporter that remembers each loop's description, its total and how many items were taken."""

    def __init__(self):
        self.loops: list[list] = []

    def __call__(self, items, total, description):
        loop = [description, total, 0]
        self.loops.append(loop)
        for item in items:
            loop[2] += 1
            yield item

    def descriptions(self) -> str:
        return " | ".join(description for description, _, _ in self.loops)


def test_without_a_reporter_loops_are_left_as_they_are():
    items = [1, 2, 3]
    assert track(items, 3, "anything") is items


def test_long_library_calls_report_every_loop_to_the_installed_reporter(run, tmp_path):
    recorder = Recorder()
    with reporting(recorder):
        evaluate(run, metrics=["mse", "nll"], samples=4, save=False)
        items = autoencoders.load_dataset("digits").test[:5]
        np.save(tmp_path / "items.npy", items.numpy())
        compress_files(run, [tmp_path / "items.npy"], tmp_path / "items.aec")
        decompress_file(run, tmp_path / "items.aec", tmp_path / "out")
        detect(run, tmp_path / "out", score="recon+elbo")
        write_report(run)
    text = recorder.descriptions()
    for description in ("mse, nll on", "decoding", "reading 5 images", "writing 5 images", "recon scores of",
                        "elbo scores of 5 items", "drawing the report's pictures"):
        assert description in text
    assert all(total == taken and total > 0 for _, total, taken in recorder.loops)  # every loop ran to its end
    assert track([1], 1, "after") == [1]  # the reporter is gone with its block


def test_the_command_line_draws_bars_on_a_terminal_only(run, tmp_path, monkeypatch):
    result = runner.invoke(cli.app, ["evaluate", str(run), "--metrics", "mse,nll", "-k", "4", "--json"])
    assert result.exit_code == 0, result.output
    assert "mse, nll on" not in result.output  # not a terminal: no bar

    screen = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=screen, force_terminal=True, width=100))
    result = runner.invoke(cli.app, ["evaluate", str(run), "--metrics", "mse,nll", "-k", "4", "--json"])
    assert result.exit_code == 0, result.output
    assert "mse, nll on" in screen.getvalue() and "mse, nll on" not in result.stdout  # on stderr, never stdout
