"""``tune``: a hyper-parameter search over ``train``, on Optuna, from one process to workers on many machines.

A study folder ``DIR`` holds ``study.json`` (which model and study it is), ``study.db`` (the SQLite storage, unless
``storage`` names another SQLAlchemy URL, e.g. a PostgreSQL server every worker reaches), ``trials/NNN/`` (each
trial's run folder, written by ``train``), ``best/`` (a copy of the best run) and ``report.html``.

``trials=N`` runs trials until the study holds N finished ones (completed or pruned): the same call after a kill
continues, and a trial the kill interrupted is marked failed (see ``storage``). Several workers (``jobs``, or the
same call on other machines with the same ``storage`` and ``study_name``) share the study: each trial is run by
one worker, and together they may finish up to one trial each beyond N. The sampler is TPE, seeded from ``seed``
(one worker's study is reproducible); trials of one objective measured on the validation curve are pruned by the
median rule after every validation epoch.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoencoders.errors import InputError
from autoencoders.files import atomic_write_json
from autoencoders.tuning.objectives import Objective, check_labels, parse_objectives
from autoencoders.tuning.space import Parameter, SpaceError, check_unchanged, search_space
from autoencoders.tuning.storage import open_storage, shown_url

log = logging.getLogger("autoencoders")

STUDY_FILE = "study.json"
STUDY_DB = "study.db"
STARTUP_TRIALS = 5  # random trials before TPE models the results
PRUNE_AFTER_TRIALS = 2  # completed trials the median rule needs before it prunes
PRUNE_WARMUP_EPOCHS = 1  # a trial is never pruned on its first validation
PR_SET_PDEATHSIG = 1  # Linux prctl: the signal a process gets when its parent ends
FAILURES_IN_A_ROW = 10  # a worker stops when this many of its trials fail one after another
# the options of ``train`` that ``tune`` passes on to every trial as they are given
TRAIN_OPTIONS = ("arch", "hidden", "latent_dim", "batch_size", "epochs", "max_steps", "lr", "seed", "data_dir", "limit")
DIRECT_TARGETS = {"lr": "training.lr", "batch_size": "training.batch_size", "epochs": "training.epochs",
                  "max_steps": "training.max_steps", "seed": "training.seed"}


class StudyFolderError(InputError):
    """A study folder or stored study that belongs to another model, study or set of metrics."""


@dataclass
class Plan:
    """Everything a worker needs, picklable, so that ``jobs`` workers start as processes of their own."""

    model: str
    data: str
    folder: Path
    url: str
    study_name: str
    parameters: list[Parameter]
    objectives: list[Objective]
    train_options: dict[str, Any]
    settings: dict[str, Any]
    trials: int
    deadline: float | None  # time.time() when no new trial starts
    seed: int
    shared: bool  # a storage other workers may use at once: each worker's sampler gets its own seed

    @property
    def prunes(self) -> bool:
        return len(self.objectives) == 1 and self.objectives[0].on_validation_curve


@dataclass
class TuneResult:
    """What a ``tune`` call left: the study's counts, its best trial(s) and where everything is."""

    folder: Path
    study_name: str
    storage: str  # without its password
    metrics: list[str]
    directions: list[str]
    finished: int
    pruned: int
    failed: int
    best: list[dict[str, Any]]  # number, values, params, run: one trial, or the Pareto front
    best_run: Path | None
    report: Path
    seconds: float
    trials_here: int = 0  # trials the study gained during this call (with a shared storage, other workers' too)
    notes: list[str] = field(default_factory=list)


def tune(
    model: str,
    data: str | None = None,
    out: str | Path | None = None,
    *,
    trials: int = 20,
    timeout: str | float | None = None,
    space: str | Path | None = None,
    metric: str | list[str] = "val/loss",
    direction: str | list[str] | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    jobs: int = 1,
    config: str | Path | None = None,
    settings: dict[str, Any] | None = None,
    **train_options: Any,
) -> TuneResult:
    """Search ``model``'s settings on ``data`` for the best ``metric`` (several, comma-separated: a Pareto front).

    ``space``: a YAML file changing the family's default search space (``autoencoders.tuning.space``).
    ``train_options`` (arch, hidden, latent_dim, batch_size, epochs, max_steps, lr, seed, data_dir, limit),
    ``settings`` and ``config`` fix what every trial shares, as ``train`` reads them; a fixed setting is not tuned.
    ``timeout``: no trial starts after it (a duration: 600, "10min", "1h"). Returns a TuneResult; the study
    folder ``out`` (default tuning/MODEL-DATA) holds the trials, ``best/`` and ``report.html``.
    """
    from autoencoders.training.run import model_class

    started = time.time()
    unknown = sorted(set(train_options) - set(TRAIN_OPTIONS))
    if unknown:
        raise InputError(f"tune got unknown option(s) {', '.join(unknown)}; it passes on {', '.join(TRAIN_OPTIONS)}")
    if not isinstance(trials, int) or isinstance(trials, bool) or not 1 <= trials <= 100_000:
        raise InputError(f"--trials is the number of finished trials the study should hold, 1 to 100000; got {trials!r}")
    if not isinstance(jobs, int) or not 1 <= jobs <= 256:
        raise InputError(f"--jobs is the number of worker processes, 1 to 256; got {jobs!r}")
    cls = model_class(model)
    data, train_options, settings = _fixed_options(data, train_options, settings or {}, config)
    if not data:
        raise InputError("which data? pass --data NAME|PATH (see `autoencoders datasets`)")
    objectives = parse_objectives(metric, direction, cls)
    fixed = _fixed_targets(train_options, settings)
    parameters = search_space(model, space, fixed)
    both = sorted(parameter.name for parameter in parameters if parameter.target in fixed)
    if both:
        raise SpaceError(f"{', '.join(both)} is fixed (an option or --set) and tuned (--space): drop one of the two")
    _check_fixed_settings(model, train_options, settings)
    if any(objective.key in ("probe", "kmeans", "classification_error", "cluster_error", "auroc") for objective in objectives):
        check_labels(objectives, _load_data(data, train_options, settings))
    deadline = started + _seconds(timeout) if timeout is not None else None

    folder = Path(out) if out is not None else Path("tuning") / f"{model}-{Path(str(data)).stem}"
    study_name = study_name or f"{model}-{Path(str(data)).stem}"
    _check_study_file(folder, model, study_name, objectives)
    if storage is None:
        if folder.exists() and not folder.is_dir():
            raise StudyFolderError(f"--out {folder} is a file; name a folder for the study")
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(folder / STUDY_DB).resolve()}"
    else:
        url = storage
    opened = open_storage(url)
    _open_study(opened, study_name, model, str(data), objectives, parameters)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / STUDY_FILE).exists():
        atomic_write_json(folder / STUDY_FILE, {
            "model": model, "data": str(data), "study_name": study_name, "storage": shown_url(url),
            "metrics": [objective.name for objective in objectives], "directions": [o.direction for o in objectives],
        })
    from autoencoders.tuning.storage import fail_dead_trials

    notes = [f"trial {number} was left running by a worker that is gone: marked failed" for number in fail_dead_trials(opened, study_name)]
    for note in notes:
        log.info(note)
    plan = Plan(
        model=model, data=str(data), folder=folder.resolve(), url=url, study_name=study_name, parameters=parameters,
        objectives=objectives, train_options=train_options, settings=settings, trials=trials, deadline=deadline,
        seed=int(train_options.get("seed") or settings.get("training.seed") or 0), shared=storage is not None,
    )
    before = _count(opened, study_name)
    log.info(
        "study %s (%s): %d of %d trials finished; tuning %s, %s", study_name, shown_url(url), before["finished"], trials,
        ", ".join(parameter.name for parameter in parameters),
        ", ".join(f"{objective.direction} {objective.name}" for objective in objectives),
    )
    _run_workers(plan, jobs)
    return _summary(plan, opened, started, before, notes)


def _fixed_options(data, train_options: dict[str, Any], settings: dict[str, Any], config) -> tuple[Any, dict, dict]:
    """Options and settings every trial shares: the run file's under what is given (as ``train`` reads them)."""
    options = {key: value for key, value in train_options.items() if value is not None}
    if config is not None:
        from autoencoders.settings import read_run_file

        file_options, file_settings = read_run_file(config)
        data = data or file_options.pop("data", None)
        file_options.pop("out", None)
        options = {**{key: value for key, value in file_options.items() if key in TRAIN_OPTIONS}, **options}
        settings = {**file_settings, **settings}
    if options.get("hidden") is not None:
        options["hidden"] = tuple(options["hidden"])
    return data, options, dict(settings)


def _fixed_targets(train_options: dict[str, Any], settings: dict[str, Any]) -> set[str]:
    """The model fields and ``training.*`` settings the user fixed."""
    targets = {DIRECT_TARGETS.get(key, key) for key in train_options if key not in ("data_dir", "limit")}
    return targets | {key for key in settings if not key.startswith("data.")}


def _check_fixed_settings(model: str, train_options: dict[str, Any], settings: dict[str, Any]) -> None:
    """The shared settings are checked before the study is touched, as ``train`` would check them."""
    from autoencoders.training.run import check_model_settings, parse_settings, training_config

    model_settings, _, training = parse_settings(settings)
    requested = {key: train_options.get(key) for key in ("arch", "hidden", "latent_dim")}
    check_model_settings(model, {**requested, **model_settings})
    direct = {key: train_options[key] for key in ("batch_size", "epochs", "max_steps", "lr", "seed") if key in train_options}
    training_config({**training, **direct})


def _load_data(data: str, train_options: dict[str, Any], settings: dict[str, Any]):
    from autoencoders.data import load_dataset
    from autoencoders.training.run import parse_settings

    _, data_options, training = parse_settings(settings)
    limit = data_options.pop("limit", train_options.get("limit"))  # `--set data.limit=N` is --limit N, as in train
    seed = train_options.get("seed", training.get("seed", 0))
    return load_dataset(data, data_dir=train_options.get("data_dir"), seed=seed, limit=limit, **data_options)


def _seconds(timeout: str | float) -> float:
    from autoencoders.training.run import parse_duration

    try:
        days, hours, minutes, seconds = (int(part) for part in parse_duration(timeout).split(":"))
    except ValueError as error:
        raise InputError(str(error).replace("training setting max_time", "--timeout")) from None
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def _check_study_file(folder: Path, model: str, study_name: str, objectives: list[Objective]) -> None:
    import json

    path = folder / STUDY_FILE
    if not path.is_file():
        return
    try:
        recorded = json.loads(path.read_text())
        recorded_model, recorded_name = str(recorded["model"]), str(recorded["study_name"])
        recorded_metrics = list(recorded["metrics"])
    except (OSError, ValueError, KeyError, TypeError):
        raise StudyFolderError(f"{path} is damaged; tune into another --out folder") from None
    if recorded_model != model:
        raise StudyFolderError(
            f"{folder} holds a study of model {recorded_model!r}, not {model!r}; tune {model} into another --out folder"
        )
    if recorded_name != study_name:
        raise StudyFolderError(f"{folder} holds study {recorded_name!r}, not {study_name!r}; give --study-name {recorded_name} or another --out folder")
    if recorded_metrics != [objective.name for objective in objectives]:
        raise StudyFolderError(
            f"{folder} holds a study of --metric {','.join(recorded_metrics)}; tune that metric there, or use another --out folder"
        )


def _open_study(storage, study_name: str, model: str, data: str, objectives: list[Objective], parameters: list[Parameter]) -> None:
    """Create the study, or check that the stored one is of this model and objectives, and its space compatible."""
    import optuna

    metrics = [objective.name for objective in objectives]
    directions = [objective.direction for objective in objectives]
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        study = optuna.create_study(storage=storage, study_name=study_name, directions=directions, load_if_exists=True)
        for key, value in (("model", model), ("data", data), ("metrics", metrics)):
            study.set_user_attr(key, value)
        return
    stored = study.user_attrs
    if stored.get("model") not in (None, model):
        raise StudyFolderError(f"study {study_name!r} in this storage tunes model {stored['model']!r}, not {model!r}; give another --study-name")
    if stored.get("metrics") not in (None, metrics) or [d.name.lower() for d in study.directions] != directions:
        raise StudyFolderError(
            f"study {study_name!r} in this storage tunes {','.join(stored.get('metrics') or [])} "
            f"({', '.join(d.name.lower() for d in study.directions)}); give another --study-name for other metrics"
        )
    check_unchanged(parameters, study)


def _count(storage, study_name: str) -> dict[str, int]:
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study_name)
    states = [trial.state for trial in storage.get_all_trials(study_id, deepcopy=False)]
    pruned = states.count(TrialState.PRUNED)
    return {"finished": states.count(TrialState.COMPLETE) + pruned, "pruned": pruned, "failed": states.count(TrialState.FAIL),
            "all": len(states)}


def _run_workers(plan: Plan, jobs: int) -> None:
    """``jobs`` workers on the study: this process and ``jobs - 1`` more, each with its share of the CPU threads."""
    if jobs == 1:
        work(plan, 0)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no Lightning or torch state carried over
    others = [context.Process(target=work, args=(plan, index, jobs), daemon=True) for index in range(1, jobs)]
    for process in others:
        process.start()
    try:
        work(plan, 0, jobs)
    finally:
        for process in others:
            process.join()
    failed = [process.exitcode for process in others if process.exitcode]
    if failed:
        log.warning("%d of %d worker processes ended with an error (exit codes %s)", len(failed), jobs - 1, failed)


def end_with_parent() -> None:
    """A spawned worker is killed when the process that started it ends, however it ends: a killed ``tune`` leaves
    no worker training on (its trial stays running, and the next call marks it failed, as for the main worker)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the parent ended before the request was made
            os._exit(1)


def work(plan: Plan, worker: int, jobs: int = 1) -> None:
    """One worker: run trials until the study holds ``plan.trials`` finished ones or the deadline passes."""
    import optuna

    from autoencoders.tuning.trial import run_trial, trial_line

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if jobs > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))
        if worker:  # a spawned process: its progress lines go to stderr as the command's notes do
            end_with_parent()
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("note: %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
    storage = open_storage(plan.url)
    finished = _count(storage, plan.study_name)
    if finished["finished"] >= plan.trials:
        return
    # the seed moves on with the study's history (a resumed study does not redraw its first trials) and differs
    # between the workers of one call, and between processes that share a server's study
    seed = plan.seed + finished["all"] + 7919 * worker + (os.getpid() if plan.shared else 0)
    study = optuna.load_study(
        study_name=plan.study_name, storage=storage,
        sampler=optuna.samplers.TPESampler(seed=seed % 2**32, n_startup_trials=STARTUP_TRIALS, constant_liar=True),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER_TRIALS, n_warmup_steps=PRUNE_WARMUP_EPOCHS)
        if plan.prunes else optuna.pruners.NopPruner(),
    )
    dataset = _load_data(plan.data, plan.train_options, plan.settings)  # once: every trial trains on the same data
    failures = [0]

    def after_trial(study, trial) -> None:
        from optuna.trial import TrialState

        from autoencoders.tuning.best import publish_best

        log.info(trial_line(trial, plan.objectives))
        failures[0] = failures[0] + 1 if trial.state == TrialState.FAIL else 0
        counts = _count(storage, plan.study_name)
        if counts["finished"] >= plan.trials or failures[0] >= FAILURES_IN_A_ROW:
            study.stop()
        if plan.deadline is not None and time.time() >= plan.deadline:
            study.stop()
        publish_best(plan.folder, study, lambda params: _decoded(plan.parameters, params))

    if plan.deadline is not None and time.time() >= plan.deadline:
        return
    study.optimize(
        lambda trial: run_trial(trial, plan, dataset), callbacks=[after_trial], gc_after_trial=False,
        timeout=None if plan.deadline is None else max(1.0, plan.deadline - time.time()),
    )


def _summary(plan: Plan, storage, started: float, before: dict[str, int], notes: list[str]) -> TuneResult:
    import optuna

    from autoencoders.tuning.best import best_trials, publish_best
    from autoencoders.tuning.report import write_study_report

    study = optuna.load_study(study_name=plan.study_name, storage=storage)
    counts = _count(storage, plan.study_name)
    best_run = publish_best(plan.folder, study, lambda params: _decoded(plan.parameters, params))
    report = write_study_report(plan.folder, study, plan.objectives)
    best = [
        {"number": trial.number, "values": trial.values, "params": _decoded(plan.parameters, trial.params), "run": trial.user_attrs.get("run")}
        for trial in best_trials(study)
    ]
    if not best:
        notes.append("no trial completed: no best run yet")
    elif best_run is None:
        notes.append(f"the best trial ({best[0]['number']}) ran on another machine: its run folder is there")
    return TuneResult(
        folder=plan.folder, study_name=plan.study_name, storage=shown_url(plan.url),
        metrics=[objective.name for objective in plan.objectives], directions=[objective.direction for objective in plan.objectives],
        finished=counts["finished"], pruned=counts["pruned"], failed=counts["failed"], best=best, best_run=best_run,
        report=report, seconds=time.time() - started, trials_here=counts["all"] - before["all"], notes=notes,
    )


def _decoded(parameters: list[Parameter], params: dict[str, Any]) -> dict[str, Any]:
    """A trial's parameters as settings (a list among categorical choices, not its JSON text)."""
    by_name = {parameter.name: parameter for parameter in parameters}
    return {name: by_name[name].decode(value) if name in by_name else value for name, value in params.items()}
