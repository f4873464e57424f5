"""Model families, one file each. ``MODELS`` maps a name to its class (imports torch)."""

from autoencoders.models.aae import AAE, AAECluster, AAESemi
from autoencoders.models.acai import ACAI
from autoencoders.models.ae import AE, DAE
from autoencoders.models.base import Autoencoder, ModelConfig, Output, Player
from autoencoders.models.cvae import CVAE
from autoencoders.models.vae import VAE, BetaVAE

MODELS: dict[str, type[Autoencoder]] = {cls.name: cls for cls in (AE, DAE, VAE, BetaVAE, CVAE, AAE, AAESemi, AAECluster, ACAI)}

__all__ = ["MODELS", "Autoencoder", "ModelConfig", "Output", "Player", "AE", "DAE", "VAE", "BetaVAE", "CVAE", "AAE", "AAESemi", "AAECluster", "ACAI"]
