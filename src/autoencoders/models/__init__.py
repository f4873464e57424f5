"""Model families, one file each. ``MODELS`` maps a name to its class (imports torch)."""

from autoencoders.models.aae import AAE
from autoencoders.models.acai import ACAI
from autoencoders.models.ae import AE, DAE
from autoencoders.models.bagged_ae import BaggedAE
from autoencoders.models.base import Autoencoder, ModelConfig, Output, Player
from autoencoders.models.beta_tcvae import BetaTCVAE
from autoencoders.models.categorical_aae import AAECluster, AAESemi
from autoencoders.models.compressive_ae import CompressiveAE
from autoencoders.models.cvae import CVAE
from autoencoders.models.factor_vae import FactorVAE
from autoencoders.models.hvae import HVAE
from autoencoders.models.vae import DVAE, IWAE, VAE, BetaVAE
from autoencoders.models.vqvae import VQVAE
from autoencoders.models.vrnn import VRNN

MODELS: dict[str, type[Autoencoder]] = {cls.name: cls for cls in (AE, DAE, BaggedAE, VAE, BetaVAE, CVAE, AAE, AAESemi, AAECluster, ACAI, VRNN, FactorVAE, BetaTCVAE, CompressiveAE, HVAE, IWAE, DVAE, VQVAE)}

__all__ = ["MODELS", "Autoencoder", "ModelConfig", "Output", "Player", "AE", "DAE", "BaggedAE", "VAE", "BetaVAE", "CVAE", "AAE", "AAESemi", "AAECluster", "ACAI", "VRNN", "FactorVAE", "BetaTCVAE", "CompressiveAE", "HVAE", "IWAE", "DVAE", "VQVAE"]
