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
import logging
import os
from pathlib import Path
from typing import Any

from autoencoders.data import load_dataset
from autoencoders.data.files import DATA_ENV
from autoencoders.errors import InputError, short_repr
from autoencoders.files import atomic_write_bytes, atomic_write_json

log = logging.getLogger("autoencoders")

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class ModelFileError(InputError):
    """A saved model that cannot be loaded, with what is wrong and what to do."""


def _folder(path: str | Path) -> Path:
    path = Path(path)
    if path.is_file() and path.suffix in (".safetensors", ".json"):
        return path.parent
    if not path.exists():
        raise ModelFileError(f"no saved model at {path}: the folder does not exist")
    return path


MAX_CONFIG_BYTES = 64 << 20  # a config with a table's scaling or a text alphabet is kilobytes; refuse what is not
MAX_PARAMETERS = 2**31  # numbers in a model's weights: 8 GB of float32


def read_config(path: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a run or saved-model folder, its structure checked (the values are checked by
    the model's and the trainer's configs when they are built)."""
    config_path = _folder(path) / CONFIG_FILE
    if not config_path.exists():
        raise ModelFileError(
            f"{config_path.parent} has no {CONFIG_FILE}; is it a run folder (autoencoders train ... --out DIR) "
            "or a folder written by save_pretrained?"
        )
    with config_path.open("rb") as handle:  # read with a limit: a link to /dev/zero has no size to check first
        text = handle.read(MAX_CONFIG_BYTES + 1)
    if len(text) > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{config_path} is larger than {MAX_CONFIG_BYTES} bytes, more than any config this library writes")
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, bad UTF-8, an integer of 5000 digits, deep nesting
        raise ModelFileError(f"{config_path} is not valid JSON ({str(error)[:200]}); the file is damaged") from error
    problem = _config_problem(config)
    if problem:
        raise ModelFileError(f"{config_path} is not a model's config: {problem}")
    return config


# entries of config.json and the types they must have (None allowed where a type tuple holds type(None))
_SECTIONS = {"model": dict, "data": (dict, type(None)), "training": (dict, type(None))}
_DATA_ENTRIES = {
    "name": str, "data_dir": (str, type(None)), "seed": int, "limit": (int, type(None)), "options": dict,
    "preprocessing": (dict, type(None)),
}


def _config_problem(config: Any) -> str | None:
    """What is wrong with the structure of a parsed config.json, or None."""
    if not isinstance(config, dict):
        return f"it holds a {type(config).__name__}, not an object"
    for key, kinds in _SECTIONS.items():
        if key in config and not isinstance(config[key], kinds):
            return f"its {key!r} entry is a {type(config[key]).__name__}, not an object"
    model = config.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        return "it has no 'model.name' entry"
    if not isinstance(model.get("config", {}), dict):
        return "its 'model.config' entry is not an object"
    for key, kinds in _DATA_ENTRIES.items():
        data = config.get("data") or {}
        if key in data and not isinstance(data[key], kinds) or isinstance(data.get(key), bool):
            return f"its 'data.{key}' entry is a {type(data[key]).__name__}"
    if config.get("training"):
        from autoencoders.training.run import recorded_training_problem

        return recorded_training_problem(config["training"])
    return None


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


def build_model(name: str, settings: dict[str, Any], encoder=None, decoder=None):
    """A fresh model of family ``name`` from a config dict. The config's values are checked first, then the
    network is built on the meta device (no memory) to count its weights, so a config from a file cannot make
    the real build allocate without bound."""
    import torch

    from autoencoders.models import MODELS
    from autoencoders.models.base import CUSTOM_ARCH

    if name not in MODELS:
        raise ModelFileError(f"unknown model {short_repr(name)}; known models: {', '.join(MODELS)}")
    cls = MODELS[name]
    config = cls.config_class.from_dict(settings)
    if config.arch == CUSTOM_ARCH or encoder is not None or decoder is not None:
        if config.arch == CUSTOM_ARCH and encoder is None and decoder is None:
            raise ModelFileError(
                f"this {name} was built with its user's own encoder and decoder (arch 'custom'); load it with "
                f"{cls.__name__}.from_pretrained(folder, encoder=..., decoder=...) and the same modules"
            )
        return cls.with_networks(config, encoder, decoder)
    try:
        with torch.device("meta"):
            numbers = sum(tensor.numel() for tensor in cls(config).state_dict().values())
    except RuntimeError as error:  # shapes the layers cannot take (a kernel larger than the image ...)
        raise ValueError(f"these settings do not build a {name}: {str(error).splitlines()[0][:200]}") from error
    if numbers > MAX_PARAMETERS:
        raise ValueError(f"these settings give a {name} of {numbers:,} weights, more than the {MAX_PARAMETERS:,} this library builds; use smaller widths or codes")
    return cls(config)


def load(path: str | Path, expected: str | None = None, device: str = "cpu", encoder=None, decoder=None):
    """Rebuild a saved model exactly (eval mode). ``expected`` names the family the caller needs; a model made
    ``with_networks`` takes its encoder and decoder modules again."""
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
        model = build_model(name, config["model"].get("config", {}), encoder, decoder)
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
    retyped = [
        f"{key}: file {state[key].dtype} vs model {expected_state[key].dtype}"
        for key in expected_state
        if key in state and state[key].dtype != expected_state[key].dtype
    ]
    if missing or unexpected or mismatched or retyped:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing[:5])}")
        if unexpected:
            problems.append(f"unexpected {', '.join(unexpected[:5])}")
        if mismatched:
            problems.append("shape mismatch " + "; ".join(mismatched[:5]))
        if retyped:
            problems.append("dtype mismatch " + "; ".join(retyped[:5]))
        raise ModelFileError(
            f"{weights_path} does not fit the {name!r} model described by its config.json ({' | '.join(problems)}). "
            "The weights and config come from different models; save them together again"
        )
    broken = [key for key, tensor in state.items() if tensor.is_floating_point() and not bool(tensor.isfinite().all())]
    if broken:
        raise ModelFileError(
            f"{weights_path} holds NaN or infinite weights ({', '.join(broken[:5])}); the model diverged or the file "
            "is damaged: retrain it"
        )
    model.load_state_dict(state)
    return model.to(device).eval()


def load_run_data(
    run_dir: str | Path, data_dir: str | Path | None = None, split_limit: int | None = None, data: str | None = None,
):
    """The dataset a run was trained on, with the same options and preprocessing; or, with ``data``, another
    dataset (a name or a path) scaled with the run's preprocessing."""
    recorded = read_config(run_dir).get("data")
    if data is not None:
        preprocessing = (recorded or {}).get("preprocessing") or None
        return load_dataset(data, data_dir=data_dir, limit=split_limit, preprocessing=preprocessing)
    if not recorded:
        raise ModelFileError(f"{run_dir} records no dataset; pass --data NAME|PATH")
    return load_dataset(
        recorded["name"],
        data_dir=run_data_dir(recorded, data_dir),
        seed=recorded.get("seed", 0),
        limit=split_limit if split_limit is not None else recorded.get("limit"),
        preprocessing=recorded.get("preprocessing") or None,
        **recorded.get("options", {}),
    )


def run_data_dir(data_config: dict[str, Any], data_dir: str | Path | None) -> str | Path | None:
    """Where a run's dataset is looked for: the user's ``data_dir`` or ``$AUTOENCODERS_DATA`` first; the folder the
    run recorded is only a hint (a shared run folder must not choose what this machine reads)."""
    chosen = data_dir or os.environ.get(DATA_ENV) or data_config.get("data_dir")
    if chosen and not Path(str(data_config.get("name", ""))).suffix:  # a named dataset, not a file of the user's
        source = "--data-dir" if data_dir else f"${DATA_ENV}" if os.environ.get(DATA_ENV) else "the folder the run recorded"
        log.info("reading dataset %s from %s (%s)", data_config.get("name"), chosen, source)
    return chosen
