"""autoencoders: train, evaluate and use the whole autoencoder family.

    import autoencoders
    run = autoencoders.train("vae", "digits", "runs/vae-digits", max_steps=2000)
    model = autoencoders.load(run)              # or autoencoders.VAE.from_pretrained(run)
    autoencoders.evaluate(run, metrics=["mse", "nll"])
    study = autoencoders.tune("vae", "digits", "tuning/vae-digits", trials=20, epochs=10)  # study.best_run

Heavy modules (torch, Lightning) load on first use, so ``import autoencoders`` and the CLI start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from autoencoders.catalog import FAMILIES

# the model classes, by the names they have in autoencoders.models
MODEL_CLASSES = ("Autoencoder", *(family.class_name for family in FAMILIES.values()))
_LAZY = {
    "train": "autoencoders.training.run",
    "tune": "autoencoders.tuning",
    "load": "autoencoders.io",
    "evaluate": "autoencoders.metrics",
    "load_dataset": "autoencoders.data",
    "MODELS": "autoencoders.models",
    "write_report": "autoencoders.report",
    "AutoencoderTransformer": "autoencoders.uses.estimator",
    "AnomalyDetector": "autoencoders.uses.anomaly",
    "AnomalyEnsemble": "autoencoders.uses.anomaly",
    "InputError": "autoencoders.errors",
    **{name: "autoencoders.models" for name in MODEL_CLASSES},
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autoencoders' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
