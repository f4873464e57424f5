"""Train a model on tensors in memory, with no run folder: how the scikit-learn estimators, anomaly detection and
the rotation predictor train.

The same ``AutoencoderModule`` (players, optimizers, step counter) as ``autoencoders train``, but no validation,
checkpoints, logs or progress bar, and nothing printed.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from autoencoders.io import build_model
from autoencoders.training.run import model_settings
from autoencoders.training.trainer import build_trainer


def fit_model(
    model, items, *, max_steps: int, batch_size: int, lr: float, weight_decay: float = 0.0, seed: int = 0,
    device: str = "cpu",
):
    """Train ``model`` on the tensor ``items`` (N, *input_shape) for ``max_steps`` batches, quietly and in memory.

    The generic ``AutoencoderModule`` steps every player of the model, as in ``autoencoders train``; no
    validation, checkpoints, logs or progress bar. Returns the model, in eval mode, on the CPU.
    """
    from autoencoders.data import TensorBatches
    from autoencoders.training.module import AutoencoderModule

    module = AutoencoderModule(model, lr=lr, weight_decay=weight_decay, max_steps=max_steps, log_every=max_steps + 1)
    batches = TensorBatches(items, None, batch_size=batch_size, shuffle=True, seed=seed)
    with tempfile.TemporaryDirectory(prefix="autoencoders-fit-") as scratch, warnings.catch_warnings():
        # "no validation set", "few batches per epoch" and the like are expected here, not news to the user
        warnings.simplefilter("ignore")
        trainer = build_trainer(
            module, Path(scratch), max_steps=max_steps, accelerator="gpu" if device.startswith("cuda") else "cpu",
        )
        trainer.fit(module, train_dataloaders=batches)
    return model.cpu().eval()


def training_steps(max_steps: int | None, epochs: int | None, items: int, batch_size: int) -> int:
    """Batches to train on: ``max_steps``, else ``epochs`` passes over the items (default 10)."""
    return int(max_steps) if max_steps is not None else (epochs or 10) * math.ceil(items / batch_size)


def train_on_items(
    model_name: str,
    items: Tensor,
    settings: dict[str, Any],
    *,
    epochs: int | None = None,
    max_steps: int | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
):
    """A fresh ``model_name`` trained on in-memory items with the library's training module, quietly.

    ``settings`` are model fields (``latent_dim``, ``arch``, ``beta`` ...); the data fills the input shape and
    value range. Training runs ``max_steps`` batches, or ``epochs`` passes over the items (default 10).
    """
    low, high = float(items.min()), float(items.max())
    unit_images = items.dim() == 4 and low >= 0.0 and high <= 1.0
    data = SimpleNamespace(  # what model_settings reads of a dataset
        name="items", item_shape=tuple(items.shape[1:]), binary=False, num_classes=0,
        value_range=(0.0, 1.0) if unit_images else (low, max(high, low + 1.0)),
    )
    config = model_settings(model_name, data, {key: value for key, value in settings.items() if value is not None})
    max_steps = training_steps(max_steps, epochs, len(items), batch_size)
    with torch.random.fork_rng(devices=[]):  # the caller's random streams stay as they were
        torch.manual_seed(seed)
        model = build_model(model_name, config)
        if model.uses_labels:
            raise ValueError(
                f"{model_name!r} with these settings needs class labels, which anomaly detection does not have; "
                "use an unsupervised family (ae, dae, vae, beta-vae, aae)"
            )
        return fit_model(model, items, max_steps=max_steps, batch_size=batch_size, lr=lr, seed=seed, device=device)
