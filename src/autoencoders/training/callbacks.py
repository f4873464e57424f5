"""Callbacks and loggers of a run: checkpoints (last + best), early stopping, progress bar, metrics.csv."""

from __future__ import annotations

import copy
from pathlib import Path

from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger


def build_callbacks(
    out: Path, patience: int | None, progress: bool, phase_starts: list[int] = (), checkpoint_every: int | None = None,
) -> list[Callback]:
    """``phase_starts``: the steps where val/loss starts to measure another player (see ``NewPhase``);
    ``checkpoint_every``: batches between the mid-epoch writes of last.ckpt (see ``CheckpointEvery``)."""
    best = ModelCheckpoint(
        dirpath=out / "checkpoints", filename="best", monitor="val/loss", mode="min", save_top_k=1, enable_version_counter=False,
    )
    callbacks: list[Callback] = [
        # best.ckpt when val/loss improves; last.ckpt after every epoch (Lightning's save_last would only
        # follow the best one's saves, so an interrupted run could lose many epochs)
        best,
        ModelCheckpoint(dirpath=out / "checkpoints", filename="last", save_top_k=1, enable_version_counter=False),
    ]
    stopping = EarlyStopping(monitor="val/loss", mode="min", patience=patience) if patience is not None else None
    if stopping is not None:
        callbacks.append(stopping)
    if phase_starts:
        callbacks.append(NewPhase(phase_starts, best, stopping))
    if checkpoint_every is not None:
        callbacks.append(CheckpointEvery(out / "checkpoints" / "last.ckpt", checkpoint_every))
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=20))  # redrawing every step costs time on small models
    return callbacks


class CheckpointEvery(Callback):
    """last.ckpt also every ``every`` batches, inside epochs: an epoch over data larger than memory can take hours.
    The checkpoint holds the position in the epoch (``AutoencoderModule.on_save_checkpoint``), so a run resumed
    from it trains on the rest of that epoch's batches, as the interrupted run would have."""

    def __init__(self, path: Path, every: int):
        self.path = path
        self.every = every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.step % self.every == 0:
            trainer.save_checkpoint(self.path, weights_only=False)  # optimizers too; every DDP process calls it, rank 0 writes


class NewPhase(Callback):
    """Players trained one after another (a VQ-VAE's autoencoder, then its prior) have losses on different
    scales: when val/loss starts to follow the next player, the best checkpoint and early stopping start
    afresh, so neither keeps the weights of an earlier phase nor stops a phase for not beating it.

    Starting afresh is loading, through the callbacks' own state API, the state they had before training."""

    def __init__(self, phase_starts: list[int], best: ModelCheckpoint, stopping: EarlyStopping | None):
        self.phase_starts = set(phase_starts)
        self.callbacks = [callback for callback in (best, stopping) if callback is not None]
        self.unused_states = [copy.deepcopy(callback.state_dict()) for callback in self.callbacks]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.step in self.phase_starts:
            for callback, state in zip(self.callbacks, self.unused_states):
                callback.load_state_dict(copy.deepcopy(state))


def build_loggers(out: Path, kind: str) -> list[Logger]:
    loggers: list[Logger] = [CSVLogger(save_dir=out, name="", version="")]  # metrics.csv in the run folder
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=out, name="tensorboard", version=""))
    elif kind == "mlflow":
        from lightning.pytorch.loggers import MLFlowLogger

        loggers.append(MLFlowLogger(experiment_name="autoencoders", run_name=out.name, tracking_uri=f"file:{out / 'mlruns'}"))
    return loggers
