"""Deterministic autoencoders: the plain AE (optionally with dropout on the code) and the denoising AE.

AE: x -> encoder -> z -> decoder -> x̂, trained on the reconstruction loss alone.
DAE (Vincent et al. 2008): the encoder sees a corrupted x̃ (Gaussian noise, masking, or salt-and-pepper)
and the loss compares the reconstruction with the clean x, so the code must capture structure, not noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from autoencoders.corruption import check_noise, corrupt
from autoencoders.losses import reconstruction_loss
from autoencoders.models.base import Autoencoder, ModelConfig, Output
from autoencoders.nn import build_decoder, build_encoder


@dataclass
class AEConfig(ModelConfig):
    latent_dropout: float = 0.0  # dropout on the code during training ("dropout AE")

    search_space: ClassVar[dict[str, dict]] = {**ModelConfig.search_space, "latent_dropout": {"type": "float", "low": 0.0, "high": 0.5}}


class AE(Autoencoder):
    name = "ae"
    config_class = AEConfig

    def __init__(self, config: AEConfig):
        super().__init__(config)
        self.encoder = build_encoder(config, config.input_shape, config.latent_dim)
        self.decoder = build_decoder(config, config.latent_dim, config.input_shape)
        self.latent_dropout = nn.Dropout(config.latent_dropout)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.encoder(x)

    def decode_raw(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        z = self.encode(x)
        return Output(decoded=self.decode_raw(self.latent_dropout(z)), latent=z)

    def corrupt(self, x: Tensor) -> Tensor:
        """What the encoder sees in training; the plain AE sees x itself."""
        return x

    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        output = self(self.corrupt(x) if self.training else x)
        recon = reconstruction_loss(output.decoded, x, self.config.recon_loss).mean()
        return {"loss": recon, "recon": recon}


@dataclass
class DAEConfig(AEConfig):
    noise: str = "gaussian"  # gaussian | masking | salt-and-pepper
    noise_level: float = 0.3  # std (gaussian) or fraction of corrupted values (masking, salt-and-pepper)

    search_space: ClassVar[dict[str, dict]] = {**AEConfig.search_space, "noise_level": {"type": "float", "low": 0.05, "high": 0.6}}


class DAE(AE):
    name = "dae"
    denoises = True
    config_class = DAEConfig

    def __init__(self, config: DAEConfig):
        check_noise(config.noise, config.noise_level)
        super().__init__(config)

    def corrupt(self, x: Tensor) -> Tensor:
        return corrupt(x, self.config.noise, self.config.noise_level, self.config.value_range)
