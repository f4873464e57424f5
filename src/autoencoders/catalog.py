"""What the library offers, readable without importing torch (so ``autoencoders models`` answers at once).

The classes themselves live in ``autoencoders.models``; ``FAMILIES`` says where.
"""

from dataclasses import dataclass

@dataclass(frozen=True)
class Family:
    module: str  # in autoencoders.models
    class_name: str
    generative: bool  # the class's own ``generative`` flag, readable here without torch (a test keeps them equal)
    description: str


# Registering a model family is one line here (and its file in models/): the CLI lists these without importing
# torch, ``autoencoders.models.MODELS`` imports each class from its module, ``autoencoders`` exports the classes.
FAMILIES = {
    "ae": Family("ae", "AE", False, "Autoencoder: deterministic code, reconstruction loss (mse, l1, bce, hamming); latent_dropout"),
    "dae": Family("ae", "DAE", False, "Denoising autoencoder: Gaussian, masking or salt-and-pepper corruption, clean target"),
    "bagged-ae": Family("bagged_ae", "BaggedAE", False, "Feature-bagged AEs: small MLP autoencoders, each on a random subset of the columns; tabular anomaly detection"),
    "vae": Family("vae", "VAE", True, "Variational autoencoder: Gaussian posterior, Bernoulli/Gaussian/Laplace decoder, analytic KL"),
    "beta-vae": Family("vae", "BetaVAE", True, "β-VAE: VAE with β (default 4) and constant, linear warm-up or cyclical KL schedules"),
    "cvae": Family("cvae", "CVAE", True, "Conditional VAE: encoder and decoder conditioned on the label; sample a chosen class"),
    "aae": Family("aae", "AAE", True, "Adversarial AE: a latent discriminator matches codes to a Gaussian, mixture or swiss-roll prior; supervised"),
    "aae-semi": Family("categorical_aae", "AAESemi", True, "Semi-supervised AAE: label head + style, both adversarially regularized, trained on a few labels"),
    "aae-cluster": Family("categorical_aae", "AAECluster", True, "Clustering AAE: a categorical cluster head + style, adversarially regularized, no labels"),
    "acai": Family("acai", "ACAI", False, "ACAI: autoencoder whose decoded latent interpolations a critic must not tell from data"),
    "compressive-ae": Family("compressive_ae", "CompressiveAE", False, "Compressive AE: quantized code priced by a learned entropy model, trained for rate + distortion"),
    "vrnn": Family("vrnn", "VRNN", True, "Variational RNN: per-step prior, posterior and decoder on a GRU/LSTM state; series and text; per-step anomaly scores"),
    "factor-vae": Family("factor_vae", "FactorVAE", True, "FactorVAE: VAE + γ·total correlation, estimated by a discriminator on dimension-permuted codes"),
    "beta-tcvae": Family("beta_tcvae", "BetaTCVAE", True, "β-TCVAE: KL split into index-code MI, total correlation, dimension-wise KL, weighted α, β, γ"),
    "hvae": Family("hvae", "HVAE", True, "Hierarchical (ladder) VAE: stochastic layers inferred top down, precision-weighted or residual; KL per layer, free bits"),
    "iwae": Family("vae", "IWAE", True, "IWAE: VAE trained on the K-sample importance-weighted bound (iwae_samples, default 5; any VAE takes it)"),
    "dvae": Family("vae", "DVAE", True, "Denoising VAE: the encoder sees Gaussian, masking or salt-and-pepper corrupted input, clean target"),
    "vqvae": Family("vqvae", "VQVAE", True, "VQ-VAE: integer code grid, EMA codebook with dead-code restarts, gated PixelCNN prior trained after it"),
}
MODEL_DESCRIPTIONS = {name: family.description for name, family in FAMILIES.items()}
GENERATIVE = {name for name, family in FAMILIES.items() if family.generative}

# unit and direction of every metric (↑: higher is better), for tables a person reads; readable without torch
METRIC_UNITS = {
    "mse": ("per value", "↓"), "l1": ("per value", "↓"), "bce": ("nats per item", "↓"),
    "hamming": ("values per item", "↓"), "psnr": ("dB", "↑"), "ssim": ("", "↑"),
    "nll": ("nats per item", "↓"), "neg_elbo": ("nats per item", "↓"), "kl": ("nats per item", "↓"),
    "probe": ("accuracy", "↑"), "kmeans": ("accuracy", "↑"), "classification_error": ("share", "↓"),
    "cluster_error": ("share", "↓"), "cluster_stability": ("share", "↑"),
    "fid": ("", "↓"), "kid": ("", "↓"), "precision": ("share", "↑"), "recall": ("share", "↑"), "is": ("", "↑"),
    "mig": ("", "↑"), "factor-score": ("accuracy", "↑"),
    "lines_mean_distance": ("", "↓"), "lines_smoothness": ("", "↓"),
}


def metric_unit(name: str) -> tuple[str, str]:
    """(unit, ↑ or ↓) of a metric as it is saved: ``val/psnr``, ``fid_domain_gmm`` and ``fid_gmm`` are fid's and psnr's;
    ("", "") for a name this table does not know."""
    base = name.rsplit("/", 1)[-1].removesuffix("_gmm").removesuffix("_domain")
    return METRIC_UNITS.get(base, ("", ""))
