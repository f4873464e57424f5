"""FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising").

A VAE whose loss adds γ times the total correlation TC(z) = KL(q(z) || Π_j q(z_j)) of its aggregate
posterior, so that the code's dimensions become independent without pushing each q(z|x) harder onto the
prior (which is what β-VAE does, at the cost of reconstructions). The TC has no closed form; it is estimated
with the density-ratio trick: a discriminator D learns to tell samples of q(z) from samples of Π_j q(z_j),
and TC ≈ E_q(z)[log D(z) / (1 - D(z))], the mean of its logit on codes of the batch.

Samples of Π_j q(z_j) come from permuting each dimension independently across the batch's codes (the
paper's Algorithm 1, permuting within one batch as disentanglement_lib does). Each batch runs two players:

1. ``autoencoder`` (encoder + decoder): the negative ELBO + γ·TC estimate;
2. ``discriminator``: codes of the batch are "q(z)" (label 1), the permuted codes "Π_j q(z_j)" (label 0).

The discriminator is the paper's: 6 hidden layers of 1000 units with LeakyReLU(0.2), Adam with learning rate
1e-4 and betas (0.5, 0.9), one update per batch. ``discriminator_steps`` > 1 updates it several times per batch,
so that the density-ratio estimate keeps up with an encoder trained at a higher learning rate when training is
short. Several updates on the same 64 codes teach D those codes rather than the dependence between dimensions:
its logit on the next batch's codes, the TC estimate, turns negative while its accuracy on the batch it saw
stays near 0.9 (benchmarks/disentanglement_sprites.py). ``code_memory`` > 0 keeps the detached codes of that many
recent batches, and each update draws its joint and its permuted codes from all of them: the TC estimate then
stays positive, though on sprites it did not raise MIG (3000 steps, one seed per setting).

At budgets far below the paper's 300k steps, a smaller, faster discriminator did better on sprites: at 30000
steps, 3 × 256 units at learning rate 1e-3 with 5 updates per batch reached a mean MIG of 0.105 over 5 seeds.
3 × 1000 units at 1e-4 with one update reached 0.027 over 2 seeds, with the stratified TC left at 8-10 nats.
"""

from __future__ import annotations

from typing import ClassVar

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoencoders.losses import gaussian_kl
from autoencoders.models.base import Player
from autoencoders.models.vae import VAE, VAEConfig

DISCRIMINATOR_BETAS = (0.5, 0.9)  # the paper's Adam betas for the discriminator


def permute_dims(z: Tensor) -> Tensor:
    """Each column of ``z`` (batch, dims) shuffled independently: samples of the product of its marginals."""
    batch, dims = z.shape
    order = torch.argsort(torch.rand(batch, dims, device=z.device), dim=0)
    return torch.gather(z, 0, order)


def tc_discriminator(latent_dim: int, hidden: tuple[int, ...]) -> nn.Sequential:
    """An MLP with LeakyReLU(0.2) from a code to one logit: log D(z)/(1 - D(z)), D = P(z came from q(z))."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip((latent_dim, *hidden[:-1]), hidden):
        layers += [nn.Linear(width_in, width_out), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Linear(hidden[-1] if hidden else latent_dim, 1))


@dataclass
class FactorVAEConfig(VAEConfig):
    gamma: float = 6.4  # weight of the TC penalty; 6.4 is the usual setting for dSprites-like data
    discriminator_hidden: tuple[int, ...] = (1000, 1000, 1000, 1000, 1000, 1000)
    discriminator_lr: float | None = 1e-4  # None: the training learning rate
    discriminator_steps: int = 1  # discriminator updates per batch (the paper: 1)
    code_memory: int = 0  # recent batches whose codes the discriminator draws from (0: this batch's only, the paper)

    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        **VAEConfig.bounds, "discriminator_hidden": (1, 2**16), "discriminator_steps": (1, 1000), "code_memory": (0, 10_000),
    }
    search_space: ClassVar[dict[str, dict]] = {**VAEConfig.search_space, "gamma": {"type": "float", "low": 1.0, "high": 50.0, "log": True}}


class FactorVAE(VAE):
    name = "factor-vae"
    config_class = FactorVAEConfig
    own_objective = "the ELBO plus γ·TC"

    def __init__(self, config: FactorVAEConfig):
        super().__init__(config)
        if config.gamma < 0:
            raise ValueError(f"gamma weighs the total-correlation penalty and must be >= 0; got {config.gamma}")
        if not config.discriminator_hidden:  # types and ranges of the settings are checked by the config
            raise ValueError("discriminator_hidden takes the discriminator's layer widths, e.g. --discriminator-hidden [1000,1000]; got none")
        self.discriminator = tc_discriminator(config.latent_dim, tuple(config.discriminator_hidden))
        self._memory: list[Tensor] = []  # detached codes of the last code_memory batches (not saved: rebuilt in training)

    def discriminate(self, z: Tensor) -> Tensor:
        """The discriminator's logit per code: log D(z) - log(1 - D(z))."""
        return self.discriminator(z).squeeze(1)

    # -- the players -------------------------------------------------------------------------------------
    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        output = self(x, y)
        if state is not None:  # the discriminator's samples of q(z)
            state["codes"] = output.latent.detach()
        recon = -self.log_likelihood(output.decoded, x).mean()
        kl = gaussian_kl(output.extras["mean"], output.extras["log_var"]).mean()
        self.discriminator.requires_grad_(False)  # the gradient flows to the codes only, not into D's weights
        tc = self.discriminate(output.latent).mean()
        self.discriminator.requires_grad_(True)
        loss = recon + self.kl_weight(step) * kl + self.config.gamma * tc
        return {"loss": loss, "recon": recon, "kl": kl, "tc": tc, "elbo": -(recon + kl)}

    def _joint_and_product_codes(self, x: Tensor, state: dict) -> tuple[Tensor, Tensor]:
        """Samples of q(z) and of Π_j q(z_j) for one discriminator update: from this batch's codes, or with a code
        memory, a batch-sized draw from the codes of the recent batches (this one among them).

        ``state`` holds the batch's codes (from the autoencoder player, or drawn here by the first update) and,
        once this batch has joined the memory, the codes drawn from; each update on the batch reuses both."""
        codes = state.get("codes")
        if codes is None:
            with torch.no_grad():
                codes = state["codes"] = self(x).latent
        if not self.config.code_memory or not self.training:  # validation batches stay out of the memory
            return codes, permute_dims(codes)
        pool = state.get("remembered_codes")
        if pool is None:  # the first of this batch's updates
            self._memory = (self._memory + [codes])[-self.config.code_memory:]
            pool = state["remembered_codes"] = torch.cat(self._memory)
        joint = pool[torch.randint(len(pool), (len(codes),), device=pool.device)]
        return joint, permute_dims(pool)[: len(codes)]

    def discriminator_loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        joint, product = self._joint_and_product_codes(x, {} if state is None else state)
        joint_logits, product_logits = self.discriminate(joint), self.discriminate(product)
        loss = 0.5 * (
            F.binary_cross_entropy_with_logits(joint_logits, torch.ones_like(joint_logits))
            + F.binary_cross_entropy_with_logits(product_logits, torch.zeros_like(product_logits))
        )
        accuracy = 0.5 * ((joint_logits > 0).float().mean() + (product_logits < 0).float().mean())
        return {"loss": loss, "accuracy": accuracy}

    def vae_parameters(self):
        return itertools.chain(self.encoder.parameters(), self.decoder.parameters(), [self.decoder_log_scale])

    def players(self) -> dict[str, Player]:
        return {
            "autoencoder": Player(self.vae_parameters, self.loss),
            "discriminator": Player(
                self.discriminator.parameters, self.discriminator_loss, lr=self.config.discriminator_lr,
                betas=DISCRIMINATOR_BETAS, repeats=self.config.discriminator_steps,
            ),
        }
