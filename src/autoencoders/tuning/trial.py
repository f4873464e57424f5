"""One trial of ``tune``: draw its settings, train a normal run folder ``DIR/trials/NNN/``, measure the objectives.

What a trial records beside its values (Optuna user attributes): its worker (host, pid), its run folder, its
training time, its set-up and bookkeeping time (the seconds beyond training, up to the end of ``train``), and why
it failed or where it was pruned.
"""

from __future__ import annotations

import math
import time
from typing import Any

from autoencoders.tuning.objectives import Objective, measure
from autoencoders.tuning.space import trial_settings
from autoencoders.tuning.storage import worker_id

TRIALS_FOLDER = "trials"


def run_trial(trial, plan, dataset) -> float | list[float]:
    """Optuna's objective: train with the drawn settings on ``dataset`` (``plan.data``, loaded once per worker) and
    return the objective value(s)."""
    import optuna

    from autoencoders.io import read_config
    from autoencoders.training.module import NonFiniteLossError
    from autoencoders.training.run import train
    from autoencoders.tuning.pruning import PruneOnValidation

    started = time.perf_counter()
    trial.set_user_attr("worker", worker_id())
    drawn = {parameter.name: parameter.suggest(trial) for parameter in plan.parameters}
    run = plan.folder / TRIALS_FOLDER / f"{trial.number:03d}"
    trial.set_user_attr("run", f"{TRIALS_FOLDER}/{run.name}")
    pruning = PruneOnValidation(trial, plan.objectives[0].key) if plan.prunes else None
    settings = {**plan.settings, **trial_settings(plan.parameters, drawn)}
    failed = [math.nan] * len(plan.objectives)
    try:
        train(
            plan.model, plan.data, run, settings=settings, progress=False, callbacks=[pruning] if pruning else None,
            dataset=dataset, **plan.train_options,
        )
    except NonFiniteLossError as error:  # settings that make training diverge are a result: the trial failed
        trial.set_user_attr("failure", " ".join(str(error).split())[:300])
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        return failed[0] if len(failed) == 1 else failed
    training_seconds = float(read_config(run)["training"].get("seconds", 0.0))
    trial.set_user_attr("training_seconds", training_seconds)
    trial.set_user_attr("overhead_seconds", round(time.perf_counter() - started - training_seconds, 3))
    if pruning is not None and pruning.pruned_at is not None:
        trial.set_user_attr("pruned_at_epoch", pruning.pruned_at)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
    values = measure(plan.objectives, run, training_seconds)
    trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
    return values[0] if len(values) == 1 else values


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def trial_line(trial, objectives: list[Objective]) -> str:
    """``trial 3 complete: lr=0.0012 batch_size=64 -> val/loss 23.41 (9.8 s)``, or pruned at epoch k, or failed."""
    params = " ".join(f"{name}={format_value(value)}" for name, value in trial.params.items())
    seconds = trial.user_attrs.get("seconds")
    took = f" ({seconds:.1f} s)" if isinstance(seconds, (int, float)) else ""
    state = trial.state.name.lower()
    if state == "pruned":
        epoch = trial.user_attrs.get("pruned_at_epoch")
        last = trial.intermediate_values.get(epoch) if epoch is not None else None
        shown = f" at epoch {epoch}" + (f": {objectives[0].name} {format_value(last)}" if last is not None else "")
        return f"trial {trial.number} pruned{shown} [{params}]{took}"
    if state == "complete":
        values = ", ".join(f"{objective.name} {format_value(value)}" for objective, value in zip(objectives, trial.values))
        return f"trial {trial.number} complete: {values} [{params}]{took}"
    reason = trial.user_attrs.get("failure", "")
    return f"trial {trial.number} {state}{': ' + reason[:120] if reason else ''} [{params}]{took}"
