"""Rotation prediction: a self-supervised anomaly score for images (Golan & El-Yaniv 2018, Hendrycks et al. 2019).

A network of the autoencoder's encoder architecture learns, on the normal items alone, which of the four
quarter-turns (0, 90, 180 or 270 degrees) an item was given. On items unlike the normal ones its answers are
less sure or wrong; the score is the sum over the four turns of -log p(turn | the turned item). It weighs
what a pixel-faithful code mixes with everything else: how an item's parts sit relative to each other (a
shirt's collar and sleeves, a bag's handle). Alone it ranks anomalies worse than the autoencoder's scores; added
to them it can rank better. In ``benchmarks/anomaly_one_class.py`` on one-class Fashion-MNIST, a conv AE's latent
distances plus this score reach mean AUROC 0.952 (the latent distances alone 0.948): it raises 8 of 10 classes
and most on bags (0.946 to 0.974). On MNIST it hurts (0.984 to 0.981): a 0, 1 or 8 looks alike turned half-way, so
the turns of normal digits are themselves unsure.

The predictor is trained by the library's training module like any model: ``players()`` names its one
optimizer's share and ``loss`` is the cross-entropy over the four turns of each batch.

Its scores of the items it was trained on run lower than those of new normal items (it has seen them), so when
the score is standardized by the fitted items' scores, in a sum such as ``latent+rotation``, this part weighs
more than an equal share. The benchmark's numbers use this weighting as it is.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from autoencoders.models.base import ModelConfig, Player
from autoencoders.nn import build_encoder
from autoencoders.training.fit import fit_model

QUARTER_TURNS = 4
FLAT_ARCHS = ("mlp", "conv")  # encoders that end in a flat vector, which the turn classifier reads


def check_rotatable(shape: tuple[int, ...]) -> None:
    """Quarter-turns keep an item's shape only for square images (C, H, H)."""
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(
            f"score 'rotation' turns images by quarter-turns and needs square images (C, H, H); got items of shape "
            f"{tuple(shape)}. Use recon, latent or rapp for tables, series and non-square images"
        )


def quarter_turns(x: Tensor) -> Tensor:
    """(4N, C, H, W): the batch turned by 0, 1, 2 and 3 quarter-turns, in that order."""
    return torch.cat([torch.rot90(x, turn, dims=(2, 3)) for turn in range(QUARTER_TURNS)])


class RotationPredictor(nn.Module):
    """Which quarter-turn an image was given: the model's encoder architecture, a ReLU and a linear layer.

    Encoders whose code is a map (spatial, acai) or a sequence read are replaced by the conv encoder with its
    default channels, since the classifier reads a flat vector.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        check_rotatable(tuple(config.input_shape))
        if config.arch not in FLAT_ARCHS:
            config = dataclasses.replace(config, arch="conv", hidden=())
        self.config = config
        self.network = nn.Sequential(
            build_encoder(config, tuple(config.input_shape), config.latent_dim), nn.ReLU(),
            nn.Linear(config.latent_dim, QUARTER_TURNS),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Logits of the four turns, (N, 4)."""
        return self.network(x)

    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        turns = torch.arange(QUARTER_TURNS, device=x.device).repeat_interleave(len(x))
        cross_entropy = F.cross_entropy(self(quarter_turns(x)), turns)
        return {"loss": cross_entropy, "cross_entropy": cross_entropy}

    def players(self) -> dict[str, Player]:
        return {"rotation": Player(self.parameters, self.loss)}

    @torch.no_grad()
    def scores(self, items: Tensor, batch: int = 1024) -> np.ndarray:
        """The anomaly score of each item: the sum over the four turns of -log p(turn | turned item)."""
        self.eval()
        device = next(self.parameters()).device
        turns = torch.arange(QUARTER_TURNS, device=device)
        values = []
        for chunk in items.split(batch):
            # (turn given, item, turn predicted): the log-probability of the right turn is the diagonal over turns
            log_p = F.log_softmax(self(quarter_turns(chunk.to(device))), dim=1).view(QUARTER_TURNS, len(chunk), QUARTER_TURNS)
            values.append(-log_p[turns, :, turns].sum(0).cpu())
        return torch.cat(values).double().numpy()


def train_rotation_predictor(
    config: ModelConfig, items: Tensor, *, max_steps: int, batch_size: int, lr: float, seed: int, device: str = "cpu",
) -> RotationPredictor:
    """A fresh predictor (seeded) trained on ``items`` for ``max_steps`` batches, in eval mode on ``device``."""
    with torch.random.fork_rng(devices=[]):  # the caller's random streams stay as they were
        torch.manual_seed(seed)
        predictor = RotationPredictor(config)
        predictor = fit_model(predictor, items, max_steps=max_steps, batch_size=batch_size, lr=lr, seed=seed, device=device)
    return predictor.to(device).eval()
