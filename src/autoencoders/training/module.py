"""The one LightningModule that trains every model.

It knows nothing of model families: a model names its players (``model.players()``), each with its
parameters and loss, and this module steps each player's optimizer on its own loss, in order, every batch
(manual optimization). Each batch gets one fresh ``state`` dict that every player's loss receives: the players
share what they computed on the batch through it (see ``Player``). Hot-path care: no host synchronisation per
step except the finiteness check on CPU (where it is free), logging only every ``log_every`` steps.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.strategies import SingleDeviceStrategy
import torch
from torch import Tensor

from autoencoders.data.batches import TensorBatches
from autoencoders.errors import InputError


class NonFiniteLossError(InputError):
    """A loss term became NaN or infinite; training stops before the bad step is applied. Settings or data
    cause it (a learning rate too high, values out of range), so it is reported like any bad input."""


def make_optimizer(parameters, lr: float, betas: tuple[float, float], weight_decay: float) -> torch.optim.Optimizer:
    parameters = [p for p in parameters if p.requires_grad]
    # foreach=True is a multi-tensor update: fewer kernel launches than a Python loop over parameters
    if weight_decay > 0:
        return torch.optim.AdamW(parameters, lr=lr, betas=betas, weight_decay=weight_decay, foreach=True)
    return torch.optim.Adam(parameters, lr=lr, betas=betas, foreach=True)


class AutoencoderModule(pl.LightningModule):
    def __init__(
        self,
        model: torch.nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        max_steps: int | None = None,
        log_every: int = 50,
        lr_schedule: str = "constant",
    ):
        super().__init__()
        self.automatic_optimization = False
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_steps = max_steps
        self.log_every = log_every
        self.lr_schedule = lr_schedule
        self.players = model.players()  # built once: the training step is a hot path
        self.player_names = list(self.players)
        self.direct_steps = False
        self.step = 0  # batches trained on; models read it for schedules (e.g. KL warm-up)
        self.epoch_batches = 0  # batches trained on in this epoch: where a mid-epoch checkpoint resumes
        self._resume_position: tuple[int | None, int] = (None, 0)  # (epoch, its batches trained) of a loaded checkpoint
        self.lr_factor = 1.0  # the schedule's share of each player's learning rate
        self.timer: Timer | None = None  # Lightning's wall-clock budget (max_time), when the run has one

    # -- optimizers ------------------------------------------------------------------------------------
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            make_optimizer(player.parameters(), player.lr or self.lr, player.betas, self.weight_decay)
            for player in self.players.values()
        ]

    def optimizer_steps(self, batches: int) -> int:
        """Optimizer steps in the first ``batches`` batches: Lightning's ``max_steps`` counts these.

        A player steps ``repeats`` times on each batch b in [start, min(stop, batches)) with b % every == 0.
        """
        total = 0
        for player in self.players.values():
            end = batches if player.stop is None else min(player.stop, batches)
            batches_stepped = max(0, math.ceil(end / player.every) - math.ceil(player.start / player.every))
            total += player.repeats * batches_stepped
        return total

    # -- training ----------------------------------------------------------------------------------------

    def training_step(self, batch: tuple[Tensor, Tensor | None], batch_idx: int) -> None:
        x, y = batch
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        check_now = self.device.type == "cpu" or self.step % self.log_every == 0
        log_now = (self.step + 1) % self.log_every == 0  # the batches on which Lightning writes logs
        if self.lr_schedule == "cosine":
            self._set_cosine_lr(optimizers)
        if log_now and self.lr_schedule != "constant":
            self.log("train/lr_factor", self.lr_factor, batch_size=x.shape[0])
        state: dict[str, Any] = {}
        for (name, player), optimizer in zip(self.players.items(), optimizers):
            if not player.steps_at(self.step):
                continue
            for _ in range(player.repeats):
                terms = player.loss(x, y, step=self.step, state=state)
                if check_now:
                    self._check_finite(name, terms)
                optimizer.zero_grad(set_to_none=True)
                if self.direct_steps:
                    # LightningOptimizer.step's own two hooks, private on purpose: they keep Lightning's step
                    # counter (global_step, which ends the run at max_steps) while skipping its wrappers, which
                    # dispatch the backward and optimizer-step hooks to every callback (none here implements them).
                    # No public call does both: step(closure=loss.backward) cost 5 % more per batch on small
                    # models (ae and aae, hidden 32, digits, CPU), manual_backward and step() 13 % on the ae.
                    terms["loss"].backward()
                    optimizer._on_before_step()
                    optimizer.optimizer.step()
                    optimizer._on_after_step()
                else:
                    self.manual_backward(terms["loss"])
                    optimizer.step()
            if log_now:
                prefix = "train/" if len(optimizers) == 1 else f"train/{name}/"
                self.log_dict({prefix + key: value.detach() for key, value in terms.items()}, batch_size=x.shape[0])
        self.step += 1
        self.epoch_batches += 1

    def run_progress(self) -> float:
        """How far the run is, from 0 to 1: its share of the planned steps or of its wall-clock budget
        (``max_time``), whichever is further, so that a schedule ends when the run does."""
        progress = self.step / max(self.total_steps, 1)
        if self.timer is not None:
            elapsed = self.timer.time_elapsed()
            # the Timer's own stop test compares each rank's clock; one shared value keeps the replicas' rates equal
            progress = max(progress, self.trainer.strategy.broadcast(elapsed / (elapsed + self.timer.time_remaining())))
        return min(progress, 1.0)

    def _set_cosine_lr(self, optimizers: list) -> None:
        """Cosine decay from each player's learning rate to zero over the run (Loshchilov & Hutter 2017)."""
        self.lr_factor = 0.5 * (1 + math.cos(math.pi * self.run_progress()))
        for player, optimizer in zip(self.players.values(), optimizers):
            for group in optimizer.param_groups:
                group["lr"] = (player.lr or self.lr) * self.lr_factor

    def _check_finite(self, player: str, terms: dict[str, Tensor]) -> None:
        if torch.isfinite(terms["loss"]).item():
            return
        bad = [key for key, value in terms.items() if not math.isfinite(float(value.detach()))]
        raise NonFiniteLossError(
            f"step {self.step}: loss term(s) {', '.join(bad)} of player {player!r} became non-finite. "
            "The step was not applied. Try a lower learning rate (--lr), gradient clipping, a smaller beta, "
            "or check the data for NaN/inf values and its value range."
        )

    # -- validation ------------------------------------------------------------------------------------
    def validation_step(self, batch: tuple[Tensor, Tensor | None], batch_idx: int) -> None:
        x, y = batch
        single = len(self.player_names) == 1
        watched = self.watched_player()
        state: dict[str, Any] = {}
        for name, player in self.players.items():
            terms = player.loss(x, y, step=self.step, state=state)
            values = {("val/" if single else f"val/{name}/") + key: value for key, value in terms.items()}
            if name == watched and not single:  # early stopping and best.ckpt watch this player's loss
                values["val/loss"] = terms["loss"]
            self.log_dict(values, batch_size=x.shape[0], sync_dist=True)  # averaged over DDP processes

    def watched_player(self) -> str:
        """The player whose val/loss early stopping and best.ckpt follow: the first one in its training phase
        at this step (a VQ-VAE's autoencoder, then its prior; an adversarial model's autoencoder)."""
        for name, player in self.players.items():
            if player.start <= self.step and (player.stop is None or self.step < player.stop):
                return name
        return self.player_names[-1]  # past every phase: the last one to have trained

    def phase_starts(self) -> list[int]:
        """The steps at which the watched player changes (its losses before and after are not comparable)."""
        bounds = {player.start for player in self.players.values()} | {
            player.stop for player in self.players.values() if player.stop is not None
        }
        return sorted(step for step in bounds if step > 0)

    def on_train_epoch_start(self) -> None:
        # the batch order is a function of (seed, epoch): a resumed run sees the same epochs again
        loader = self.trainer.train_dataloader
        if isinstance(loader, TensorBatches):
            loader.set_epoch(self.current_epoch)
        self.epoch_batches = 0

    def _resume_inside_epoch(self) -> None:
        """A run resumed from a checkpoint written inside an epoch (Lightning calls no ``on_train_epoch_start``
        then) trains on the rest of that epoch's batches, in that epoch's order."""
        epoch, batches = self._resume_position
        self._resume_position = (None, 0)
        loader = self.trainer.train_dataloader
        if epoch == self.current_epoch and isinstance(loader, TensorBatches) and 0 < batches < len(loader):
            loader.set_epoch(epoch)
            loader.resume_at(batches)
            self.epoch_batches = batches

    # -- exact resume: the step counter, the position in the epoch and the random streams are the state --------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["autoencoders"] = {
            "step": self.step, "epoch": self.current_epoch, "epoch_batches": self.epoch_batches, "rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            checkpoint["autoencoders"]["cuda_rng"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("autoencoders", {})
        self.step = state.get("step", 0)
        self._resume_position = (state.get("epoch"), state.get("epoch_batches", 0))
        self._restored_rng = state

    def on_train_start(self) -> None:
        self.total_steps = self.max_steps or int(self.trainer.estimated_stepping_batches)
        self.timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer) and c.time_remaining() is not None), None)
        # full precision on one device: nothing for Lightning's precision plugin or strategy to do in a step
        self.direct_steps = isinstance(self.trainer.strategy, SingleDeviceStrategy) and self.trainer.precision == "32-true"
        self._resume_inside_epoch()
        # restored here, after Lightning's own start-up, so nothing draws from the streams in between
        state = getattr(self, "_restored_rng", None)
        if state:
            torch.set_rng_state(state["rng"])
            if "cuda_rng" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            self._restored_rng = None
