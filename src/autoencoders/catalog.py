"""What the library offers, readable without importing torch (so ``autoencoders models`` answers at once).

The classes themselves live in ``autoencoders.models``; a test keeps the two lists equal.
"""

MODEL_DESCRIPTIONS = {
    "ae": "Autoencoder: deterministic code, reconstruction loss (mse, l1, bce, hamming); latent_dropout",
    "dae": "Denoising autoencoder: Gaussian, masking or salt-and-pepper corruption, clean target",
    "vae": "Variational autoencoder: Gaussian posterior, Bernoulli/Gaussian/Laplace decoder, analytic KL",
    "beta-vae": "β-VAE: VAE with β (default 4) and constant, linear warm-up or cyclical KL schedules",
    "cvae": "Conditional VAE: encoder and decoder conditioned on the label; sample a chosen class",
    "aae": "Adversarial AE: a latent discriminator matches codes to a Gaussian, mixture or swiss-roll prior; supervised",
    "aae-semi": "Semi-supervised AAE: label head + style, both adversarially regularized, trained on a few labels",
    "aae-cluster": "Clustering AAE: a categorical cluster head + style, adversarially regularized, no labels",
    "acai": "ACAI: autoencoder whose decoded latent interpolations a critic must not tell from data",
}
GENERATIVE = {"vae", "beta-vae", "cvae", "aae", "aae-semi", "aae-cluster"}
