"""Checkpoints written atomically (a crash while saving leaves the previous file whole) and read without running
code: ``weights_only=True`` is passed explicitly, so not even ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` (which people
set to read old checkpoints) lets a planted checkpoint unpickle arbitrary objects on ``--resume``."""

from __future__ import annotations

import io
import pickle
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from autoencoders.files import atomic_write_bytes
from autoencoders.io import ModelFileError


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path, map_location)


def load_checkpoint(path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint's contents: tensors and plain values only; anything else is refused with a clear message."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelFileError(
            f"{path} is not a checkpoint this library wrote, or it is damaged ({reason[:200]}); it was not loaded, "
            "since a checkpoint may hold code. Start the run again with --overwrite"
        ) from error
