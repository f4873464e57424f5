"""Pruning a trial from its validation curve: a Lightning callback that reports the objective to Optuna after
every validation epoch and, when the study's pruner says so, ends training there.

It stops the Trainer instead of raising inside it (as optuna-integration's callback does), so the pruned trial
still saves a loadable run folder with its curve; ``tune`` then records the trial as pruned.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback


class PruneOnValidation(Callback):
    def __init__(self, trial, monitor: str):
        self.trial = trial
        self.monitor = monitor
        self.pruned_at: int | None = None  # the epoch it was pruned after, when it was

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.pruned_at is not None:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            trainer.should_stop = True
