"""The one place a Lightning ``Trainer`` is built: for a run folder (``train``) or in memory (``fit_model``).

Both count ``max_steps`` in batches, as the training module does (Lightning gets the optimizer steps the players
take in that many), skip the sanity validation and the model summary. A run folder adds what a run keeps:
validation every epoch, checkpoints written atomically, loggers, early stopping; in memory there is none of these.
"""

from __future__ import annotations

import logging
from pathlib import Path


def build_trainer(
    module,
    root: Path,
    *,
    max_steps: int | None,
    accelerator: str,
    devices: int | str = 1,
    epochs: int | None = None,
    max_time: str | None = None,
    strategy: str = "auto",
    num_nodes: int = 1,
    precision: str | None = None,
    progress: bool = False,
    log_every: int | None = None,
    run_folder: bool = False,
    logger: str = "csv",
    patience: int | None = None,
    callbacks: list | None = None,
    checkpoint_every: int | None = None,
):
    """A ``Trainer`` for ``module`` (an ``AutoencoderModule``) that stops after ``max_steps`` batches or ``epochs``
    epochs (None: no limit) or ``max_time``.

    With ``run_folder``, ``root`` is the run's folder: validation, checkpoints, ``logger`` (csv, tensorboard or
    mlflow; metrics.csv always), with ``patience`` early stopping on val/loss, with ``checkpoint_every`` a
    last.ckpt every that many batches as well as after every epoch, and ``callbacks`` (a tuning trial's pruning). Without, ``root`` is scratch
    space: nothing is validated, checkpointed or logged. ``precision`` and ``log_every`` None: Lightning's defaults.
    """
    import lightning.pytorch as pl

    # Lightning's start-up banner (accelerator lines, tips) is noise in a library call
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    if run_folder:
        from autoencoders.training.callbacks import build_callbacks, build_loggers
        from autoencoders.training.checkpoints import AtomicCheckpointIO

        outputs = {
            "logger": build_loggers(root, logger),
            "callbacks": build_callbacks(root, patience, progress, module.phase_starts(), checkpoint_every) + list(callbacks or []),
            "plugins": [AtomicCheckpointIO()],
        }
    else:
        outputs = {"logger": False, "enable_checkpointing": False, "limit_val_batches": 0}
    if strategy == "auto" and (num_nodes > 1 or isinstance(devices, int) and devices > 1):
        strategy = "ddp"  # several processes: DDP (gloo on CPU, nccl on GPU), whatever Lightning would pick
    return pl.Trainer(
        default_root_dir=root,
        max_epochs=epochs if epochs is not None else -1,
        max_time=max_time,
        max_steps=module.optimizer_steps(max_steps) if max_steps is not None else -1,
        accelerator=accelerator,
        devices=devices,
        # each player's backward reaches only its own parameters: DDP must not expect every parameter in every one
        strategy="ddp_find_unused_parameters_true" if strategy == "ddp" and len(module.players) > 1 else strategy,
        num_nodes=num_nodes,
        precision=precision,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=log_every,
        num_sanity_val_steps=0,
        **outputs,
    )
