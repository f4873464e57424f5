"""Fuzzing the config loader: a saved model's config.json, mutated at random, either loads a model of bounded size or
is refused with ModelFileError, quickly; nothing else escapes. The trainer's settings get the same treatment.

CI runs a few hundred examples per property, derandomized; AUTOENCODERS_FUZZ_EXAMPLES=10000 runs a longer campaign.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autoencoders.io as model_io
from autoencoders.io import ModelFileError, load
from autoencoders.models import MODELS
from autoencoders.training.run import TrainingConfig, training_config

EXAMPLES = int(os.environ.get("AUTOENCODERS_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES, derandomize=True, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SMALL_MODEL = 10**7  # during fuzzing, models above this many weights are refused: a loaded one proves the bound held

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20,
)
# values that reach the corners: zero, negatives, huge counts, fractions, the wrong type
edge_values = st.sampled_from([0, -1, -3, 1, 2, 3, 10**12, 2**31, 2**63, 1e12, 0.5, float("nan"), float("inf"), "4e-4", "", None, [], {}, [0], [10**9], [1, 1, 1, 1, 1]])


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> dict[str, Path]:
    """One saved model per family, small (the fuzzing mutates copies of their configs)."""
    configs = {}
    for name in ("ae", "vae", "aae", "vqvae", "factor-vae", "hvae", "vrnn", "compressive-ae", "acai", "cvae"):
        cls = MODELS[name]
        settings_ = {"input_shape": (1, 8, 8), "hidden": (8,), "latent_dim": 2}
        if name == "vrnn":
            settings_ = {"input_shape": (6, 2), "latent_dim": 2}
        if name == "cvae":
            settings_["num_classes"] = 3
        if name == "vqvae":
            settings_.update(arch="conv", hidden=(4,), codebook_size=4, prior_channels=4, prior_layers=2)
        folder = tmp_path_factory.mktemp(name)
        cls(cls.config_class.from_dict(settings_)).save_pretrained(folder)
        configs[name] = folder
    return configs


def mutate(value, rng: random.Random, replacement):
    """``value`` (a parsed JSON document) with one entry somewhere replaced, deleted or added."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(sorted(value))
        choice = rng.random()
        if choice < 0.15:
            return {k: v for k, v in value.items() if k != key}
        if choice < 0.3:
            return {**value, f"extra_{rng.randrange(3)}": replacement}
        return {**value, key: mutate(value[key], rng, replacement) if rng.random() < 0.6 else replacement}
    if isinstance(value, list) and value and rng.random() < 0.8:
        index = rng.randrange(len(value))
        return [mutate(entry, rng, replacement) if i == index else entry for i, entry in enumerate(value)]
    return replacement


def write_and_load(folder: Path, text: str | bytes, monkeypatch) -> None:
    monkeypatch.setattr(model_io, "MAX_PARAMETERS", SMALL_MODEL)
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    try:
        model = load(folder)
    except ModelFileError:
        return
    assert sum(tensor.numel() for tensor in model.state_dict().values()) <= SMALL_MODEL


@FUZZ
@given(
    family=st.sampled_from(["ae", "vae", "aae", "vqvae", "factor-vae", "hvae", "vrnn", "compressive-ae", "acai", "cvae"]),
    seed=st.integers(0, 2**32 - 1),
    replacement=st.one_of(edge_values, json_values),
    rounds=st.integers(1, 3),
)
def test_mutated_configs_load_or_are_refused(saved_models, tmp_path, monkeypatch, family, seed, replacement, rounds):
    rng = random.Random(seed)
    config = json.loads((saved_models[family] / "config.json").read_text())
    for _ in range(rounds):
        config = mutate(config, rng, replacement)
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    shutil.copy(saved_models[family] / "model.safetensors", folder / "model.safetensors")  # the family's own weights
    write_and_load(folder, json.dumps(config), monkeypatch)


@FUZZ
@given(data=st.binary(max_size=400), family=st.sampled_from(["ae", "vae", "vqvae"]), cut=st.integers(0, 400))
def test_mutated_config_bytes_load_or_are_refused(saved_models, tmp_path, monkeypatch, data, family, cut):
    text = (saved_models[family] / "config.json").read_bytes()
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    shutil.copy(saved_models[family] / "model.safetensors", folder / "model.safetensors")
    write_and_load(folder, text[:cut] + data + text[cut + len(data):], monkeypatch)


def test_deep_nesting_and_huge_numbers_are_refused(tmp_path, monkeypatch):
    write_and_load(tmp_path / "deep", "[" * 100_000 + "]" * 100_000, monkeypatch)
    write_and_load(tmp_path / "digits", '{"model": {"name": "ae", "config": {"latent_dim": ' + "9" * 10_000 + "}}}", monkeypatch)


@FUZZ
@given(values=st.dictionaries(st.sampled_from(sorted(TrainingConfig.__dataclass_fields__) + ["nonsense"]), st.one_of(edge_values, json_values), max_size=5))
def test_mutated_training_settings_are_checked_or_refused(values):
    try:
        config = training_config(values)
    except ValueError:
        return
    assert config.batch_size >= 1 and (config.epochs is None or config.epochs >= 1) and config.lr >= 0
