"""ACAI: adversarially constrained autoencoder interpolation (Berthelot, Raffel, Roy & Goodfellow 2018).

An autoencoder whose decoded interpolants must look real. Codes of two items of the batch are mixed,
``z_α = α·z1 + (1 − α)·z2`` with α ~ U[0, 0.5] (U[0, 1] folded at 0.5), and decoded. A critic with the
encoder's architecture (its output map averaged to one number) learns to recover α from the decoded mixture;
the autoencoder learns to make the critic answer 0, i.e. to decode mixtures that look like data.

Two players, stepped in turn every batch:
- ``autoencoder`` (encoder + decoder): reconstruction (a mean over pixels) + λ·‖critic(x̂_α)‖²,
- ``critic``: ‖critic(x̂_α) − α‖² + ‖critic(γ·x + (1 − γ)·x̂)‖². The second term shows the critic
  reconstructions blended towards the data, so that it does not simply learn to tell x̂ from x.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from autoencoders.losses import reconstruction_loss
from autoencoders.models.ae import AE, AEConfig
from autoencoders.models.base import Player
from autoencoders.nn import build_encoder


@dataclass
class ACAIConfig(AEConfig):
    interpolation_weight: float = 0.5  # λ: weight of the critic's verdict in the autoencoder's loss
    critic_mix: float = 0.2  # γ: how far the critic's "real" examples are blended from x̂ towards x
    critic_lr: float | None = None  # None: the training learning rate

    search_space: ClassVar[dict[str, dict]] = {
        **AEConfig.search_space, "interpolation_weight": {"type": "float", "low": 0.05, "high": 1.0, "log": True}, "critic_mix": {"type": "float", "low": 0.0, "high": 0.5},
    }


class ACAI(AE):
    name = "acai"
    config_class = ACAIConfig

    def __init__(self, config: ACAIConfig):
        super().__init__(config)
        self.critic = build_encoder(config, config.input_shape, config.latent_dim)

    def critic_score(self, x: Tensor) -> Tensor:
        """The critic's estimate of the mixing coefficient α of each item (0 for real data)."""
        return self.critic(x).mean(dim=1)

    def mix(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(raw reconstruction, raw decoded mixture, α): each item's code mixed with the reversed batch's."""
        z = self.encode(x)
        alpha = 0.5 - (torch.rand(x.shape[0], 1, device=x.device) - 0.5).abs()
        mixed = alpha * z + (1 - alpha) * z.flip(0)
        return self.decode_raw(self.latent_dropout(z)), self.decode_raw(mixed), alpha.squeeze(1)

    def autoencoder_loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        decoded, decoded_mix, alpha = self.mix(x)
        recon = reconstruction_loss(decoded, x, self.config.recon_loss).mean()
        mixture = self.to_data_space(decoded_mix)
        fooling = self.critic_score(mixture).pow(2).mean()
        if state is not None:
            # the critic trains on these outputs for the same batch (one graph in the paper): sharing them
            # saves it a second encoder/decoder pass
            state["critic_inputs"] = (self.to_data_space(decoded).detach(), mixture.detach(), alpha)
        # as in the paper, the reconstruction term is a mean over the item's values (``recon`` is their sum,
        # like every model's), so λ weighs the critic against a per-pixel error
        loss = recon / math.prod(self.config.input_shape) + self.config.interpolation_weight * fooling
        return {"loss": loss, "recon": recon, "critic_on_mixtures": fooling}

    def critic_loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        if state is not None and "critic_inputs" in state:
            reconstruction, mixture, alpha = state["critic_inputs"]
        else:  # called on its own (not after the autoencoder player on this batch)
            with torch.no_grad():
                decoded, decoded_mix, alpha = self.mix(x)
                reconstruction, mixture = self.to_data_space(decoded), self.to_data_space(decoded_mix)
        alpha_error = (self.critic_score(mixture) - alpha).pow(2).mean()
        gamma = self.config.critic_mix
        realism = self.critic_score(gamma * x + (1 - gamma) * reconstruction).pow(2).mean()
        return {"loss": alpha_error + realism, "alpha_error": alpha_error, "on_real": realism}

    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        return self.autoencoder_loss(x, y, step, state)

    def players(self) -> dict[str, Player]:
        return {
            "autoencoder": Player(
                lambda: itertools.chain(self.encoder.parameters(), self.decoder.parameters()), self.autoencoder_loss
            ),
            "critic": Player(self.critic.parameters, self.critic_loss, lr=self.config.critic_lr),
        }
