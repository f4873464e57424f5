"""Variational autoencoders: VAE (Kingma & Welling 2014) and β-VAE (Higgins et al. 2017).

The encoder gives a diagonal Gaussian q(z|x); a sample z = μ + σ·ε (reparameterization) is decoded into
the parameters of p(x|z): Bernoulli logits (``recon_loss="bce"``), a Gaussian mean (``"mse"``) or a
Laplace location (``"l1"``), the latter two with one learned scale. The loss is the negative ELBO
E_q[-log p(x|z)] + β·KL(q(z|x) || N(0, I)), with the KL in closed form and β following a schedule
(constant, linear warm-up, or cyclical annealing, Fu et al. 2019).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from autoencoders.losses import (
    bernoulli_log_likelihood,
    diagonal_normal_log_prob,
    gaussian_kl,
    gaussian_log_likelihood,
    laplace_log_likelihood,
    standard_normal_log_prob,
)
from autoencoders.models.base import Autoencoder, ModelConfig, Output
from autoencoders.nn import build_decoder, build_encoder

KL_SCHEDULES = ("constant", "linear", "cyclical")
LIKELIHOODS = {"bce": "Bernoulli", "mse": "Gaussian", "l1": "Laplace"}


@dataclass
class VAEConfig(ModelConfig):
    beta: float = 1.0
    kl_schedule: str = "constant"  # constant | linear (warm-up over kl_warmup_steps) | cyclical
    kl_warmup_steps: int = 0  # linear: steps to reach beta; cyclical: length of one cycle
    decoder_log_scale: float | None = None  # Gaussian/Laplace decoders: fixed log scale; None learns it


class VAE(Autoencoder):
    name = "vae"
    config_class = VAEConfig
    generative = True

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        if config.recon_loss not in LIKELIHOODS:
            raise ValueError(
                f"a VAE's recon_loss is the NLL of its decoder: choose one of {', '.join(LIKELIHOODS)} "
                f"(Bernoulli, Gaussian, Laplace); got {config.recon_loss!r}"
            )
        if config.kl_schedule not in KL_SCHEDULES:
            raise ValueError(f"unknown kl_schedule {config.kl_schedule!r}; choose one of {', '.join(KL_SCHEDULES)}")
        self.encoder = build_encoder(config, self.encoder_input_shape, 2 * config.latent_dim)
        self.decoder = build_decoder(config, config.latent_dim + config.num_classes, config.input_shape)
        # learned only where the likelihood has a scale (Gaussian, Laplace) and none was fixed; a
        # parameter that no loss uses would also stall DDP's gradient reducer
        initial_scale = 0.0 if config.decoder_log_scale is None else config.decoder_log_scale
        learned = config.decoder_log_scale is None and config.recon_loss != "bce"
        self.decoder_log_scale = nn.Parameter(torch.tensor(float(initial_scale)), requires_grad=learned)

    @property
    def encoder_input_shape(self) -> tuple[int, ...]:
        return self.config.input_shape

    # -- posterior and likelihood -----------------------------------------------------------------------
    def posterior(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x)."""
        mean, log_var = self.encoder(x).chunk(2, dim=1)
        return mean, log_var

    def log_likelihood(self, decoded: Tensor, x: Tensor) -> Tensor:
        """log p(x|z) per item, from the decoder's raw output."""
        if self.config.recon_loss == "bce":
            return bernoulli_log_likelihood(decoded, x)
        log_scale = self.decoder_log_scale.expand_as(decoded)
        if self.config.recon_loss == "mse":
            return gaussian_log_likelihood(decoded, log_scale, x)
        return laplace_log_likelihood(decoded, log_scale, x)

    def kl_weight(self, step: int) -> float:
        warmup = self.config.kl_warmup_steps
        if self.config.kl_schedule == "constant" or warmup <= 0:
            return self.config.beta
        if self.config.kl_schedule == "linear":
            return self.config.beta * min(1.0, step / warmup)
        # cyclical: ramp up over the first half of each cycle, hold for the second half
        return self.config.beta * min(1.0, 2 * (step % warmup) / warmup)

    # -- the interface ----------------------------------------------------------------------------------
    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.posterior(x, y)[0]

    def decode_raw(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        mean, log_var = self.posterior(x, y)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        return Output(decoded=self.decode_raw(z, y), latent=z, extras={"mean": mean, "log_var": log_var})

    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0) -> dict[str, Tensor]:
        output = self(x, y)
        recon = -self.log_likelihood(output.decoded, x).mean()
        kl = gaussian_kl(output.extras["mean"], output.extras["log_var"]).mean()
        beta = self.kl_weight(step)
        return {"loss": recon + beta * kl, "recon": recon, "kl": kl, "elbo": -(recon + kl)}

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        z = torch.randn(n, self.config.latent_dim, device=self.decoder_log_scale.device)
        return self.decode(z, y)

    # -- likelihood estimation --------------------------------------------------------------------------
    def log_importance_weights(self, x: Tensor, y: Tensor | None = None, samples: int = 1) -> Tensor:
        """log p(x, z_k) - log q(z_k|x) for k = 1..samples, shape (samples, batch).

        logsumexp over samples minus log(samples) is the importance-sampled estimate of log p(x)
        (Burda et al. 2016); with one sample its expectation is the ELBO.
        """
        mean, log_var = self.posterior(x, y)
        z = mean + torch.exp(0.5 * log_var) * torch.randn(samples, *mean.shape, device=mean.device)
        labels = None if y is None else y.repeat(samples)
        decoded = self.decode_raw(z.flatten(0, 1), labels)
        log_px = self.log_likelihood(decoded, x.repeat(samples, *([1] * (x.dim() - 1)))).view(samples, -1)
        return log_px + standard_normal_log_prob(z) - diagonal_normal_log_prob(z, mean, log_var)

    def log_marginal_likelihood(self, x: Tensor, y: Tensor | None = None, samples: int = 1000, chunk: int = 250) -> Tensor:
        """Importance-sampled log p(x) per item, drawing ``samples`` in chunks to bound memory."""
        parts = [self.log_importance_weights(x, y, min(chunk, samples - start)) for start in range(0, samples, chunk)]
        return torch.logsumexp(torch.cat(parts), dim=0) - math.log(samples)


@dataclass
class BetaVAEConfig(VAEConfig):
    beta: float = 4.0


class BetaVAE(VAE):
    """β-VAE: the VAE with β > 1 by default, trading reconstruction for a more factorised code."""

    name = "beta-vae"
    config_class = BetaVAEConfig
