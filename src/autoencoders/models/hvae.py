"""Hierarchical VAE with a top-down (ladder) inference path: the Ladder VAE (Sønderby et al. 2016).

Generative model, top down: z_L ~ N(0, I), then z_l ~ N(μ_l(z_{l+1}), σ²_l(z_{l+1})) for l = L-1 .. 1, and
x ~ p(x | z_1 .. z_L). The decoder sees every layer's code (concatenated), so upper layers reach the data
directly as well as through the layers below (the skip connections of ResNet VAEs and NVAE), and the code
that ``encode`` gives and ``decode`` takes is that concatenation, z_1 first.

Inference makes two passes. Bottom up, a deterministic path d_1 = encoder(x), d_{l+1} = f_l(d_l) gives each
layer an estimate N(μ̂_l, σ̂²_l) of what x says about z_l. Top down, each layer's posterior combines that
estimate with the generative model's own prior given the sample drawn above it:
- ``merge="precision"`` (LVAE): q(z_l | ·) ∝ N(μ̂_l, σ̂²_l) · N(μ_l(z_{l+1}), σ²_l(z_{l+1})), the
  precision-weighted product of the two Gaussians;
- ``merge="residual"`` (NVAE, Vahdat & Kautz 2020): q = N(μ_l + μ̂_l, σ²_l · σ̂²_l), a shift and scale of
  the prior.
The top layer's posterior is its bottom-up estimate. Sharing the top-down parameters between inference and
generation is what lets the upper layers learn. Each layer's KL(q(z_l | ·) || p(z_l | z_{l+1})) is
analytic given the sample above; the loss logs them as kl_1 .. kl_L, and free bits (a KL floor per layer) and
the VAE's KL warm-up keep layers from collapsing onto their priors. Everything else (likelihoods, schedules,
the IWAE bound with ``iwae_samples``, importance-sampled log p(x)) is the VAE family's
(``VariationalAutoencoder`` in models/vae.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from autoencoders.losses import diagonal_normal_log_prob
from autoencoders.models.base import Output
from autoencoders.models.vae import VAEConfig, VariationalAutoencoder
from autoencoders.nn import build_decoder, build_encoder

MERGES = ("precision", "residual")


@dataclass
class HVAEConfig(VAEConfig):
    latent_dim: int = 32  # size of the lowest layer, z_1; each layer above has half the one below (at least 2)
    stochastic_layers: int = 2
    ladder_width: int = 256  # width of the deterministic bottom-up and top-down paths between layers
    merge: str = "precision"  # precision (LVAE) | residual (NVAE): how q combines bottom-up and top-down

    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        **VAEConfig.bounds, "stochastic_layers": (1, 16), "ladder_width": (1, 2**16),
    }
    search_space: ClassVar[dict[str, dict]] = {
        **VAEConfig.search_space, "stochastic_layers": {"type": "int", "low": 1, "high": 3}, "ladder_width": {"type": "categorical", "choices": [128, 256, 512]},
    }


class LayerDraw(NamedTuple):
    """One stochastic layer's code and the Gaussians it came from, each (batch, layer size)."""

    z: Tensor
    posterior_mean: Tensor
    posterior_log_var: Tensor
    prior_mean: Tensor
    prior_log_var: Tensor


def normal_kl(mean_q: Tensor, log_var_q: Tensor, mean_p: Tensor, log_var_p: Tensor) -> Tensor:
    """KL(N(mean_q, exp(log_var_q)) || N(mean_p, exp(log_var_p))) per item, diagonal, in closed form."""
    ratio = (log_var_q.exp() + (mean_q - mean_p).square()) * torch.exp(-log_var_p)
    return 0.5 * (ratio + log_var_p - log_var_q - 1).sum(dim=-1)


class HVAE(VariationalAutoencoder):
    name = "hvae"
    config_class = HVAEConfig

    def __init__(self, config: HVAEConfig):
        if config.stochastic_layers < 2:
            raise ValueError(
                f"a hierarchical VAE needs at least 2 stochastic layers; got stochastic_layers={config.stochastic_layers} "
                "(for one layer train a vae)"
            )
        if config.merge not in MERGES:
            raise ValueError(f"unknown merge {config.merge!r}; choose one of {', '.join(MERGES)}")
        if config.num_classes:
            raise ValueError("the hierarchical VAE is unconditional; train a cvae for label-conditioned models")
        super().__init__(config)

    @property
    def layer_sizes(self) -> list[int]:
        """Sizes of z_1 .. z_L, bottom first."""
        return [max(self.config.latent_dim >> layer, 2) for layer in range(self.config.stochastic_layers)]

    @property
    def code_size(self) -> int:
        return sum(self.layer_sizes)

    def build_networks(self) -> None:
        config, sizes, width = self.config, self.layer_sizes, self.config.ladder_width
        self.encoder = build_encoder(config, config.input_shape, width)  # d_1
        self.bottom_up = nn.ModuleList(nn.Sequential(nn.ELU(), nn.Linear(width, width)) for _ in sizes[1:])
        # each layer's bottom-up estimate (mean, log-variance) of its code, from d_l
        self.estimates = nn.ModuleList(nn.Sequential(nn.ELU(), nn.Linear(width, 2 * size)) for size in sizes)
        # top_down[l]: prior (mean, log-variance) of z_l given z_{l+1}
        self.top_down = nn.ModuleList(
            nn.Sequential(nn.Linear(above, width), nn.ELU(), nn.Linear(width, 2 * size))
            for size, above in zip(sizes[:-1], sizes[1:])
        )
        self.decoder = build_decoder(config, self.code_size, config.input_shape)

    # -- inference: bottom up, then top down ------------------------------------------------------------
    def bottom_up_estimates(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """(μ̂_l, log σ̂²_l) for every layer, bottom first."""
        features = [self.encoder(x)]
        for block in self.bottom_up:
            features.append(block(features[-1]))
        return [tuple(head(feature).chunk(2, dim=1)) for head, feature in zip(self.estimates, features)]

    def merge(self, mean_hat: Tensor, log_var_hat: Tensor, prior_mean: Tensor, prior_log_var: Tensor) -> tuple[Tensor, Tensor]:
        """The posterior's mean and log-variance from the bottom-up estimate and the top-down prior."""
        if self.config.merge == "residual":
            return prior_mean + mean_hat, prior_log_var + log_var_hat
        # precision weighting: 1/σ² = 1/σ̂² + 1/σ_p², μ = w·μ̂ + (1 - w)·μ_p with w = σ²/σ̂² = sigmoid(log σ_p² - log σ̂²)
        weight = torch.sigmoid(prior_log_var - log_var_hat)
        return weight * mean_hat + (1 - weight) * prior_mean, -torch.logaddexp(-log_var_hat, -prior_log_var)

    def infer(self, x: Tensor, samples: int = 1, use_means: bool = False) -> list[LayerDraw]:
        """Codes drawn top down from q(z | x), bottom layer first; each of shape (samples * batch, size),
        sample-major. ``use_means`` takes each layer's posterior mean instead of a sample."""
        estimates = [(mean.repeat(samples, 1), log_var.repeat(samples, 1)) for mean, log_var in self.bottom_up_estimates(x)]
        top_mean, top_log_var = estimates[-1]
        prior_mean, prior_log_var = torch.zeros_like(top_mean), torch.zeros_like(top_log_var)
        draws: list[LayerDraw] = []
        for layer in reversed(range(len(estimates))):
            if draws:
                prior_mean, prior_log_var = self.top_down[layer](draws[-1].z).chunk(2, dim=1)
                mean, log_var = self.merge(*estimates[layer], prior_mean, prior_log_var)
            else:
                mean, log_var = top_mean, top_log_var
            z = mean if use_means else mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
            draws.append(LayerDraw(z, mean, log_var, prior_mean, prior_log_var))
        return draws[::-1]

    # -- the interface ----------------------------------------------------------------------------------
    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return torch.cat([draw.z for draw in self.infer(x, use_means=True)], dim=1)

    def decode_raw(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        draws = self.infer(x)
        z = torch.cat([draw.z for draw in draws], dim=1)
        layer_kl = torch.stack(
            [normal_kl(d.posterior_mean, d.posterior_log_var, d.prior_mean, d.prior_log_var) for d in draws], dim=1
        )
        return Output(decoded=self.decode_raw(z), latent=z, extras={"layer_kl": layer_kl})

    def layer_kl(self, output: Output) -> Tensor:
        return output.extras["layer_kl"]

    def importance_terms(self, x: Tensor, y: Tensor | None = None, samples: int = 1, source: Tensor | None = None) -> tuple[Tensor, Tensor]:
        draws = self.infer(x if source is None else source, samples)
        decoded = self.decode_raw(torch.cat([draw.z for draw in draws], dim=1))
        log_px = self.log_likelihood(decoded, x.repeat(samples, *([1] * (x.dim() - 1))))
        log_ratio = sum(
            diagonal_normal_log_prob(d.z, d.prior_mean, d.prior_log_var)
            - diagonal_normal_log_prob(d.z, d.posterior_mean, d.posterior_log_var)
            for d in draws
        )
        return log_px.view(samples, -1), log_ratio.view(samples, -1)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        """Ancestral sampling: z_L from N(0, I), each layer below from its prior given the one above."""
        sizes = self.layer_sizes
        z = torch.randn(n, sizes[-1], device=self.decoder_log_scale.device)
        codes = [z]
        for layer in reversed(range(len(sizes) - 1)):
            mean, log_var = self.top_down[layer](codes[-1]).chunk(2, dim=1)
            codes.append(mean + torch.exp(0.5 * log_var) * torch.randn_like(mean))
        return self.decode(torch.cat(codes[::-1], dim=1))
