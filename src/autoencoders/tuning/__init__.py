"""Hyper-parameter search over ``train`` (``autoencoders tune``), on Optuna: space.py (what a trial draws),
objectives.py (what it is scored on), trial.py (one trial: a run folder), pruning.py (stopping a bad trial from its
validation curve), storage.py (where the study lives; trials of dead workers), best.py (``DIR/best``), report.py
(``DIR/report.html``), study.py (``tune``)."""

from autoencoders.tuning.study import TuneResult, tune

__all__ = ["TuneResult", "tune"]
