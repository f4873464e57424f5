"""``train``: from a model name and a dataset to a run folder, through Lightning.

Settings come in three groups, all recorded in the run's ``config.json``:
- model settings (fields of the family's config: ``beta``, ``noise``, ``recon_loss`` ...),
- ``data.*`` options passed to the dataset loader (``data.binarization=fixed``),
- ``training.*`` trainer settings (``TrainingConfig`` below).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoencoders.io import ModelFileError, atomic_write_bytes, atomic_write_json, read_config, save_model

LOGGERS = ("csv", "tensorboard", "mlflow")
# what a finished run adds to its "training" entry in config.json, beside the settings
OUTCOME_KEYS = ("steps_done", "epochs_done", "seconds", "stopped_early")


@dataclass
class TrainingConfig:
    batch_size: int = 64
    epochs: int | None = None  # None with no max_steps: 10
    max_steps: int | None = None
    max_time: str | None = None  # wall-clock budget "DD:HH:MM:SS"; training stops when it is spent
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine (to zero over max_steps or max_time, whichever ends the run)
    weight_decay: float = 0.0
    seed: int = 0
    patience: int | None = None  # early stopping: epochs without a better val/loss
    precision: str = "32-true"  # 32-true | 16-mixed | bf16-mixed
    accelerator: str = "auto"  # cpu | gpu | auto
    devices: int | str = 1
    strategy: str = "auto"  # ddp for several processes or machines
    num_nodes: int = 1
    logger: str = "csv"  # csv | tensorboard | mlflow (metrics.csv is always written)
    log_every: int = 50  # steps between logged training losses
    val_batch_size: int = 1024
    progress: bool = True


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
    from autoencoders.models.base import refuse_text_numbers

    known = {field.name: field for field in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    refuse_text_numbers(known, values, "training setting")
    config = TrainingConfig(**values)
    if config.logger not in LOGGERS:
        raise ValueError(f"unknown logger {config.logger!r}; choose one of {', '.join(LOGGERS)}")
    if config.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}; choose constant or cosine")
    if config.epochs is None and config.max_steps is None:
        config.epochs = 10
    return config


def model_settings(model_name: str, dataset, requested: dict[str, Any]) -> dict[str, Any]:
    """The dataset fills what the model must know about the data; the user's settings come on top."""
    from autoencoders.models import MODELS

    if model_name not in MODELS:
        import difflib

        close = difflib.get_close_matches(model_name, MODELS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model {model_name!r}; choose one of {', '.join(MODELS)}.{hint}")
    cls = MODELS[model_name]
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
    data: str,
    out: str | Path | None = None,
    *,
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
) -> Path:
    """Train ``model`` on ``data`` and write a run folder; returns its path.

    ``settings`` holds further model fields (``beta``), ``data.*`` options and ``training.*`` settings.
    With ``resume=True`` the run in ``out`` continues from ``checkpoints/last.ckpt`` with its saved
    settings (``epochs``/``max_steps`` may be raised).
    """
    from autoencoders.data import load_dataset

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
        checkpoint = out / "checkpoints" / "last.ckpt"
        if not checkpoint.exists():
            raise ModelFileError(f"{out} has no checkpoints/last.ckpt to resume from; start the run again without --resume")
        extend = {key: training_requested[key] for key in ("epochs", "max_steps", "progress") if key in training_requested}
        run_config = {**saved, "training": {**saved["training"], **extend}}
        data_config = saved["data"]
        dataset = load_dataset(
            data_config["name"], data_dir=data_dir or data_config.get("data_dir"), seed=data_config["seed"],
            limit=data_config.get("limit"), **data_config.get("options", {}),
        )
    else:
        out = Path(out) if out is not None else _unique_run_folder(model, data)
        checkpoint = None
        training = training_config(training_requested)
        dataset = load_dataset(data, data_dir=data_dir, seed=training.seed, limit=limit, **data_options)
        requested = {"arch": arch, "hidden": tuple(hidden) if hidden else None, "latent_dim": latent_dim, **model_requested}
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
    return _fit(run_config, dataset, out, checkpoint)


def _fit(run_config: dict[str, Any], dataset, out: Path, checkpoint: Path | None) -> Path:
    import lightning.pytorch as pl
    import torch

    from autoencoders import __version__
    from autoencoders.io import build_model
    from autoencoders.training.callbacks import build_callbacks, build_loggers
    from autoencoders.training.checkpoints import AtomicCheckpointIO
    from autoencoders.training.data import TensorDataModule
    from autoencoders.training.module import AutoencoderModule

    import logging

    import warnings

    # Lightning's start-up banner (accelerator lines, tips) and these notices are noise in a library call:
    # short runs log less often than log_every, a resumed run appends to its own metrics.csv
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    for notice in ("The number of training batches", "Experiment logs directory", r"`isinstance\(treespec, LeafSpec\)`"):
        warnings.filterwarnings("ignore", message=notice)
    training = training_config({k: v for k, v in run_config["training"].items() if k not in OUTCOME_KEYS})
    pl.seed_everything(training.seed, workers=False, verbose=False)
    model = build_model(run_config["model"]["name"], run_config["model"]["config"])
    out.mkdir(parents=True, exist_ok=True)
    run_config["autoencoders_version"] = __version__
    atomic_write_json(out / "config.json", run_config)  # a crashed run still says what it was

    module = AutoencoderModule(
        model, lr=training.lr, weight_decay=training.weight_decay, max_steps=training.max_steps, log_every=training.log_every,
        lr_schedule=training.lr_schedule,
    )
    data = TensorDataModule(
        dataset, training.batch_size, training.seed, training.val_batch_size, labels=model.uses_labels,
        labelled_items=model.labelled_items,
    )
    trainer = pl.Trainer(
        default_root_dir=out,
        max_epochs=training.epochs if training.epochs is not None else -1,
        max_time=training.max_time,
        max_steps=module.optimizer_steps(training.max_steps) if training.max_steps is not None else -1,
        accelerator=training.accelerator,
        devices=training.devices,
        # each player's backward reaches only its own parameters: DDP must not expect every parameter in every one
        strategy="ddp_find_unused_parameters_true" if training.strategy == "ddp" and len(module.players) > 1 else training.strategy,
        num_nodes=training.num_nodes,
        precision=training.precision,
        logger=build_loggers(out, training.logger),
        callbacks=build_callbacks(out, training.patience, training.progress, module.phase_starts()),
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=training.progress,
        enable_model_summary=False,
        log_every_n_steps=training.log_every,
        num_sanity_val_steps=0,
    )
    metrics_path = out / "metrics.csv"
    earlier_metrics = metrics_path.read_text() if checkpoint is not None and metrics_path.exists() else None
    started = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=checkpoint)
    if earlier_metrics is not None and trainer.is_global_zero:
        _prepend_metrics(metrics_path, earlier_metrics)
    seconds = time.perf_counter() - started + run_config["training"].get("seconds", 0.0)

    if training.patience is not None:  # early stopping: keep the best weights, not the last
        best = out / "checkpoints" / "best.ckpt"
        if best.exists():
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
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
