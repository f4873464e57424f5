"""Saved models and run folders: ``config.json`` + ``model.safetensors``, written atomically.

A run folder holds::

    config.json          model (name + config), data (name, options, preprocessing), training settings
    model.safetensors    weights only, no pickle
    metrics.csv          per-step logs;  metrics.json  the last evaluation
    checkpoints/         last.ckpt, best.ckpt (for --resume)
    pictures/, report.html

``load`` accepts such a folder, a folder written by ``save_pretrained``, or the ``.safetensors`` file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from autoencoders.errors import InputError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class ModelFileError(InputError):
    """A saved model that cannot be loaded, with what is wrong and what to do."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it over: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(descriptor, 0o666 & ~_umask())  # mkstemp makes 0600 files; saved models are for sharing
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=2, sort_keys=False) + "\n").encode())


def _folder(path: str | Path) -> Path:
    path = Path(path)
    if path.is_file() and path.suffix in (".safetensors", ".json"):
        return path.parent
    if not path.exists():
        raise ModelFileError(f"no saved model at {path}: the folder does not exist")
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a run or saved-model folder."""
    config_path = _folder(path) / CONFIG_FILE
    if not config_path.exists():
        raise ModelFileError(
            f"{config_path.parent} has no {CONFIG_FILE}; is it a run folder (autoencoders train ... --out DIR) "
            "or a folder written by save_pretrained?"
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{config_path} is not valid JSON ({error}); the file is damaged") from error
    if "model" not in config or "name" not in config.get("model", {}):
        raise ModelFileError(f"{config_path} does not describe a model (no 'model.name' entry)")
    return config


def save_model(model, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Save weights and config; keys already in ``config.json`` (data, training) are kept."""
    from safetensors.torch import save

    from autoencoders import __version__

    folder = Path(folder)
    config_path = folder / CONFIG_FILE
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    config.update(extra or {})
    config["autoencoders_version"] = __version__
    config["model"] = {"name": model.name, "config": model.config.to_dict()}
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    atomic_write_bytes(folder / WEIGHTS_FILE, save(state, metadata={"model": model.name}))
    atomic_write_json(config_path, config)
    return folder


def build_model(name: str, settings: dict[str, Any]):
    """A fresh model of family ``name`` from a config dict."""
    from autoencoders.models import MODELS

    if name not in MODELS:
        raise ModelFileError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    cls = MODELS[name]
    return cls(cls.config_class.from_dict(settings))


def load(path: str | Path, expected: str | None = None, device: str = "cpu"):
    """Rebuild a saved model exactly (eval mode). ``expected`` names the family the caller needs."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = _folder(path)
    config = read_config(folder)
    name = config["model"]["name"]
    if expected is not None and name != expected:
        raise ModelFileError(f"{folder} holds a {name!r} model, not a {expected!r}; load it with autoencoders.load")
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.exists():
        raise ModelFileError(
            f"{folder} has a config but no {WEIGHTS_FILE}: the run may not have finished. "
            f"Resume it with `autoencoders train ... --out {folder} --resume`"
        )
    try:
        model = build_model(name, config["model"]["config"])
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{folder / CONFIG_FILE}: the model config does not build a {name!r}: {error}") from error
    try:
        state = load_file(weights_path, device=device)
    except (SafetensorError, OSError) as error:
        raise ModelFileError(
            f"{weights_path} is damaged or truncated ({error}); retrain, or copy the file again"
        ) from error
    expected_state = model.state_dict()
    missing = sorted(set(expected_state) - set(state))
    unexpected = sorted(set(state) - set(expected_state))
    mismatched = [
        f"{key}: file {tuple(state[key].shape)} vs model {tuple(expected_state[key].shape)}"
        for key in expected_state
        if key in state and state[key].shape != expected_state[key].shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing[:5])}")
        if unexpected:
            problems.append(f"unexpected {', '.join(unexpected[:5])}")
        if mismatched:
            problems.append("shape mismatch " + "; ".join(mismatched[:5]))
        raise ModelFileError(
            f"{weights_path} does not fit the {name!r} model described by its config.json ({' | '.join(problems)}). "
            "The weights and config come from different models; save them together again"
        )
    model.load_state_dict(state)
    return model.to(device).eval()


def load_run_data(run_dir: str | Path, data_dir: str | Path | None = None, split_limit: int | None = None):
    """The dataset a run was trained on, with the same options and preprocessing."""
    from autoencoders.data import load_dataset

    data = read_config(run_dir).get("data")
    if not data:
        raise ModelFileError(f"{run_dir} records no dataset; pass --data NAME|PATH")
    return load_dataset(
        data["name"],
        data_dir=data_dir or data.get("data_dir"),
        seed=data.get("seed", 0),
        limit=split_limit if split_limit is not None else data.get("limit"),
        preprocessing=data.get("preprocessing") or None,
        **data.get("options", {}),
    )
