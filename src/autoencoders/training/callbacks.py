"""Callbacks and loggers of a run: checkpoints (last + best), early stopping, progress bar, metrics.csv."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger


def build_callbacks(out: Path, patience: int | None, progress: bool) -> list[Callback]:
    callbacks: list[Callback] = [
        # best.ckpt when val/loss improves; last.ckpt after every epoch (Lightning's save_last would only
        # follow the best one's saves, so an interrupted run could lose many epochs)
        ModelCheckpoint(
            dirpath=out / "checkpoints", filename="best", monitor="val/loss", mode="min",
            save_top_k=1, enable_version_counter=False,
        ),
        ModelCheckpoint(dirpath=out / "checkpoints", filename="last", save_top_k=1, enable_version_counter=False),
    ]
    if patience is not None:
        callbacks.append(EarlyStopping(monitor="val/loss", mode="min", patience=patience))
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=20))  # redrawing every step costs time on small models
    return callbacks


def build_loggers(out: Path, kind: str) -> list[Logger]:
    loggers: list[Logger] = [CSVLogger(save_dir=out, name="", version="")]  # metrics.csv in the run folder
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=out, name="tensorboard", version=""))
    elif kind == "mlflow":
        from lightning.pytorch.loggers import MLFlowLogger

        loggers.append(MLFlowLogger(experiment_name="autoencoders", run_name=out.name, tracking_uri=f"file:{out / 'mlruns'}"))
    return loggers
