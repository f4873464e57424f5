"""Feature-bagged autoencoders: several small autoencoders, each on its own random subset of the features.

Feature bagging (Lazarevic & Kumar 2005) fits each detector of an ensemble on a random subset of the columns,
so that an outlier hidden among many ordinary columns stands out in the subsets that hold its unusual ones;
RandNet (Chen et al. 2017) showed that ensembles of varied autoencoders detect outliers more reliably than one.
Here ``members`` MLP autoencoders each see ``feature_fraction`` of the item's values (drawn once, least-used
features first so that every feature is seen by about the same number of members), encode them to
``latent_dim`` numbers through ``hidden`` widths and rebuild them. The loss is the members' mean
reconstruction loss, each on its own features:

    L = 1/M Σ_m recon(decoder_m(encoder_m(x[S_m])), x[S_m])

A small bottleneck keeps each member from copying its input: ``latent_dim=0`` (the default) takes a quarter of
the item's features (at least 2) and empty ``hidden`` one layer as wide as the item (at least 8).

The code of an item is the members' codes side by side (``members * latent_dim`` numbers); its reconstruction
gives each feature the mean of the members that see it. ``anomaly_views`` gives each member's code beside its
residual on its own features: what the ``"isolation"`` anomaly score isolates (``autoencoders.uses.isolation``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from autoencoders.losses import reconstruction_loss
from autoencoders.models.base import MAX_INT_SETTING, Autoencoder, ModelConfig, Output
from autoencoders.nn.members import MemberMLP


@dataclass
class BaggedAEConfig(ModelConfig):
    latent_dim: int = 0  # per member; 0: a quarter of the item's features, at least 2
    members: int = 8
    feature_fraction: float = 0.6  # share of the item's features each member sees
    subset_seed: int = 0  # draws the members' feature subsets

    search_space: ClassVar[dict[str, dict]] = {  # 0 (a quarter of the features) stays the default, not a choice
        "latent_dim": {"type": "int", "low": 1, "high": 64, "log": True},
        "members": {"type": "int", "low": 2, "high": 16, "log": True},
        "feature_fraction": {"type": "float", "low": 0.3, "high": 1.0},
    }
    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        **ModelConfig.bounds, "latent_dim": (0, MAX_INT_SETTING), "members": (1, 256), "feature_fraction": (1e-6, 1.0),
        "subset_seed": (0, MAX_INT_SETTING),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.arch != "mlp":
            raise ValueError(f"bagged-ae's members are MLPs over the item's values: use --arch mlp (got {self.arch!r})")
        features = math.prod(self.input_shape)
        if self.latent_dim == 0:
            self.latent_dim = max(2, features // 4)
        if not self.hidden:
            self.hidden = (max(8, features),)


def feature_subsets(features: int, members: int, fraction: float, seed: int) -> np.ndarray:
    """(members, per_member) feature indices: each member's share of the features, the least-used first, ties
    broken at random, so that every feature is seen by about ``members * fraction`` members."""
    per_member = min(features, max(2, round(fraction * features)))
    generator = np.random.default_rng(seed)
    uses = np.zeros(features)
    subsets = []
    for _ in range(members):
        chosen = np.sort(np.argsort(uses + generator.random(features) * 0.5, kind="stable")[:per_member])
        uses[chosen] += 1
        subsets.append(chosen)
    return np.stack(subsets)


class BaggedAE(Autoencoder):
    name = "bagged-ae"
    config_class = BaggedAEConfig
    per_item_layers = False  # its members' activations are (members, N, width)

    def __init__(self, config: BaggedAEConfig):
        super().__init__(config)
        features = math.prod(config.input_shape)
        # persistent, so a saved model keeps the subsets it was trained on whatever the seed's generator does later
        subsets = feature_subsets(features, config.members, config.feature_fraction, config.subset_seed)
        self.register_buffer("subsets", torch.as_tensor(subsets))
        per_member = self.subsets.shape[1]
        self.encoder = MemberMLP(config.members, [per_member, *config.hidden, config.latent_dim])
        self.decoder = MemberMLP(config.members, [config.latent_dim, *reversed(config.hidden), per_member])
        # members' outputs side by side -> features: each feature the mean of the members that see it (a fixed
        # matrix, so the decoder is one product for any batch size, also once exported)
        averaging = np.zeros((subsets.size, features), dtype=np.float32)
        averaging[np.arange(subsets.size), subsets.ravel()] = 1.0
        averaging /= np.maximum(averaging.sum(0), 1.0)
        self.register_buffer("averaging", torch.as_tensor(averaging), persistent=False)

    @property
    def code_size(self) -> int:
        return self.config.members * self.config.latent_dim

    def member_inputs(self, x: Tensor) -> Tensor:
        """(members, N, per_member): each member's features of the items."""
        return x.flatten(1)[:, self.subsets].permute(1, 0, 2)

    def member_codes(self, x: Tensor) -> Tensor:
        return self.encoder(self.member_inputs(x))

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.member_codes(x).permute(1, 0, 2).flatten(1)

    def decode_raw(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        members = self.decoder(z.unflatten(1, (self.config.members, -1)).permute(1, 0, 2))  # (members, N, per_member)
        return (members.permute(1, 0, 2).flatten(1) @ self.averaging).unflatten(1, self.config.input_shape)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        z = self.encode(x)
        return Output(decoded=self.decode_raw(z), latent=z)

    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        inputs = self.member_inputs(x)
        decoded = self.decoder(self.encoder(inputs))
        recon = reconstruction_loss(decoded.flatten(0, 1), inputs.flatten(0, 1), self.config.recon_loss).mean()
        return {"loss": recon, "recon": recon}

    @torch.no_grad()
    def anomaly_views(self, x: Tensor) -> Tensor:
        """(members, N, latent_dim + per_member): each member's code beside its residual on its own features."""
        inputs = self.member_inputs(x)
        codes = self.encoder(inputs)
        residuals = self.to_data_space(self.decoder(codes)) - inputs
        return torch.cat([codes, residuals], dim=2)
