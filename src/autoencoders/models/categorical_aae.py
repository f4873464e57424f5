"""Categorical adversarial autoencoders (Makhzani, Shlens, Jaitly, Goodfellow & Frey 2016): ``aae-semi``
(section 5, semi-supervised classification) and ``aae-cluster`` (section 6, unsupervised clustering).

The encoder gives a categorical head q(y | x) (a softmax over the classes or clusters) and a style code z, and
the decoder reconstructs x from both. Two discriminators, from models/aae.py like the rest of the adversarial
machinery, match the heads to their priors: the class probabilities to a uniform categorical (one-hot
samples), the style to N(0, I). Each batch runs the players in order:

1. ``autoencoder`` (encoder + decoder): the reconstruction loss of x decoded from (q(y | x), z);
2. ``discriminator``: one-hot and Gaussian prior samples are "real", the batch's heads "fake" (binary
   cross-entropy for each discriminator, + the R1 penalty on the prior samples, ``discriminator_r1``);
3. ``generator`` (the encoder): make both heads look real to their discriminators;
4. ``classifier`` (``aae-semi`` only): cross-entropy of q(y | x) on the labelled items, optionally each moved
   a pixel or two (``label_shift``), turned and resized a little (``label_rotation``, ``label_scale``) so that
   a few labels go further.

``aae-cluster`` is ``aae-semi`` without labels and without phase 4: the categorical head's classes become
clusters. The two are one family, one model with and without a classifier, so they share this file: the base
``CategoricalAAE`` holds all of it but the classifier, and splitting them would leave a file of a few lines.
The code (``encode``) is the class probabilities followed by the style.

The discriminator judges one code at a time, so it barely sees a whole class or cluster go unused; optionally
(``category_balance``) the generator phase also pulls the batch's mean class probabilities towards uniform, as
CatGAN and IMSAT do (Springenberg 2016; Hu et al. 2017). Also optionally (``consistency``), as IMSAT does, the
generator phase teaches the categorical head to give a copy of each item shifted by a pixel or two, turned a
few degrees (and, with ``consistency_scale``, resized a little) the same category as the item itself, so that
the category, not the style code, holds what such moves leave unchanged. The moves are the random image moves
of corruption.py.
"""

from __future__ import annotations

from typing import ClassVar

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoencoders.corruption import check_resize_bound, random_rotate_scale, random_shift
from autoencoders.losses import reconstruction_loss
from autoencoders.models.aae import GAN_BETAS, adversarial_losses, batch_codes, check_r1, discriminator, fooling_loss, r1_penalty
from autoencoders.models.base import Autoencoder, ModelConfig, Output, Player
from autoencoders.nn import build_decoder, build_encoder


@dataclass
class CategoricalAAEConfig(ModelConfig):
    latent_dim: int = 10  # the style code (the label or cluster comes on top)
    discriminator_hidden: tuple[int, ...] = (512, 512)
    discriminator_lr: float | None = None
    generator_lr: float | None = None
    discriminator_r1: float = 0.0  # R1 gradient penalty on both discriminators, as in AAEConfig
    category_balance: float = 0.0  # weight of the batch's category imbalance (see category_imbalance) for the generator
    consistency: float = 0.0  # weight of the category head's consistency under small moves (see consistency_divergence)
    consistency_shift: int = 2  # images: the moved copy is shifted by up to this many pixels
    consistency_rotation: float = 10.0  # ... and turned by up to this many degrees
    consistency_scale: float = 0.0  # ... and resized by a factor within 1 ± this

    search_space: ClassVar[dict[str, dict]] = {
        **ModelConfig.search_space, "discriminator_lr": {"type": "float", "low": 1e-05, "high": 0.001, "log": True}, "category_balance": {"type": "float", "low": 0.0, "high": 1.0},
    }


def consistency_divergence(probabilities: Tensor, moved_logits: Tensor) -> Tensor:
    """KL(p(category | x) || p(category | x moved)), with p(category | x) held fixed as the target: the head is
    taught to give a slightly shifted or turned item the category of the item itself (as in IMSAT, Hu et al. 2017)."""
    target = probabilities.detach()
    return (target * (target.clamp_min(1e-12).log() - moved_logits.log_softmax(dim=1))).sum(dim=1).mean()


def category_imbalance(probabilities: Tensor) -> Tensor:
    """KL(the batch's mean category probabilities || uniform) = log K − H(mean p): 0 when every category is used
    equally, log K when the whole batch falls into one."""
    mean = probabilities.mean(dim=0)
    return math.log(probabilities.shape[1]) + (mean * mean.clamp_min(1e-12).log()).sum()


class CategoricalAAE(Autoencoder):
    """Shared by ``aae-semi`` and ``aae-cluster``: a categorical head and a style code, both regularized."""

    generative = True
    classifies = True

    def __init__(self, config: CategoricalAAEConfig, categories: int):
        super().__init__(config)
        if categories < 2:
            raise ValueError(f"the categorical head needs at least 2 classes or clusters; got {categories}")
        check_r1(config.discriminator_r1)
        if config.category_balance < 0:
            raise ValueError(f"category_balance is a weight >= 0 (0 turns it off); got {config.category_balance}")
        if config.consistency < 0:
            raise ValueError(f"consistency is a weight >= 0 (0 turns it off); got {config.consistency}")
        if config.consistency_shift < 0 or config.consistency_rotation < 0:
            raise ValueError(
                f"consistency_shift (pixels) and consistency_rotation (degrees) are bounds >= 0; got "
                f"{config.consistency_shift} and {config.consistency_rotation}"
            )
        check_resize_bound("consistency_scale", config.consistency_scale)
        if config.consistency and len(config.input_shape) != 3:
            raise ValueError(
                f"consistency compares images with moved copies (channels, height, width); this data's items have shape "
                f"{config.input_shape}: set consistency=0"
            )
        self.categories = categories
        features = categories + config.latent_dim
        if config.arch == "acai":  # its code is a whole feature map: a linear layer adds the category logits
            self.encoder = nn.Sequential(build_encoder(config, config.input_shape, config.latent_dim), nn.Linear(config.latent_dim, features))
        else:
            self.encoder = build_encoder(config, config.input_shape, features)
        self.decoder = build_decoder(config, categories + config.latent_dim, config.input_shape)
        self.category_discriminator = discriminator(categories, config.discriminator_hidden)
        self.style_discriminator = discriminator(config.latent_dim, config.discriminator_hidden)

    @property
    def code_size(self) -> int:
        return self.categories + self.config.latent_dim

    @property
    def sample_classes(self) -> int:
        return self.categories

    def heads(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(category logits, style code) of ``x``."""
        features = self.encoder(x)
        return features[:, : self.categories], features[:, self.categories :]

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        logits, style = self.heads(x)
        return torch.cat([logits.softmax(dim=1), style], dim=1)

    def move(self, x: Tensor) -> Tensor:
        """Images ``x`` each shifted, turned and resized at random within the consistency bounds."""
        if x.dim() != 4:
            raise ValueError(f"moves apply to images (batch, channels, height, width); got items of shape {tuple(x.shape[1:])}")
        background = self.config.value_range[0]
        moved = random_shift(x, self.config.consistency_shift, fill=background)
        return random_rotate_scale(moved, self.config.consistency_rotation, self.config.consistency_scale, fill=background)

    def decode_raw(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        z = self.encode(x)
        return Output(decoded=self.decoder(z), latent=z)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """The most probable class (aae-semi) or cluster (aae-cluster) of each item."""
        return self.heads(x)[0].argmax(dim=1)

    def _prior_code(self, n: int, category: Tensor | None = None) -> Tensor:
        device = next(self.decoder.parameters()).device
        if category is None:
            category = torch.randint(self.categories, (n,), device=device)
        category = category.expand(n) if category.numel() == 1 else category
        one_hot = F.one_hot(category.long().to(device), self.categories).float()
        return torch.cat([one_hot, torch.randn(n, self.config.latent_dim, device=device)], dim=1)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        """Decode a one-hot class (``y``, or uniform) with a Gaussian style."""
        return self.decode(self._prior_code(n, y))

    # -- the phases ----------------------------------------------------------------------------------------
    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        output = self(x)
        if state is not None:  # the discriminators' fakes
            state["codes"] = output.latent.detach()
        recon = reconstruction_loss(output.decoded, x, self.config.recon_loss).mean()
        return {"loss": recon, "recon": recon}

    def discriminator_loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        codes = batch_codes(self.encode, x, state)
        prior = self._prior_code(x.shape[0])
        k = self.categories
        category = adversarial_losses(self.category_discriminator, prior[:, :k], codes[:, :k])
        style = adversarial_losses(self.style_discriminator, prior[:, k:], codes[:, k:])
        losses = {"loss": category + style, "category": category, "style": style}
        if self.training and self.config.discriminator_r1:  # a training regularizer: validation runs without grad
            penalty = r1_penalty(self.category_discriminator, prior[:, :k]) + r1_penalty(self.style_discriminator, prior[:, k:])
            losses.update(loss=losses["loss"] + self.config.discriminator_r1 * penalty, r1=penalty)
        return losses

    def generator_loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        codes = self.encode(x)
        k = self.categories
        category = fooling_loss(self.category_discriminator, codes[:, :k])
        style = fooling_loss(self.style_discriminator, codes[:, k:])
        losses = {"loss": category + style, "category": category, "style": style}
        if self.config.category_balance:
            imbalance = category_imbalance(codes[:, :k])
            losses.update(loss=losses["loss"] + self.config.category_balance * imbalance, imbalance=imbalance)
        if self.config.consistency and self.training:
            divergence = consistency_divergence(codes[:, :k], self.heads(self.move(x))[0])
            losses.update(loss=losses["loss"] + self.config.consistency * divergence, consistency=divergence)
        return losses

    def _discriminator_parameters(self):
        return itertools.chain(self.category_discriminator.parameters(), self.style_discriminator.parameters())

    def players(self) -> dict[str, Player]:
        return {
            "autoencoder": Player(self._autoencoder_parameters, self.loss),
            "discriminator": Player(self._discriminator_parameters, self.discriminator_loss, lr=self.config.discriminator_lr, betas=GAN_BETAS),
            "generator": Player(self.encoder.parameters, self.generator_loss, lr=self.config.generator_lr, betas=GAN_BETAS),
        }

    def _autoencoder_parameters(self):
        return itertools.chain(self.encoder.parameters(), self.decoder.parameters())


@dataclass
class AAESemiConfig(CategoricalAAEConfig):
    num_classes: int = 10
    labels: int = 1000  # labelled training items, balanced over the classes and picked by the seed
    classifier_lr: float | None = None
    label_shift: int = 0  # images: the classifier phase moves each labelled item by up to this many pixels
    label_rotation: float = 0.0  # images: ... and turns it by up to this many degrees
    label_scale: float = 0.0  # images: ... and resizes it by a factor within 1 ± this

    bounds: ClassVar[dict[str, tuple[float, float]]] = {**CategoricalAAEConfig.bounds, "labels": (1, 2**40)}


class AAESemi(CategoricalAAE):
    name = "aae-semi"
    config_class = AAESemiConfig

    def __init__(self, config: AAESemiConfig):
        if config.label_shift < 0:
            raise ValueError(f"label_shift is a number of pixels >= 0; got {config.label_shift}")
        if config.label_rotation < 0:
            raise ValueError(f"label_rotation is a largest angle in degrees, >= 0; got {config.label_rotation}")
        check_resize_bound("label_scale", config.label_scale)
        augments = [name for name in ("label_shift", "label_rotation", "label_scale") if getattr(config, name)]
        if augments and len(config.input_shape) != 3:
            raise ValueError(
                f"{', '.join(augments)} transform images (channels, height, width); this data's items have shape {config.input_shape}"
            )
        super().__init__(config, config.num_classes)
        self.labelled_items = config.labels

    @classmethod
    def needs_classes(cls, settings) -> bool:
        return True

    def classifier_loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        """Cross-entropy of the label head on the batch's labelled items (label -1: unlabelled)."""
        if y is None:
            raise ValueError("aae-semi trains on batches with labels (-1 for unlabelled items)")
        labelled = y >= 0
        x = x[labelled]
        if self.training:
            background = self.config.value_range[0]
            if self.config.label_shift:
                x = random_shift(x, self.config.label_shift, fill=background)
            if self.config.label_rotation or self.config.label_scale:
                x = random_rotate_scale(x, self.config.label_rotation, self.config.label_scale, fill=background)
        logits, _ = self.heads(x)
        cross_entropy = F.cross_entropy(logits, y[labelled]) if labelled.any() else logits.sum() * 0
        accuracy = (logits.argmax(dim=1) == y[labelled]).float().mean() if labelled.any() else cross_entropy.detach()
        return {"loss": cross_entropy, "accuracy": accuracy}

    def players(self) -> dict[str, Player]:
        return {
            **super().players(),
            "classifier": Player(self.encoder.parameters, self.classifier_loss, lr=self.config.classifier_lr),
        }


@dataclass
class AAEClusterConfig(CategoricalAAEConfig):
    clusters: int = 16


class AAECluster(CategoricalAAE):
    name = "aae-cluster"
    config_class = AAEClusterConfig

    def __init__(self, config: AAEClusterConfig):
        super().__init__(config, config.clusters)
