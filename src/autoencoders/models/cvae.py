"""Conditional VAE (Sohn et al. 2015): encoder and decoder both see the label.

The label enters as a one-hot vector: appended to the flattened item (mlp) or as constant extra channels
(images) for the encoder, appended to the code for the decoder. ``sample(n, y)`` draws a chosen class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from autoencoders.models.vae import VAE, VAEConfig


@dataclass
class CVAEConfig(VAEConfig):
    num_classes: int = 10


class CVAE(VAE):
    name = "cvae"
    config_class = CVAEConfig
    conditional = True

    def __init__(self, config: CVAEConfig):
        if config.num_classes < 2:
            raise ValueError("a conditional VAE needs labelled data with at least 2 classes (num_classes)")
        super().__init__(config)

    @property
    def is_image(self) -> bool:
        return len(self.config.input_shape) == 3 and self.config.arch != "mlp"

    @property
    def encoder_input_shape(self) -> tuple[int, ...]:
        shape = self.config.input_shape
        if self.is_image:
            return (shape[0] + self.config.num_classes, *shape[1:])
        return (math.prod(shape) + self.config.num_classes,)

    def _one_hot(self, y: Tensor | None, batch: int) -> Tensor:
        if y is None:
            raise ValueError("the conditional VAE needs labels: pass y (class indices) with x or z")
        if y.shape[0] != batch:
            y = y.expand(batch) if y.numel() == 1 else y
        return F.one_hot(y.long(), self.config.num_classes).float()

    def posterior(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        one_hot = self._one_hot(y, x.shape[0])
        if self.is_image:
            planes = one_hot[:, :, None, None].expand(-1, -1, *x.shape[2:])
            conditioned = torch.cat([x, planes], dim=1)
        else:
            conditioned = torch.cat([x.flatten(1), one_hot], dim=1)
        mean, log_var = self.encoder(conditioned).chunk(2, dim=1)
        return mean, log_var

    def decode_raw(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decoder(torch.cat([z, self._one_hot(y, z.shape[0])], dim=1))

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        if y is None:  # no class asked for: draw classes uniformly
            y = torch.randint(self.config.num_classes, (n,), device=self.decoder_log_scale.device)
        return super().sample(n, y)
