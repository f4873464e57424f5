"""What the library offers, readable without importing torch (so ``autoencoders models`` answers at once).

The classes themselves live in ``autoencoders.models``; a test keeps the two lists equal.
"""

MODEL_DESCRIPTIONS = {
    "ae": "Autoencoder: deterministic code, reconstruction loss (mse, l1, bce, hamming); latent_dropout",
    "dae": "Denoising autoencoder: Gaussian, masking or salt-and-pepper corruption, clean target",
    "bagged-ae": "Feature-bagged AEs: small MLP autoencoders, each on a random subset of the columns; tabular anomaly detection",
    "vae": "Variational autoencoder: Gaussian posterior, Bernoulli/Gaussian/Laplace decoder, analytic KL",
    "beta-vae": "β-VAE: VAE with β (default 4) and constant, linear warm-up or cyclical KL schedules",
    "cvae": "Conditional VAE: encoder and decoder conditioned on the label; sample a chosen class",
    "aae": "Adversarial AE: a latent discriminator matches codes to a Gaussian, mixture or swiss-roll prior; supervised",
    "aae-semi": "Semi-supervised AAE: label head + style, both adversarially regularized, trained on a few labels",
    "aae-cluster": "Clustering AAE: a categorical cluster head + style, adversarially regularized, no labels",
    "acai": "ACAI: autoencoder whose decoded latent interpolations a critic must not tell from data",
    "compressive-ae": "Compressive AE: quantized code priced by a learned entropy model, trained for rate + distortion",
    "vrnn": "Variational RNN: per-step prior, posterior and decoder on a GRU/LSTM state; series and text; per-step anomaly scores",
    "factor-vae": "FactorVAE: VAE + γ·total correlation, estimated by a discriminator on dimension-permuted codes",
    "beta-tcvae": "β-TCVAE: KL split into index-code MI, total correlation, dimension-wise KL, weighted α, β, γ",
    "hvae": "Hierarchical (ladder) VAE: stochastic layers inferred top down, precision-weighted or residual; KL per layer, free bits",
    "iwae": "IWAE: VAE trained on the K-sample importance-weighted bound (iwae_samples, default 5; any VAE takes it)",
    "dvae": "Denoising VAE: the encoder sees Gaussian, masking or salt-and-pepper corrupted input, clean target",
    "vqvae": "VQ-VAE: integer code grid, EMA codebook with dead-code restarts, gated PixelCNN prior trained after it",
}
GENERATIVE = {"vae", "beta-vae", "cvae", "aae", "aae-semi", "aae-cluster", "vrnn", "factor-vae", "beta-tcvae", "hvae", "iwae", "dvae", "vqvae"}

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
