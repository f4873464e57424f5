"""`autoencoders tune`: studies of tiny VAEs on the 8x8 digits, in SQLite (no server) and in a real PostgreSQL
started here (initdb + pg_ctl in a temporary folder), with two worker processes sharing it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

import autoencoders
from autoencoders.tuning import tune
from autoencoders.tuning.space import SpaceError, search_space

SRC = str(Path(autoencoders.__file__).resolve().parent.parent)
# every trial: an MLP VAE of one 32-wide layer on digits, a few epochs of ~20 batches
TINY = {"hidden": (32,), "epochs": 3, "settings": {"training.log_every": 5}}


def write_space(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def load_study(folder: Path, name: str = "vae-digits"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'study.db'}")


@pytest.fixture(scope="module")
def good_space(tmp_path_factory) -> Path:
    return write_space(tmp_path_factory.mktemp("space") / "good.yaml", "lr: {type: float, low: 0.01, high: 0.011}\nlatent_dim: {type: int, low: 4, high: 8}\n")


def test_study_runs_continues_prunes_and_keeps_the_best(tmp_path, good_space, one_thread):
    folder = tmp_path / "study"
    first = tune("vae", "digits", folder, trials=2, space=good_space, **TINY)
    assert (first.finished, first.pruned, first.failed) == (2, 0, 0)
    assert sorted(path.name for path in (folder / "trials").iterdir()) == ["000", "001"]
    study = load_study(folder)
    assert study.user_attrs["model"] == "vae"
    values = {trial.number: trial.value for trial in study.trials}
    assert first.best[0]["number"] == min(values, key=values.get)

    # a clearly bad trial (a learning rate 10^4 times smaller) is pruned from its validation curve
    bad = write_space(tmp_path / "bad.yaml", "lr: {type: float, low: 1e-6, high: 1.1e-6}\nlatent_dim: {type: int, low: 4, high: 8}\n")
    second = tune("vae", "digits", folder, trials=3, space=bad, **TINY)
    assert (second.finished, second.pruned, second.trials_here) == (3, 1, 1)
    pruned = load_study(folder).trials[2]
    assert pruned.state == optuna.trial.TrialState.PRUNED and pruned.user_attrs["pruned_at_epoch"] == 1
    pruned_run = json.loads((folder / "trials" / "002" / "config.json").read_text())
    assert pruned_run["training"]["epochs_done"] < 3  # it stopped there, and its run folder is whole
    autoencoders.load(folder / "trials" / "002")

    # the study already holds 3 finished trials: the same call runs none
    assert tune("vae", "digits", folder, trials=3, space=good_space, **TINY).trials_here == 0

    best = folder / "best"
    assert json.loads((best / "trial.json").read_text())["trial"] == first.best[0]["number"]
    assert not (best / "checkpoints").exists()
    model = autoencoders.load(best)
    assert model.config.latent_dim == first.best[0]["params"]["latent_dim"]
    assert first.best_run == best.resolve() or first.best_run == best

    page = (folder / "report.html").read_text()
    for title in ("Optimization history", "Parameter importances", "Parallel coordinates", "Trials"):
        assert f"<h2>{title}</h2>" in page
    assert page.count("data:image/png;base64,") >= 3 and "http://" not in page and "https://" not in page
    assert page.count("<tr><td>") == 3 and "pruned (epoch 1)" in page


def test_a_killed_worker_s_trial_is_marked_failed_and_the_study_continues(tmp_path, good_space, one_thread):
    folder = tmp_path / "study"
    command = [
        sys.executable, "-c", "from autoencoders.cli import main; main()", "tune", "vae", "--data", "digits",
        "--trials", "2", "--epochs", "1000", "--hidden", "32", "--space", str(good_space), "--out", str(folder),
    ]
    worker = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (folder / "trials" / "000" / "metrics.csv").exists():  # the trial is training
            assert worker.poll() is None and time.time() < deadline, "the worker did not start its first trial"
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert load_study(folder).trials[0].state == optuna.trial.TrialState.RUNNING

    result = tune("vae", "digits", folder, trials=1, space=good_space, **TINY)
    assert "trial 0 was left running by a worker that is gone: marked failed" in result.notes
    states = [trial.state for trial in load_study(folder).trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert (result.finished, result.failed) == (1, 1)


def test_a_killed_tune_with_two_jobs_leaves_no_worker_training(tmp_path, good_space):
    folder = tmp_path / "study"
    command = [
        sys.executable, "-c", "from autoencoders.cli import main; main()", "tune", "vae", "--data", "digits", "--jobs", "2",
        "--trials", "50", "--epochs", "1000", "--hidden", "32", "--space", str(good_space), "--out", str(folder),
    ]
    main = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while len(list(folder.glob("trials/*/metrics.csv"))) < 2:  # both workers are training
            assert main.poll() is None and time.time() < deadline, "the two workers did not both start a trial"
            time.sleep(0.2)
        children = [int(pid) for pid in Path(f"/proc/{main.pid}/task/{main.pid}/children").read_text().split()]
    finally:
        main.send_signal(signal.SIGKILL)
        main.wait()
    deadline = time.time() + 10
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text() for pid in children):
        assert time.time() < deadline, "a worker went on after its tune was killed"
        time.sleep(0.2)


def test_two_objectives_give_a_pareto_front(tmp_path, one_thread):
    space = write_space(tmp_path / "space.yaml", "rate_weight: {type: float, low: 0.001, high: 1, log: true}\nlatent_dim: null\nlr: null\nbatch_size: null\n")
    folder = tmp_path / "cae"
    result = tune(
        "compressive-ae", "digits", folder, trials=3, metric="rate,psnr", space=space, hidden=(32,), epochs=1, latent_dim=8,
        settings={"training.log_every": 5},
    )
    assert result.directions == ["minimize", "maximize"] and result.finished == 3
    front = load_study(folder, "compressive-ae-digits").best_trials
    assert {trial.number for trial in front} == {trial["number"] for trial in result.best}
    first = result.best[0]
    measured = json.loads((folder / first["run"] / "metrics.json").read_text())  # psnr: evaluate on the val split
    assert measured["val/psnr"] == pytest.approx(first["values"][1])
    assert "<h2>Pareto front</h2>" in (folder / "report.html").read_text()
    autoencoders.load(folder / "best")


def test_every_family_s_default_space_is_valid():
    from autoencoders.models import MODELS

    for name in MODELS:
        names = {parameter.name for parameter in search_space(name)}
        assert {"lr", "batch_size", "latent_dim"} <= names, name
    assert "lr" not in {parameter.name for parameter in search_space("vae", fixed={"training.lr"})}


@pytest.mark.parametrize("text, message", [
    ("bogus: {type: float, low: 0, high: 1}", "unknown parameter 'bogus'"),
    ("beta: {type: float, low: 2, high: 1}", "empty range"),
    ("lr: {type: float, low: 0, high: 0.1, log: true}", "log: true needs low > 0"),
    ("latent_dim: {type: int, low: 0, high: 8}", "latent_dim cannot be 0"),
    ("recon_loss: {type: categorical, choices: [bce, sometimes]}", "recon_loss cannot be 'sometimes'"),
    ("input_shape: {type: categorical, choices: [[1, 8, 8]]}", "unknown parameter 'input_shape'"),
])
def test_a_bad_space_file_is_refused_in_one_line(tmp_path, text, message):
    with pytest.raises(SpaceError, match=message):
        search_space("vae", write_space(tmp_path / "space.yaml", text + "\n"))


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory, good_space, one_thread) -> Path:
    folder = tmp_path_factory.mktemp("finished") / "study"
    tune("vae", "digits", folder, trials=1, space=good_space, hidden=(32,), epochs=1, settings={"training.log_every": 5})
    return folder


def _fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*")) if path.is_file() and path.name != ".best.lock"
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("arguments, message", [
    (["vae", "--space", "{bad_space}"], "unknown parameter 'widths'"),
    (["vae", "--space", "{empty_space}"], "empty range"),
    (["vae", "--metric", "sharpness"], "unknown metric 'sharpness'"),
    (["ae", "--metric", "nll"], "needs a likelihood"),
    (["vae", "--metric", "val/loss,psnr", "--direction", "minimize"], "one per metric"),
    (["vae", "--storage", "postgresql://nobody@127.0.0.1:{port}/nothing"], "cannot open the study storage"),
    (["ae"], "holds a study of model 'vae', not 'ae'"),
    (["vae", "--metric", "mse"], "holds a study of --metric val/loss"),
    (["vae", "--space", "{categorical_lr}"], "cannot change within a study"),
    (["vae", "--timeout", "soon"], "--timeout is a duration"),
])
def test_bad_input_is_one_line_and_leaves_the_study_unchanged(finished_study, tmp_path, arguments, message):
    from typer.testing import CliRunner

    from autoencoders.cli import app

    replacements = {
        "{bad_space}": str(write_space(tmp_path / "bad.yaml", "widths: {type: int, low: 8, high: 64}\n")),
        "{empty_space}": str(write_space(tmp_path / "empty.yaml", "lr: {type: float, low: 0.01, high: 0.001}\n")),
        "{categorical_lr}": str(write_space(tmp_path / "categorical.yaml", "lr: {type: categorical, choices: [0.01]}\n")),
    }
    arguments = [replacements.get(word, word.replace("{port}", str(_free_port()))) for word in arguments]
    before = _fingerprint(finished_study)
    result = CliRunner().invoke(app, ["tune", *arguments, "--data", "digits", "--trials", "2", "--epochs", "1", "--out", str(finished_study)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in " ".join(result.output.split()), result.output
    assert _fingerprint(finished_study) == before


# -- a real PostgreSQL, two workers --------------------------------------------------------------------------------
def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    which = shutil.which("pg_ctl")
    assert which, "PostgreSQL is not installed: apt-get install postgresql (.ci/run does)"
    return Path(which).resolve().parent


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway server on a free loopback port: initdb in a temporary folder, pg_ctl start, one database; stopped
    and removed at the end. As root it runs as the `postgres` system user (the server refuses root), in a folder of
    its own under the system's temporary folder (pytest's is private to root)."""
    import tempfile

    binaries = _postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="autoencoders-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    run(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -c fsync=off"
    run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-o", options, "start")
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("CREATE DATABASE tuning"))
        engine.dispose()
        yield f"postgresql://postgres@127.0.0.1:{port}/tuning"
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_a_postgresql_study(postgres_url, tmp_path, good_space):
    folders = [tmp_path / "machine-a", tmp_path / "machine-b"]  # one study folder each, as on two machines
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", "from autoencoders.cli import main; main()", "tune", "vae", "--data", "digits",
             "--trials", "4", "--epochs", "2", "--hidden", "32", "--space", str(good_space), "--set", "training.log_every=5",
             "--storage", postgres_url, "--study-name", "shared", "--out", str(folder)],
            env={**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for folder in folders
    ]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs

    from autoencoders.tuning.storage import with_installed_driver

    study = optuna.load_study(study_name="shared", storage=with_installed_driver(postgres_url))
    finished = study.trials
    assert all(trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for trial in finished), [
        trial.state for trial in finished
    ]
    assert 4 <= len(finished) <= 5  # each worker may finish one trial beyond N while the other finishes the Nth
    pids = {trial.user_attrs["worker"]["pid"] for trial in finished}
    assert pids == {worker.pid for worker in workers}  # both workers ran trials
    ran = {folder.name: {int(path.name) for path in (folder / "trials").iterdir()} for folder in folders}
    assert not ran["machine-a"] & ran["machine-b"]  # no trial ran twice
    assert ran["machine-a"] | ran["machine-b"] == {trial.number for trial in finished}
    for trial in finished:  # each trial's folder is on the machine of the worker that ran it
        folder = folders[[worker.pid for worker in workers].index(trial.user_attrs["worker"]["pid"])]
        assert (folder / trial.user_attrs["run"] / "model.safetensors").is_file()
