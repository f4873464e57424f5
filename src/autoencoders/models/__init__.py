"""Model families, one file each. ``MODELS`` maps a name to its class (imports torch); the families are
registered in ``autoencoders.catalog.FAMILIES``."""

import importlib

from autoencoders.catalog import FAMILIES
from autoencoders.models.base import Autoencoder, ModelConfig, Output, Player

MODELS: dict[str, type[Autoencoder]] = {
    name: getattr(importlib.import_module(f"autoencoders.models.{family.module}"), family.class_name)
    for name, family in FAMILIES.items()
}
globals().update({cls.__name__: cls for cls in MODELS.values()})  # from autoencoders.models import VAE

__all__ = ["MODELS", "Autoencoder", "ModelConfig", "Output", "Player", *(cls.__name__ for cls in MODELS.values())]
