"""``train``: from a model name and a dataset to a run folder, through Lightning.

Settings come in three groups, all recorded in the run's ``config.json``:
- model settings (fields of the family's config: ``beta``, ``noise``, ``recon_loss`` ...),
- ``data.*`` options passed to the dataset loader (``data.binarization=fixed``),
- ``training.*`` trainer settings (``TrainingConfig`` below).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from autoencoders.errors import InputError
from autoencoders.files import atomic_write_bytes, atomic_write_json
from autoencoders.io import ModelFileError, read_config, run_data_dir, save_model
from autoencoders.training.folder import claim_run_folder
from autoencoders.training.trainer import build_trainer

log = logging.getLogger("autoencoders")

LOGGERS = ("csv", "tensorboard", "mlflow")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")
# what a finished run adds to its "training" entry in config.json, beside the settings
OUTCOME_KEYS = ("steps_done", "epochs_done", "seconds", "stopped_early")
DURATION_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}


@dataclass
class TrainingConfig:
    """Trainer settings, each checked when the config is made (from flags, ``--set training.*`` or a run's
    ``config.json``), before any data is read or tensor allocated."""

    batch_size: int = 64
    epochs: int | None = None  # None with no max_steps: 10
    max_steps: int | None = None
    max_time: str | float | None = None  # wall-clock budget: "DD:HH:MM:SS", "90s", "15min", "1h" or seconds
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine (to zero over max_steps or max_time, whichever ends the run)
    weight_decay: float = 0.0
    seed: int = 0
    patience: int | None = None  # early stopping: epochs without a better val/loss
    checkpoint_every: int | None = None  # batches between mid-epoch writes of last.ckpt (besides every epoch's end)
    precision: str = "32-true"  # 32-true | 16-mixed | bf16-mixed
    accelerator: str = "auto"  # cpu | gpu | auto
    devices: int | str = 1
    strategy: str = "auto"  # ddp for several processes or machines
    num_nodes: int = 1
    logger: str = "csv"  # csv | tensorboard | mlflow (metrics.csv is always written)
    log_every: int = 50  # steps between logged training losses
    val_batch_size: int = 1024
    progress: bool = True

    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        "batch_size": (1, 2**24), "epochs": (1, 2**40), "max_steps": (1, 2**40), "lr": (0.0, 1e3),
        "weight_decay": (0.0, 1e3), "seed": (0, 2**32 - 1), "patience": (1, 2**20), "checkpoint_every": (1, 2**40), "devices": (1, 4096),
        "num_nodes": (1, 65536), "log_every": (1, 2**40), "val_batch_size": (1, 2**24),
    }
    # what `autoencoders tune` searches by default beside the model family's own space
    search_space: ClassVar[dict[str, dict]] = {"lr": {"type": "float", "low": 0.0001, "high": 0.01, "log": True}, "batch_size": {"type": "categorical", "choices": [32, 64, 128, 256]}}

    def __post_init__(self) -> None:
        from autoencoders.models.base import check_settings

        check_settings(self, self.bounds, "training setting")
        if self.max_time is not None:
            self.max_time = parse_duration(self.max_time)
        for name, value, choices in (
            ("logger", self.logger, LOGGERS), ("lr_schedule", self.lr_schedule, LR_SCHEDULES),
            ("precision", self.precision, PRECISIONS),
        ):
            if value not in choices:
                raise ValueError(f"unknown training setting {name} {value!r}; choose one of {', '.join(choices)}")
        if self.epochs is None and self.max_steps is None:
            self.epochs = 10


def parse_duration(value: str | float) -> str:
    """A wall-clock budget as Lightning's "DD:HH:MM:SS", from that form (or HH:MM:SS, MM:SS), from a number of
    seconds, or from text such as "90s", "15min", "1h", "1h30min", "2d"."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(:\d+){1,3}", text):
            parts = [int(part) for part in text.split(":")]
            seconds = float(sum(part * unit for part, unit in zip(reversed(parts), (1, 60, 3600, 86400))))
        elif re.fullmatch(r"(\d+(\.\d+)?(d|h|min|m|sec|s))+", text):
            seconds = sum(
                float(number) * DURATION_UNITS[unit] for number, _, unit in re.findall(r"(\d+(\.\d+)?)(d|h|min|m|sec|s)", text)
            )
        elif re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
    if seconds is None or not 1 <= seconds <= 365 * 86400:
        raise ValueError(
            f"training setting max_time is a duration from 1 s to a year, as DD:HH:MM:SS, 90s, 15min, 1h or 1h30min; "
            f"got {value!r}"
        )
    whole = round(seconds)
    return f"{whole // 86400:02d}:{whole % 86400 // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def recorded_training_problem(values: dict[str, Any]) -> str | None:
    """What is wrong with a run's recorded "training" entry (its settings and outcome), or None. Keys this
    version does not know are left alone: a run from an older version still loads."""
    known = {field.name for field in dataclasses.fields(TrainingConfig)}
    try:
        training_config({key: value for key, value in values.items() if key in known})
    except ValueError as error:
        return str(error)
    outcome = {"steps_done": int, "epochs_done": int, "seconds": (int, float), "stopped_early": bool}
    for key, kinds in outcome.items():
        value = values.get(key)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool) and kinds is not bool):
            return f"training.{key} is a {type(value).__name__}"
    return None


def parse_settings(settings: dict[str, Any] | None) -> tuple[dict, dict, dict]:
    """Split flat settings into (model, data options, training) by their ``data.``/``training.`` prefix."""
    model: dict[str, Any] = {}
    data: dict[str, Any] = {}
    training: dict[str, Any] = {}
    for key, value in (settings or {}).items():
        if key.startswith("data."):
            data[key.removeprefix("data.")] = value
        elif key.startswith("training."):
            training[key.removeprefix("training.")] = value
        else:
            model[key] = value
    return model, data, training


def training_config(values: dict[str, Any]) -> TrainingConfig:
    known = {field.name for field in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown training setting(s) {', '.join(str(name)[:60] for name in unknown[:10])}; known: {', '.join(sorted(known))}")
    return TrainingConfig(**values)


def model_settings(model_name: str, dataset, requested: dict[str, Any]) -> dict[str, Any]:
    """The dataset fills what the model must know about the data; the user's settings come on top."""
    cls = model_class(model_name)
    is_unit_image = len(dataset.item_shape) == 3 and tuple(dataset.value_range) == (0.0, 1.0)
    settings: dict[str, Any] = {
        "input_shape": tuple(dataset.item_shape),
        "value_range": tuple(dataset.value_range),
        # [0, 1] images: Bernoulli/BCE is the usual choice (exact for binary data); otherwise Gaussian/MSE
        "recon_loss": "bce" if dataset.binary or is_unit_image else "mse",
    }
    requested = {key: value for key, value in requested.items() if value is not None}
    if cls.needs_classes(requested):
        if dataset.num_classes < 2:
            raise ValueError(f"{model_name} with these settings uses class labels, but dataset {dataset.name!r} has none")
        settings["num_classes"] = dataset.num_classes
    settings.update(cls.data_settings(dataset, requested))
    settings.update(requested)
    return settings


def _unique_run_folder(model_name: str, data: str) -> Path:
    base = Path("runs") / f"{model_name}-{Path(data).stem}"
    folder, index = base, 2
    while folder.exists():
        folder, index = Path(f"{base}-{index}"), index + 1
    return folder


def train(
    model: str,
    data: str | None = None,
    out: str | Path | None = None,
    *,
    config: str | Path | None = None,
    arch: str | None = None,
    hidden: tuple[int, ...] | list[int] | None = None,
    latent_dim: int | None = None,
    batch_size: int | None = None,
    epochs: int | None = None,
    max_steps: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    settings: dict[str, Any] | None = None,
    progress: bool | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list | None = None,
    dataset=None,
) -> Path:
    """Train ``model`` on ``data`` and write a run folder; returns its path.

    ``settings`` holds further model fields (``beta``), ``data.*`` options and ``training.*`` settings; ``config``
    a YAML run file of the same (``autoencoders.settings``), below what is given here.
    With ``resume=True`` the run in ``out`` continues from ``checkpoints/last.ckpt`` (``best.ckpt`` when the last
    one is missing) with its saved settings (``epochs``/``max_steps`` may be raised). A folder that holds a run is
    refused unless it is resumed or ``overwrite=True`` replaces it; a folder in training is refused.
    ``callbacks``: Lightning callbacks added to the run's own (``tune`` prunes a trial through one). ``dataset``: ``data``
    already loaded with these settings (``tune`` loads it once for all its trials); the run records ``data`` as usual.
    """
    from autoencoders.data import load_dataset

    if config is not None:
        from autoencoders.settings import TRAIN_OPTIONS, read_run_file

        options, file_settings = read_run_file(config)
        settings = {**file_settings, **(settings or {})}
        given = (data, out, arch, hidden, latent_dim, batch_size, epochs, max_steps, lr, seed, data_dir, limit)  # TRAIN_OPTIONS' order
        data, out, arch, hidden, latent_dim, batch_size, epochs, max_steps, lr, seed, data_dir, limit = (
            value if value is not None else options.get(key) for key, value in zip(TRAIN_OPTIONS, given)
        )
    if not data and not resume:
        raise InputError("which data? pass --data NAME|PATH (see `autoencoders datasets`), or `data:` in the run file")
    model_requested, data_options, training_requested = parse_settings(settings)
    if "limit" in data_options:  # `--set data.limit=N` means what `--limit N` does
        if limit is not None and limit != data_options["limit"]:
            raise ValueError(f"limit is given twice ({limit} and data.limit={data_options['limit']}); give one")
        limit = data_options.pop("limit")
    direct = {"batch_size": batch_size, "epochs": epochs, "max_steps": max_steps, "lr": lr, "seed": seed, "progress": progress}
    training_requested.update({key: value for key, value in direct.items() if value is not None})

    if resume:
        if out is None:
            raise ValueError("--resume needs the run folder (--out DIR) to continue")
        out = Path(out)
        saved = read_config(out)
        extend = {key: training_requested[key] for key in ("epochs", "max_steps", "progress") if key in training_requested}
        run_config = {**saved, "training": {**saved["training"], **extend}}
        training_config({k: v for k, v in run_config["training"].items() if k not in OUTCOME_KEYS})
        with claim_run_folder(out, resume=True):
            checkpoint = resume_checkpoint(out)
            data_config = saved["data"]
            dataset = load_dataset(
                data_config["name"], data_dir=run_data_dir(data_config, data_dir), seed=data_config["seed"],
                limit=data_config.get("limit"), **data_config.get("options", {}),
            )
            return _fit(run_config, dataset, out, checkpoint, callbacks)

    out = Path(out) if out is not None else _unique_run_folder(model, data)
    training = training_config(training_requested)
    requested = {"arch": arch, "hidden": tuple(hidden) if hidden else None, "latent_dim": latent_dim, **model_requested}
    check_model_settings(model, requested)
    with claim_run_folder(out, overwrite=overwrite):
        if dataset is None:
            dataset = load_dataset(data, data_dir=data_dir, seed=training.seed, limit=limit, **data_options)
        run_config = {
            "model": {"name": model, "config": model_settings(model, dataset, requested)},
            "data": {
                "name": str(data),
                "data_dir": str(data_dir) if data_dir else None,
                "seed": training.seed,
                "limit": limit,
                "options": data_options,
                "preprocessing": dataset.preprocessing,
            },
            "training": dataclasses.asdict(training),
        }
        return _fit(run_config, dataset, out, None, callbacks)


def resume_checkpoint(out: Path) -> Path:
    """``checkpoints/last.ckpt``, or ``best.ckpt`` when the last one's first write never finished."""
    last, best = out / "checkpoints" / "last.ckpt", out / "checkpoints" / "best.ckpt"
    if last.exists():
        return last
    if best.exists():
        log.warning("%s is missing (its write was interrupted); resuming from %s", last, best.name)
        return best
    raise ModelFileError(
        f"{out} has no checkpoint to resume from (checkpoints/last.ckpt or best.ckpt); "
        "start the run again with --overwrite"
    )


def check_model_settings(model_name: str, requested: dict[str, Any]) -> None:
    """Refuse an unknown family or a bad model setting before any data is read (the data fills in shapes later)."""
    model_class(model_name).config_class.from_dict({key: value for key, value in requested.items() if value is not None})


def model_class(model_name: str):
    from autoencoders.models import MODELS

    if model_name not in MODELS:
        import difflib

        close = difflib.get_close_matches(model_name, MODELS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model {model_name!r}; choose one of {', '.join(MODELS)}.{hint}")
    return MODELS[model_name]


def _fit(run_config: dict[str, Any], dataset, out: Path, checkpoint: Path | None, callbacks: list | None = None) -> Path:
    import warnings

    import lightning.pytorch as pl
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from autoencoders import __version__
    from autoencoders.io import build_model
    from autoencoders.training.checkpoints import load_checkpoint
    from autoencoders.training.data import TensorDataModule
    from autoencoders.training.module import AutoencoderModule, NonFiniteLossError

    # these notices are noise in a library call: short runs log less often than log_every, a resumed run appends
    # to its own metrics.csv and checkpoints, a run shorter than an epoch has no val/loss for best.ckpt yet
    for notice in (
        "The number of training batches", "Experiment logs directory", r"`isinstance\(treespec, LeafSpec\)`",
        "Checkpoint directory .* exists and is not empty", r"`ModelCheckpoint\(monitor='val/loss'\)` could not find",
    ):
        warnings.filterwarnings("ignore", message=notice)
    training = training_config({k: v for k, v in run_config["training"].items() if k not in OUTCOME_KEYS})
    pl.seed_everything(training.seed, workers=False, verbose=False)
    model = build_model(run_config["model"]["name"], run_config["model"]["config"])
    module = AutoencoderModule(
        model, lr=training.lr, weight_decay=training.weight_decay, max_steps=training.max_steps, log_every=training.log_every,
        lr_schedule=training.lr_schedule,
    )
    data = TensorDataModule(
        dataset, training.batch_size, training.seed, training.val_batch_size, labels=model.uses_labels,
        labelled_items=model.labelled_items,
    )
    try:
        trainer = build_trainer(
            module, out, max_steps=training.max_steps, accelerator=training.accelerator, devices=training.devices,
            epochs=training.epochs, max_time=training.max_time, strategy=training.strategy, num_nodes=training.num_nodes,
            precision=training.precision, progress=training.progress, log_every=training.log_every, run_folder=True,
            logger=training.logger, patience=training.patience, callbacks=callbacks, checkpoint_every=training.checkpoint_every,
        )
    except MisconfigurationException as error:  # settings this machine cannot run (accelerator=gpu without one ...)
        raise InputError(f"training settings: {' '.join(str(error).split())}") from error
    run_config["autoencoders_version"] = __version__
    if trainer.is_global_zero:  # the one writer of the run folder, on every number of processes and machines
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", run_config)  # a crashed run still says what it was
    metrics_path = out / "metrics.csv"
    earlier_metrics = metrics_path.read_text() if checkpoint is not None and metrics_path.exists() else None
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=checkpoint)
    except NonFiniteLossError as error:
        last = out / "checkpoints" / "last.ckpt"
        kept = (
            f"Its last checkpoint {last} is kept: fix the data and --resume, or start again with --overwrite and other settings"
            if last.exists() else "No checkpoint had been written yet: start again with --overwrite and other settings"
        )
        raise NonFiniteLossError(f"{error} {kept}.") from None
    if earlier_metrics is not None and trainer.is_global_zero:
        _prepend_metrics(metrics_path, earlier_metrics)
    seconds = time.perf_counter() - started + run_config["training"].get("seconds", 0.0)

    if training.patience is not None:  # early stopping: keep the best weights, not the last
        best = out / "checkpoints" / "best.ckpt"
        if best.exists():
            state = load_checkpoint(best)["state_dict"]
            module.load_state_dict(state)
    run_config["training"].update(
        steps_done=module.step, epochs_done=trainer.current_epoch, seconds=round(seconds, 2),
        stopped_early=bool(trainer.should_stop and training.max_steps is None and training.patience is not None),
    )
    if trainer.is_global_zero:
        save_model(model.cpu(), out, extra=run_config)
    return out


def _prepend_metrics(metrics_path: Path, earlier: str) -> None:
    """Lightning's CSV logger starts metrics.csv afresh; a resumed run keeps the rows logged before it."""
    import io

    import pandas as pd

    before = pd.read_csv(io.StringIO(earlier))
    after = pd.read_csv(metrics_path) if metrics_path.exists() else before.iloc[:0]
    if len(after):  # rows logged after the checkpoint by the interrupted run are replaced by the new ones
        before = before[before["step"] < after["step"].min()]
    merged = pd.concat([before, after], ignore_index=True)
    atomic_write_bytes(metrics_path, merged.to_csv(index=False).encode())
