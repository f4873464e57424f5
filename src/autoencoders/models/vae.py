"""Variational autoencoders: VAE (Kingma & Welling 2014), β-VAE (Higgins et al. 2017), IWAE (Burda et al.
2016) and the denoising VAE (Im et al. 2017).

The encoder gives a diagonal Gaussian q(z|x); a sample z = μ + σ·ε (reparameterization) is decoded into
the parameters of p(x|z): Bernoulli logits (``recon_loss="bce"``), a Gaussian mean (``"mse"``) or a
Laplace location (``"l1"``), the latter two with one learned scale. The loss is the negative ELBO
E_q[-log p(x|z)] + β·KL(q(z|x) || N(0, I)), with the KL in closed form and β following a schedule
(constant, linear warm-up, or cyclical annealing, Fu et al. 2019).

``iwae_samples = K > 1`` trains on the importance-weighted bound instead,
log (1/K) Σ_k p(x, z_k) / q(z_k|x) with z_k ~ q(z|x), which is tighter than the ELBO and approaches log p(x)
as K grows; ``iwae`` is the VAE with K = 5. Everything here except the encoder itself lives in
``VariationalAutoencoder``, which the hierarchical VAE (models/hvae.py) shares.
"""

from __future__ import annotations

import math
from typing import ClassVar
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from autoencoders.corruption import check_noise, corrupt
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
# items x samples one importance-sampling pass decodes at once: a 500-item batch of a conv VAE at K = 250 decoded
# 125,000 images together and held 11 GB; 16,384 hold 1.7 GB, and run faster (50 s for 64 s: MNIST, K = 500)
DECODES_AT_ONCE = 16384


@dataclass
class VAEConfig(ModelConfig):
    beta: float = 1.0
    kl_schedule: str = "constant"  # constant | linear (warm-up over kl_warmup_steps) | cyclical
    kl_warmup_steps: int = 0  # linear: steps to reach beta; cyclical: length of one cycle
    decoder_log_scale: float | None = None  # Gaussian/Laplace decoders: fixed log scale; None learns it
    iwae_samples: int = 1  # K: 1 trains on the ELBO, K > 1 on the K-sample importance-weighted bound
    free_bits: float = 0.0  # nats of KL per stochastic layer (batch mean) left unpenalised (Kingma et al. 2016)

    recon_losses: ClassVar[tuple[str, ...]] = tuple(LIKELIHOODS)  # the decoder's likelihood: Bernoulli, Gaussian, Laplace
    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        **ModelConfig.bounds, "kl_warmup_steps": (0, 2**40), "iwae_samples": (1, 10_000),
    }
    search_space: ClassVar[dict[str, dict]] = {
        **ModelConfig.search_space, "kl_schedule": {"type": "categorical", "choices": ['constant', 'linear']}, "kl_warmup_steps": {"type": "int", "low": 100, "high": 10000, "log": True},
    }


class VariationalAutoencoder(Autoencoder):
    """What every VAE-family model shares: the decoder's likelihood, the KL schedule, the ELBO and IWAE
    losses, and importance-sampled log-likelihoods.

    A subclass builds its networks (``encoder``, ``decoder``) and gives ``forward`` (one posterior sample,
    decoded), ``layer_kl`` (the KL of each stochastic layer for that sample), ``importance_terms`` (K
    posterior samples scored under the model), ``encode``, ``decode_raw`` and ``sample``.
    """

    config_class = VAEConfig
    generative = True
    has_likelihood = True
    # a family that trains on an objective of its own names it here: iwae_samples and free_bits shape the
    # plain ELBO only, so such a family refuses them
    own_objective: ClassVar[str | None] = None

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        if self.own_objective and (config.iwae_samples > 1 or config.free_bits > 0):
            raise ValueError(
                f"{self.name} trains on {self.own_objective}: iwae_samples and free_bits do not apply (leave them at 1 and 0)"
            )
        if config.kl_schedule not in KL_SCHEDULES:
            raise ValueError(f"unknown kl_schedule {config.kl_schedule!r}; choose one of {', '.join(KL_SCHEDULES)}")
        if config.free_bits < 0:
            raise ValueError(f"free_bits is a KL floor in nats and must be >= 0; got {config.free_bits}")
        if config.free_bits > 0 and config.iwae_samples > 1:
            raise ValueError(
                "free_bits floors the ELBO's KL terms, which the importance-weighted bound (iwae_samples > 1) "
                "does not have: set free_bits=0 or iwae_samples=1"
            )
        self.build_networks()
        # learned only where the likelihood has a scale (Gaussian, Laplace) and none was fixed; a
        # parameter that no loss uses would also stall DDP's gradient reducer
        initial_scale = 0.0 if config.decoder_log_scale is None else config.decoder_log_scale
        learned = config.decoder_log_scale is None and config.recon_loss != "bce"
        self.decoder_log_scale = nn.Parameter(torch.tensor(float(initial_scale)), requires_grad=learned)

    def build_networks(self) -> None:
        """Create the encoder and decoder modules (called once by ``__init__``)."""
        raise NotImplementedError

    # -- the parts a family provides --------------------------------------------------------------------
    def layer_kl(self, output: Output) -> Tensor:
        """KL(q || p) of each stochastic layer for the sample in ``output``, shape (batch, layers)."""
        raise NotImplementedError

    def importance_terms(self, x: Tensor, y: Tensor | None = None, samples: int = 1, source: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """For z_k ~ q(z|source), k = 1..samples: log p(x|z_k) and log p(z_k) - log q(z_k|source), each
        of shape (samples, batch). ``source`` is what the encoder sees: ``x`` unless it was corrupted."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------------------
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

    def corrupt(self, x: Tensor) -> Tensor:
        """What the encoder sees in training; only the denoising VAE changes it."""
        return x

    def elbo_terms(self, x: Tensor, y: Tensor | None = None, source: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """log p(x|z) for one z ~ q(z|source), shape (batch,), and each layer's KL, shape (batch, layers)."""
        output = self(x if source is None else source, y)
        return self.log_likelihood(output.decoded, x), self.layer_kl(output)

    def negative_elbo(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """-ELBO per item: one posterior sample's reconstruction NLL plus every layer's analytic KL."""
        log_px, layer_kl = self.elbo_terms(x, y)
        return layer_kl.sum(dim=1) - log_px

    def kl_divergence(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """KL(q(z|x) || p(z)) per item, summed over the stochastic layers (one sample of the layers above)."""
        return self.elbo_terms(x, y)[1].sum(dim=1)

    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        source = self.corrupt(x) if self.training else x
        if self.config.iwae_samples > 1:
            return self.importance_weighted_loss(x, y, source, self.kl_weight(step))
        log_px, layer_kl = self.elbo_terms(x, y, source)
        recon = -log_px.mean()
        kl_per_layer = layer_kl.mean(dim=0)
        kl = kl_per_layer.sum()
        # free bits: a layer's KL below the floor costs nothing, so its units are not pushed onto the prior
        penalised = kl_per_layer.clamp(min=self.config.free_bits).sum() if self.config.free_bits > 0 else kl
        terms = {"loss": recon + self.kl_weight(step) * penalised, "recon": recon, "kl": kl, "elbo": -(recon + kl)}
        if len(kl_per_layer) > 1:
            terms.update({f"kl_{layer + 1}": value for layer, value in enumerate(kl_per_layer)})
        return terms

    def importance_weighted_loss(self, x: Tensor, y: Tensor | None, source: Tensor, beta: float) -> dict[str, Tensor]:
        """The negative K-sample importance-weighted bound (Burda et al. 2016), K = ``iwae_samples``.

        With β ≠ 1 (a warm-up) the weights are p(x|z)·(p(z)/q(z|x))^β, which is the bound itself at β = 1.
        ``recon``, ``kl`` and ``elbo`` are single-sample Monte Carlo estimates averaged over the K samples.
        """
        samples = self.config.iwae_samples
        log_px, log_ratio = self.importance_terms(x, y, samples, source)
        log_k = math.log(samples)
        bound = torch.logsumexp(log_px + log_ratio, dim=0) - log_k
        weighted = bound if beta == 1 else torch.logsumexp(log_px + beta * log_ratio, dim=0) - log_k
        recon, kl = -log_px.mean(), -log_ratio.mean()
        return {"loss": -weighted.mean(), "iwae_bound": bound.mean(), "recon": recon, "kl": kl, "elbo": -(recon + kl)}

    def log_importance_weights(self, x: Tensor, y: Tensor | None = None, samples: int = 1) -> Tensor:
        """log p(x, z_k) - log q(z_k|x) for k = 1..samples, shape (samples, batch).

        logsumexp over samples minus log(samples) is the importance-sampled estimate of log p(x)
        (Burda et al. 2016); with one sample its expectation is the ELBO.
        """
        log_px, log_ratio = self.importance_terms(x, y, samples)
        return log_px + log_ratio

    def log_marginal_likelihood(self, x: Tensor, y: Tensor | None = None, samples: int = 1000, chunk: int | None = None) -> Tensor:
        """Importance-sampled log p(x) per item, drawing ``samples`` in chunks of ``chunk`` to bound memory (default:
        as many as keep items x samples decoded at once within DECODES_AT_ONCE)."""
        chunk = chunk or max(1, DECODES_AT_ONCE // max(1, len(x)))
        parts = [self.log_importance_weights(x, y, min(chunk, samples - start)) for start in range(0, samples, chunk)]
        return torch.logsumexp(torch.cat(parts), dim=0) - math.log(samples)


class VAE(VariationalAutoencoder):
    name = "vae"
    gaussian_posterior = True

    def build_networks(self) -> None:
        config = self.config
        self.encoder = build_encoder(config, self.encoder_input_shape, 2 * config.latent_dim)
        self.decoder = build_decoder(config, config.latent_dim + config.num_classes, config.input_shape)

    @property
    def encoder_input_shape(self) -> tuple[int, ...]:
        return self.config.input_shape

    def posterior(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x)."""
        mean, log_var = self.encoder(x).chunk(2, dim=1)
        return mean, log_var

    # -- the interface ----------------------------------------------------------------------------------
    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.posterior(x, y)[0]

    def decode_raw(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        mean, log_var = self.posterior(x, y)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        return Output(decoded=self.decode_raw(z, y), latent=z, extras={"mean": mean, "log_var": log_var})

    def layer_kl(self, output: Output) -> Tensor:
        return gaussian_kl(output.extras["mean"], output.extras["log_var"]).unsqueeze(1)

    def importance_terms(self, x: Tensor, y: Tensor | None = None, samples: int = 1, source: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mean, log_var = self.posterior(x if source is None else source, y)
        z = mean + torch.exp(0.5 * log_var) * torch.randn(samples, *mean.shape, device=mean.device)
        labels = None if y is None else y.repeat(samples)
        decoded = self.decode_raw(z.flatten(0, 1), labels)
        log_px = self.log_likelihood(decoded, x.repeat(samples, *([1] * (x.dim() - 1)))).view(samples, -1)
        return log_px, standard_normal_log_prob(z) - diagonal_normal_log_prob(z, mean, log_var)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        z = torch.randn(n, self.config.latent_dim, device=self.decoder_log_scale.device)
        return self.decode(z, y)


@dataclass
class BetaVAEConfig(VAEConfig):
    beta: float = 4.0

    search_space: ClassVar[dict[str, dict]] = {**VAEConfig.search_space, "beta": {"type": "float", "low": 1.0, "high": 16.0, "log": True}}


class BetaVAE(VAE):
    """β-VAE: the VAE with β > 1 by default, trading reconstruction for a more factorised code."""

    name = "beta-vae"
    config_class = BetaVAEConfig


@dataclass
class IWAEConfig(VAEConfig):
    iwae_samples: int = 5

    search_space: ClassVar[dict[str, dict]] = {**VAEConfig.search_space, "iwae_samples": {"type": "categorical", "choices": [2, 5, 10]}}


class IWAE(VAE):
    """IWAE: the VAE trained on the 5-sample importance-weighted bound by default (``iwae_samples``)."""

    name = "iwae"
    config_class = IWAEConfig


@dataclass
class DVAEConfig(VAEConfig):
    noise: str = "gaussian"  # gaussian | masking | salt-and-pepper (as the DAE)
    noise_level: float = 0.3  # std (gaussian) or fraction of corrupted values (masking, salt-and-pepper)

    search_space: ClassVar[dict[str, dict]] = {**VAEConfig.search_space, "noise_level": {"type": "float", "low": 0.05, "high": 0.6}}


class DVAE(VAE):
    """Denoising VAE (Im et al. 2017): in training the encoder sees a corrupted x̃ and the decoder is scored
    on the clean x, maximising E_{x̃|x} E_{q(z|x̃)}[log p(x, z) - log q(z|x̃)]; evaluation encodes x itself."""

    name = "dvae"
    denoises = True
    config_class = DVAEConfig

    def __init__(self, config: DVAEConfig):
        check_noise(config.noise, config.noise_level)
        super().__init__(config)

    def corrupt(self, x: Tensor) -> Tensor:
        return corrupt(x, self.config.noise, self.config.noise_level, self.config.value_range)
