"""The search space of ``tune``: which settings a trial draws, and from where.

Each model family declares a default space next to its config (``search_space`` on the config dataclass; training
adds ``lr`` and ``batch_size`` from ``TrainingConfig.search_space``). A YAML file adds to it or changes it, in the
same form, one mapping per setting:

    lr: {type: float, low: 1e-4, high: 1e-2, log: true}
    latent_dim: {type: int, low: 4, high: 64}
    hidden: {type: categorical, choices: [[256, 128], [512, 256]]}
    beta: null                       # not tuned

A name is a field of the family's config, a training setting (``lr``, ``batch_size``, or ``training.NAME``); a
range and every choice are checked by the config itself (its types and ``bounds``), so a trial never draws a value
training would refuse. A setting fixed by the user (``--lr 3e-4``) leaves the default space.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoencoders.errors import InputError, short_repr

KINDS = ("float", "int", "categorical")
MAX_SPACE_FILE_BYTES = 1 << 16


class SpaceError(InputError):
    """A search space that cannot be searched: unknown names, empty ranges, values the config refuses."""


@dataclass(frozen=True)
class Parameter:
    """One tuned setting: ``name`` as the space names it, ``target`` the model field or ``training.*`` setting."""

    name: str
    target: str
    kind: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        """Draw this setting's value for an Optuna trial (lists among choices travel as JSON text)."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return self.decode(trial.suggest_categorical(self.name, self.distribution().choices))

    def distribution(self):
        """The Optuna distribution ``suggest`` draws from."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return CategoricalDistribution([json.dumps(c) if isinstance(c, (list, tuple)) else c for c in self.choices])

    def decode(self, value: Any) -> Any:
        """A value as Optuna stored it -> the setting's value."""
        if self.kind == "categorical" and isinstance(value, str) and any(isinstance(c, (list, tuple)) for c in self.choices):
            return json.loads(value) if value.startswith("[") else value
        return value


def search_space(model_name: str, space_file: str | Path | None = None, fixed: set[str] = frozenset()) -> list[Parameter]:
    """The parameters a trial of ``model_name`` draws: the family's and training's defaults without the ``fixed``
    settings, changed by ``space_file``. Raises SpaceError naming what is wrong."""
    from autoencoders.training.run import TrainingConfig, model_class

    config_class = model_class(model_name).config_class
    entries: dict[str, Any] = {
        name: spec for name, spec in {**TrainingConfig.search_space, **config_class.search_space}.items()
        if _target(name, config_class) not in fixed
    }
    if space_file is not None:
        entries.update(read_space_file(space_file))
    parameters = [_parameter(name, spec, config_class, space_file) for name, spec in entries.items() if spec is not None]
    if not parameters:
        raise SpaceError("the search space is empty: give a --space file naming the settings to tune")
    return parameters


def read_space_file(path: str | Path) -> dict[str, Any]:
    """A space file's mapping of name -> spec (or null), as YAML; its values are checked by ``search_space``."""
    from autoencoders.settings import read_yaml_mapping

    return read_yaml_mapping(path, "space file", MAX_SPACE_FILE_BYTES, "setting: {type: float, low: ..., high: ...}", SpaceError)


def _target(name: str, config_class: type) -> str:
    """The model field, or ``training.NAME``, that a space's name sets; '' when it names neither."""
    from autoencoders.training.run import TrainingConfig

    model_fields = {field.name for field in dataclasses.fields(config_class)}
    training_fields = {field.name for field in dataclasses.fields(TrainingConfig)}
    if name in model_fields:
        return name
    bare = name.removeprefix("training.")
    return f"training.{bare}" if bare in training_fields else ""


# settings the data fills in (a trial cannot change what the data is), and those that only steer the machine
UNTUNABLE = {"input_shape", "value_range", "num_classes", "dataset_size", "training.seed", "training.accelerator",
             "training.devices", "training.strategy", "training.num_nodes", "training.logger", "training.progress"}


def _parameter(name: str, spec: Any, config_class: type, space_file: str | Path | None) -> Parameter:
    where = f"space file {space_file}" if space_file is not None else f"the default space of {config_class.__name__}"
    target = _target(name, config_class)
    if not target or target in UNTUNABLE:
        tunable = sorted(field.name for field in dataclasses.fields(config_class) if field.name not in UNTUNABLE)
        raise SpaceError(
            f"unknown parameter {short_repr(name)} in {where}; tune a setting of {config_class.__name__} "
            f"({', '.join(tunable)}) or a training setting (lr, batch_size, training.weight_decay ...)"
        )
    if not isinstance(spec, dict) or spec.get("type") not in KINDS:
        raise SpaceError(f"{where}: {name} takes {{type: float|int|categorical, ...}}; got {short_repr(spec)}")
    known = {"type", "low", "high", "log", "choices"}
    if set(spec) - known:
        raise SpaceError(f"{where}: {name} has unknown key(s) {', '.join(sorted(map(str, set(spec) - known)))}; known: {', '.join(sorted(known))}")
    kind = spec["type"]
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}: {name} is categorical and needs a non-empty list of choices")
        for choice in choices:
            _check_value(target, choice, config_class, where)
        return Parameter(name, target, kind, choices=tuple(tuple(c) if isinstance(c, list) else c for c in choices))
    low, high, log = spec.get("low"), spec.get("high"), spec.get("log", False)
    for bound, value in (("low", low), ("high", high)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise SpaceError(f"{where}: {name} needs a finite number {bound}; got {short_repr(value)}")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise SpaceError(f"{where}: {name} is an int and needs whole-number low and high; got {low} and {high}")
    if not low < high:
        raise SpaceError(f"{where}: {name} has an empty range: low {low} must be below high {high}")
    if not isinstance(log, bool) or log and low <= 0:
        raise SpaceError(f"{where}: {name} with log: true needs low > 0 (log is true or false); got low {low}, log {short_repr(log)}")
    for value in (low, high):
        _check_value(target, int(value) if kind == "int" else float(value), config_class, where)
    return Parameter(name, target, kind, low=low, high=high, log=log)


def _check_value(target: str, value: Any, config_class: type, where: str) -> None:
    """The config itself judges a value (its annotation and ``bounds``, through ``check_settings``)."""
    from autoencoders.training.run import training_config

    try:
        if target.startswith("training."):
            training_config({target.removeprefix("training."): value})
        else:
            config_class.from_dict({target: value})
    except ValueError as error:
        raise SpaceError(f"{where}: {target} cannot be {short_repr(value)}: {error}") from None


def check_unchanged(parameters: list[Parameter], study) -> None:
    """A stored study's trials drew each parameter from a distribution; a float or int range may move, but
    Optuna keeps a categorical parameter's choices (and a parameter's kind) for the whole study."""
    from optuna.distributions import check_distribution_compatibility

    drawn = {}
    for trial in study.get_trials(deepcopy=False):
        drawn.update(trial.distributions)
    for parameter in parameters:
        if parameter.name in drawn:
            try:
                check_distribution_compatibility(drawn[parameter.name], parameter.distribution())
            except ValueError:
                raise SpaceError(
                    f"{parameter.name} is drawn from {drawn[parameter.name]} in this study; its kind and categorical "
                    f"choices cannot change within a study: keep them, or tune into another --out folder or --study-name"
                ) from None


def trial_settings(parameters: list[Parameter], values: dict[str, Any]) -> dict[str, Any]:
    """A trial's drawn values as ``train`` settings (model fields and ``training.*``)."""
    return {parameter.target: values[parameter.name] for parameter in parameters}
