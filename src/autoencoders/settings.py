"""Settings as people write them: YAML values in flags, ``--set key=value`` and run files (``--config run.yaml``).

A run file is a YAML mapping of ``train``'s options (data, out, arch, hidden, latent_dim, batch_size, epochs,
max_steps, lr, seed, data_dir, limit), a ``set:`` mapping, and any other key, which is a model field or a
``data.*``/``training.*`` setting, the same as ``--set``. ``autoencoders.train(config="run.yaml")`` and the command
line read it the same way; what is given explicitly wins over the file.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from autoencoders.errors import InputError

# train's own options; every other key of a run file is a setting
TRAIN_OPTIONS = ("data", "out", "arch", "hidden", "latent_dim", "batch_size", "epochs", "max_steps", "lr", "seed", "data_dir", "limit")
MAX_RUN_FILE_BYTES = 1 << 20


@functools.cache
def _loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """PyYAML reads YAML 1.1, where an exponent without a dot (4e-4, 1e3) is text; here it is a number, as in
        YAML 1.2 and as anyone typing a learning rate means it."""

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
    )
    return Loader


def parse_value(text: str) -> Any:
    """A flag's or ``--set``'s value as YAML: ``4`` an int, ``4e-4`` a float, ``[64, 32]`` a list, ``mog`` text."""
    import yaml

    try:
        return yaml.load(text, Loader=_loader())
    except yaml.YAMLError as error:
        raise InputError(f"cannot read the value {text!r} ({' '.join(str(error).split())})") from error


def parse_ints(text: str | Any, option: str = "--hidden") -> tuple[int, ...]:
    """``"512,256"`` (or a list of ints) -> (512, 256)."""
    if isinstance(text, (list, tuple)):
        return tuple(text)
    try:
        return tuple(int(part) for part in str(text).replace(" ", "").split(",") if part)
    except ValueError:
        raise InputError(f"{option} takes comma-separated integers such as 512,256; got {text!r}") from None


def read_yaml_mapping(path: str | Path, what: str, max_bytes: int, example: str, error: type = InputError) -> dict[str, Any]:
    """A short YAML file holding a mapping with text keys, read with the project's loader after a size check;
    each problem raises ``error`` in one line naming the file as ``what`` (e.g. "config file") and the mapping
    expected (``example``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    text = path.read_bytes()[: max_bytes + 1]
    if len(text) > max_bytes:
        raise error(f"{what} {path} is larger than {max_bytes} bytes; it should be a short mapping")
    try:
        entries = yaml.load(text, Loader=_loader()) or {}
    except yaml.YAMLError as problem:
        raise error(f"{what} {path} is not valid YAML ({' '.join(str(problem).split())})") from problem
    if not isinstance(entries, dict) or not all(isinstance(key, str) for key in entries):
        raise error(f"{what} {path} must hold a mapping of {example}")
    return entries


def read_run_file(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run file as (train's options, settings): see the module's docstring."""
    options = read_yaml_mapping(path, "config file", MAX_RUN_FILE_BYTES, "option: value (e.g. `data: mnist` on a line)")
    settings = options.pop("set", None) or options.pop("settings", None) or {}
    if not isinstance(settings, dict):
        raise InputError(f"{path}: `set:` holds a mapping of setting: value")
    settings = {**settings, **{key: options.pop(key) for key in list(options) if key not in TRAIN_OPTIONS}}
    if "hidden" in options:
        options["hidden"] = parse_ints(options["hidden"])
    return options, settings
