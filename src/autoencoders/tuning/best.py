"""``DIR/best``: a copy of the best trial's run folder (checkpoints left out), loadable like any run.

It is replaced whole: the new copy is written beside it and renamed into place, so a reader finds the old best or
the new one (for the moment between the two renames, none). Workers of one folder take turns under a lock.
With several objectives, the best is the Pareto-optimal trial best on the first one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from autoencoders.files import atomic_write_json

BEST_FOLDER = "best"
TRIAL_FILE = "trial.json"  # in best/: which trial it is a copy of
LOCK_FILE = ".best.lock"


def best_trials(study) -> list:
    """The best trial (one objective) or the Pareto front (several), best on the first objective first."""
    from optuna.study import StudyDirection

    if len(study.directions) == 1:
        try:
            return [study.best_trial]
        except ValueError:  # no trial has completed
            return []
    sign = 1 if study.directions[0] == StudyDirection.MINIMIZE else -1
    return sorted(study.best_trials, key=lambda trial: (sign * trial.values[0], trial.number))


def publish_best(folder: Path, study, settings_of=dict) -> Path | None:
    """Copy the best trial's run to ``folder/best`` when it is not there yet; returns ``folder/best`` or None when
    there is no best trial with a run folder on this machine (a worker elsewhere trained it). ``settings_of`` turns
    a trial's Optuna parameters into settings for best/trial.json."""
    trials = best_trials(study)
    if not trials:
        return None
    trial = trials[0]
    source = folder / str(trial.user_attrs.get("run", ""))
    if not (source / "model.safetensors").is_file():
        return None
    best = folder / BEST_FOLDER
    with _locked(folder / LOCK_FILE):
        if _copied_trial(best) == trial.number:
            return best
        staging = folder / f".best-new-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging, ignore=shutil.ignore_patterns("checkpoints", ".lock"))
        atomic_write_json(staging / TRIAL_FILE, {"trial": trial.number, "values": trial.values, "params": settings_of(trial.params)})
        retired = folder / f".best-old-{os.getpid()}"
        if best.exists():
            os.rename(best, retired)
        os.rename(staging, best)
        shutil.rmtree(retired, ignore_errors=True)
    return best


def _copied_trial(best: Path) -> int | None:
    import json

    try:
        return int(json.loads((best / TRIAL_FILE).read_text())["trial"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
