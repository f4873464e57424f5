"""Compressive autoencoder: an autoencoder trained for rate and distortion together (Ballé et al. 2017).

x -> encoder -> y -> quantize -> ŷ -> decoder -> x̂. Rounding has no gradient, so training replaces it with
additive uniform noise ỹ = y + U(-½, ½), which has the same spread as the rounding error (Ballé et al. 2017).
A factorized entropy model, one learned density per latent dimension, prices each code: the rate is
-Σ log2 P(ỹ_d), P being the density integrated over the unit bin around ỹ_d, and the loss is

    distortion(x, x̂) + rate_weight · bits per item,

so ``rate_weight`` chooses the point on the rate-distortion curve (dimensions that do not pay for their bits
collapse to a constant and cost nothing). Each density is a mixture of logistics (Ballé et al. 2018 use a
non-parametric one; a small mixture fits the same unimodal-to-bimodal shapes and has a closed-form CDF).

``encode`` gives y before quantization (as every model's code, for interpolation, probes and pictures), so
``autoencoders compress`` may quantize it with any step: step 1 is what the model was trained for, finer steps
spend more bits on less error. The validation loss rounds (``forward`` outside training), so its rate and
distortion are those of the compressed file.
"""

from __future__ import annotations

from typing import ClassVar

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from autoencoders.losses import reconstruction_loss
from autoencoders.models.base import Autoencoder, ModelConfig, Output
from autoencoders.nn import build_decoder, build_encoder

# the smallest probability the rate term assigns a bin: keeps log2 finite where the density has no mass
MIN_LIKELIHOOD = 1e-9


@dataclass
class CompressiveAEConfig(ModelConfig):
    rate_weight: float = 0.01  # λ: distortion units traded for one bit per item
    mixture_components: int = 3  # logistics per latent dimension in the entropy model

    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        **ModelConfig.bounds, "mixture_components": (1, 64),
    }
    search_space: ClassVar[dict[str, dict]] = {**ModelConfig.search_space, "rate_weight": {"type": "float", "low": 0.001, "high": 0.3, "log": True}}


class FactorizedDensity(nn.Module):
    """One mixture of logistics per latent dimension; ``likelihood`` integrates it over unit bins."""

    def __init__(self, dimensions: int, components: int):
        super().__init__()
        if components < 1:
            raise ValueError(f"mixture_components must be at least 1; got {components}")
        # spread the components' means so that a mixture can split a dimension into modes
        offsets = torch.linspace(-1.0, 1.0, components) if components > 1 else torch.zeros(1)
        self.means = nn.Parameter(offsets.repeat(dimensions, 1))
        self.log_scales = nn.Parameter(torch.zeros(dimensions, components))
        self.weight_logits = nn.Parameter(torch.zeros(dimensions, components))

    def likelihood(self, values: Tensor) -> Tensor:
        """P(value - ½ < Y_d < value + ½) for every (item, dimension) of ``values`` (N, D)."""
        centred = values.unsqueeze(-1) - self.means  # (N, D, K)
        inverse_scale = torch.exp(-self.log_scales)
        upper = (centred + 0.5) * inverse_scale
        lower = (centred - 0.5) * inverse_scale
        # above the mean, subtract upper tails instead of CDFs: both sigmoids are near 1 there and their
        # difference would be lost to rounding
        flip = torch.where(centred > 0, -1.0, 1.0)
        mass = (torch.sigmoid(flip * upper) - torch.sigmoid(flip * lower)).abs()
        weights = torch.softmax(self.weight_logits, dim=-1)
        return (mass * weights).sum(dim=-1).clamp_min(MIN_LIKELIHOOD)

    def bits(self, values: Tensor) -> Tensor:
        """Bits per item of codes ``values`` (N, D) under the model."""
        return -torch.log2(self.likelihood(values)).sum(dim=1)


class CompressiveAE(Autoencoder):
    name = "compressive-ae"
    config_class = CompressiveAEConfig
    quantization_step = 1.0  # the rounding it was trained for; ``autoencoders compress`` uses it by default

    def __init__(self, config: CompressiveAEConfig):
        super().__init__(config)
        if config.rate_weight < 0:
            raise ValueError(f"rate_weight must be >= 0 (0 trains a plain autoencoder); got {config.rate_weight}")
        self.encoder = build_encoder(config, config.input_shape, config.latent_dim)
        self.decoder = build_decoder(config, config.latent_dim, config.input_shape)
        self.density = FactorizedDensity(config.latent_dim, config.mixture_components)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The latent before quantization; rounding it is what the model was trained to decode."""
        return self.encoder(x)

    def decode_raw(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decoder(z)

    def quantize(self, latent: Tensor) -> Tensor:
        """Uniform noise in training (a differentiable stand-in for rounding), rounding otherwise."""
        if self.training:
            return latent + torch.empty_like(latent).uniform_(-0.5, 0.5)
        return torch.round(latent)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        latent = self.encode(x)
        code = self.quantize(latent)
        return Output(decoded=self.decode_raw(code), latent=code, extras={"unquantized": latent})

    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        output = self(x)
        distortion = reconstruction_loss(output.decoded, x, self.config.recon_loss).mean()
        bits = self.density.bits(output.latent).mean()
        total = distortion + self.config.rate_weight * bits
        return {"loss": total, "recon": distortion, "bits": bits, "bits_per_value": bits / math.prod(x.shape[1:])}
