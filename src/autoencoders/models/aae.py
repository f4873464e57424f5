"""Adversarial autoencoders (Makhzani, Shlens, Jaitly, Goodfellow & Frey 2015).

An autoencoder whose code distribution is pushed onto a chosen prior by a GAN in latent space: a
discriminator tells codes from prior samples, and the encoder, as the generator, learns to fool it. The
decoder then turns prior samples into data. Each batch runs the paper's phases as players, in order:

1. ``autoencoder`` (encoder + decoder): the reconstruction loss;
2. ``discriminator``: prior samples are "real", codes of the batch are "fake";
3. ``generator`` (the encoder): make codes the discriminator calls real;
4. ``classifier`` (the encoder's label head, semi-supervised only): cross-entropy on the labelled items,
   optionally each moved a pixel or two (``label_shift``), turned and resized a little (``label_rotation``,
   ``label_scale``) so that a few labels go further.

Three families:
- ``aae``: one continuous code with a Gaussian, mixture-of-Gaussians or swiss-roll prior. With
  ``supervised=True`` the label enters the decoder, so the code need only hold the style (style transfer:
  decode one input's code with every label).
- ``aae-semi``: the encoder gives a label (softmax over the classes) and a style code; the label is matched
  to a uniform categorical prior, the style to a Gaussian, and the label head also learns from the few
  labelled items.
- ``aae-cluster``: the same without any labels: the categorical head's classes become clusters.
For the last two the code (``encode``) is the class probabilities followed by the style. Their discriminator
judges one code at a time, so it barely sees a whole class or cluster go unused; optionally
(``category_balance``) the generator phase also pulls the batch's mean class probabilities towards uniform, as
CatGAN and IMSAT do (Springenberg 2016; Hu et al. 2017). Also optionally (``consistency``), as IMSAT does, the
generator phase teaches the categorical head to give a copy of each item shifted by a pixel or two, turned a
few degrees (and, with ``consistency_scale``, resized a little) the same category as the item itself, so that
the category, not the style code, holds what such moves leave unchanged.
"""

from __future__ import annotations

from typing import ClassVar

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoencoders.losses import reconstruction_loss
from autoencoders.models.base import Autoencoder, ModelConfig, Output, Player
from autoencoders.nn import build_decoder, build_encoder
from autoencoders.nn.mlp import MLPEncoder

PRIORS = ("gaussian", "mog", "swiss-roll")
MIXTURE_RADIUS = 4.0  # mixture-of-Gaussians prior: component means on a circle of this radius ...
MIXTURE_STD = 0.5  # ... each with this standard deviation
GAN_BETAS = (0.5, 0.999)  # Adam's β1 for the adversarial players, as is usual for GANs (Radford et al. 2016)


def sample_prior(kind: str, n: int, dim: int, components: int = 10, device=None) -> Tensor:
    """``n`` draws from a continuous prior over ``dim``-dimensional codes.

    - gaussian: N(0, I).
    - mog: an equal mixture of ``components`` Gaussians with std 0.5, their means evenly spaced on a circle of
      radius 4 in the first two dimensions (0 in the others), as in the paper's 2-D pictures.
    - swiss-roll: 2-D only; a spiral of 1.5 turns, points spread evenly along it, with a little noise.
    """
    if kind == "gaussian":
        return torch.randn(n, dim, device=device)
    if kind == "mog":
        component = torch.randint(components, (n,), device=device)
        angle = 2 * math.pi * component.float() / components
        means = torch.zeros(n, dim, device=device)
        means[:, 0], means[:, 1] = MIXTURE_RADIUS * angle.cos(), MIXTURE_RADIUS * angle.sin()
        return means + MIXTURE_STD * torch.randn(n, dim, device=device)
    if kind == "swiss-roll":
        turn = (torch.rand(n, device=device).sqrt() * 3 + 0.5) * math.pi  # sqrt: uniform along the spiral
        points = torch.stack([turn * turn.cos(), turn * turn.sin()], dim=1) / 3
        return points + 0.05 * torch.randn(n, 2, device=device)
    raise ValueError(f"unknown prior {kind!r}; choose one of {', '.join(PRIORS)}")


def random_shift(x: Tensor, pixels: int, fill: float) -> Tensor:
    """Each image of ``x`` (N, C, H, W) moved by its own random offset of up to ``pixels`` in each direction.

    Uncovered pixels take ``fill`` (the background). The usual augmentation for a classifier that sees few
    labelled digits: the same digit a pixel or two aside is still the same digit.
    """
    n, _, height, width = x.shape
    padded = F.pad(x, (pixels, pixels, pixels, pixels), value=fill)
    offsets = torch.randint(2 * pixels + 1, (2, n, 1), device=x.device)
    rows = (offsets[0] + torch.arange(height, device=x.device))[:, None, :, None]  # (N, 1, H, 1)
    cols = (offsets[1] + torch.arange(width, device=x.device))[:, None, None, :]  # (N, 1, 1, W)
    items = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[items, channels, rows, cols]


def random_rotate_scale(x: Tensor, degrees: float, scale: float, fill: float) -> Tensor:
    """Each image of ``x`` (N, C, H, W) turned by its own random angle in [-degrees, degrees] and resized by a
    random factor in [1 - scale, 1 + scale] about its centre (bilinear; uncovered pixels take ``fill``)."""
    n = x.shape[0]
    angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(degrees)
    # affine_grid maps output coordinates to input ones, so a zoom by s samples the input at 1/s
    inverse_zoom = 1 / (1 + (torch.rand(n, device=x.device) * 2 - 1) * scale)
    cos, sin = angle.cos() * inverse_zoom, angle.sin() * inverse_zoom
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # grid_sample pads with zeros: sample the offset from the background so that padding is the background
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def discriminator(in_features: int, hidden: tuple[int, ...]) -> nn.Module:
    """An MLP from a code to one logit: "this came from the prior"."""
    return MLPEncoder((in_features,), hidden, 1)


def adversarial_losses(discriminate, real: Tensor, fake: Tensor) -> Tensor:
    """The discriminator's binary cross-entropy: ``real`` should score 1, ``fake`` 0."""
    real_logits, fake_logits = discriminate(real), discriminate(fake)
    return F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + F.binary_cross_entropy_with_logits(
        fake_logits, torch.zeros_like(fake_logits)
    )


def r1_penalty(discriminate, real: Tensor) -> Tensor:
    """Mescheder et al. 2018's R1: the mean squared norm of the discriminator's gradient at the prior samples,
    halved. It keeps the discriminator from growing a steep edge around the prior, which in latent space lets it
    win outright (its loss near 0) and leaves the encoder without a useful signal."""
    real = real.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(discriminate(real).sum(), real, create_graph=True)
    return gradient.pow(2).sum(dim=1).mean() / 2


def batch_codes(encode, x: Tensor, state: dict | None) -> Tensor:
    """The detached codes of ``x`` that the autoencoder player put in the batch's ``state``, or encoded afresh."""
    codes = state.get("codes") if state is not None else None
    if codes is None:
        with torch.no_grad():
            codes = encode(x)
    return codes


def fooling_loss(discriminate, fake: Tensor) -> Tensor:
    """The generator's loss: make ``fake`` score 1 (the non-saturating GAN loss)."""
    logits = discriminate(fake)
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


@dataclass
class AAEConfig(ModelConfig):
    prior: str = "gaussian"  # gaussian | mog | swiss-roll
    components: int = 10  # mog: number of mixture components
    supervised: bool = False  # the label enters the decoder; the code holds the style
    discriminator_hidden: tuple[int, ...] = (512, 512)
    discriminator_lr: float | None = None  # None: the training learning rate
    generator_lr: float | None = None  # the encoder's regularization phase; None: the training learning rate
    discriminator_r1: float = 0.0  # weight of the R1 gradient penalty on the discriminator (0: none)

    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        **ModelConfig.bounds, "components": (1, 2**12), "discriminator_hidden": (1, 2**16),
    }


def check_resize_bound(name: str, scale: float) -> None:
    """A random resize's bound: the factor is drawn within 1 ± ``scale``, so it must stay in [0, 1)."""
    if not 0 <= scale < 1:
        raise ValueError(f"{name} is a largest relative change of size in [0, 1), e.g. 0.1; got {scale}")


def check_r1(weight: float) -> None:
    if weight < 0:
        raise ValueError(f"discriminator_r1 is the weight of a gradient penalty, >= 0 (e.g. 1); got {weight}")


class AAE(Autoencoder):
    name = "aae"
    config_class = AAEConfig
    generative = True
    has_code_prior = True

    def __init__(self, config: AAEConfig):
        super().__init__(config)
        if config.prior not in PRIORS:
            raise ValueError(f"unknown prior {config.prior!r}; choose one of {', '.join(PRIORS)}")
        if config.prior == "swiss-roll" and config.latent_dim != 2:
            raise ValueError(f"the swiss-roll prior is 2-D; set --latent-dim 2 (got {config.latent_dim})")
        if config.supervised and config.num_classes < 2:
            raise ValueError("a supervised AAE needs labelled data with at least 2 classes (num_classes)")
        check_r1(config.discriminator_r1)
        self.conditional = config.supervised  # the decoder takes the label
        self.transfers_style = config.supervised  # the code holds the style, the label the class
        label_features = config.num_classes if config.supervised else 0
        self.encoder = build_encoder(config, config.input_shape, config.latent_dim)
        self.decoder = build_decoder(config, config.latent_dim + label_features, config.input_shape)
        self.discriminator = discriminator(config.latent_dim, config.discriminator_hidden)

    @classmethod
    def needs_classes(cls, settings) -> bool:
        return bool(settings.get("supervised"))

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.encoder(x)

    def decode_raw(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if not self.config.supervised:
            return self.decoder(z)
        if y is None:
            raise ValueError("the supervised AAE decodes a code together with a label: pass y (class indices)")
        y = y.expand(z.shape[0]) if y.numel() == 1 else y
        return self.decoder(torch.cat([z, F.one_hot(y.long(), self.config.num_classes).float()], dim=1))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        z = self.encode(x)
        return Output(decoded=self.decode_raw(z, y), latent=z)

    def sample_prior(self, n: int) -> Tensor:
        return sample_prior(self.config.prior, n, self.config.latent_dim, self.config.components, self.discriminator_device)

    @property
    def discriminator_device(self) -> torch.device:
        return next(self.discriminator.parameters()).device

    def discriminate(self, z: Tensor) -> Tensor:
        return self.discriminator(z).squeeze(1)

    # -- the phases ----------------------------------------------------------------------------------------
    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        output = self(x, y)
        if state is not None:  # the discriminator's fakes
            state["codes"] = output.latent.detach()
        recon = reconstruction_loss(output.decoded, x, self.config.recon_loss).mean()
        return {"loss": recon, "recon": recon}

    def discriminator_loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        codes = batch_codes(self.encode, x, state)
        prior = self.sample_prior(x.shape[0])
        loss = adversarial_losses(self.discriminate, prior, codes)
        if not (self.training and self.config.discriminator_r1):  # a training regularizer: validation runs without grad
            return {"loss": loss}
        penalty = r1_penalty(self.discriminate, prior)
        return {"loss": loss + self.config.discriminator_r1 * penalty, "adversarial": loss, "r1": penalty}

    def generator_loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        loss = fooling_loss(self.discriminate, self.encode(x))
        return {"loss": loss}

    def players(self) -> dict[str, Player]:
        return {
            "autoencoder": Player(lambda: itertools.chain(self.encoder.parameters(), self.decoder.parameters()), self.loss),
            "discriminator": Player(self.discriminator.parameters, self.discriminator_loss, lr=self.config.discriminator_lr, betas=GAN_BETAS),
            "generator": Player(self.encoder.parameters, self.generator_loss, lr=self.config.generator_lr, betas=GAN_BETAS),
        }

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        if self.config.supervised and y is None:  # no class asked for: draw classes uniformly
            y = torch.randint(self.config.num_classes, (n,), device=self.discriminator_device)
        return self.decode(self.sample_prior(n), y)

    @torch.no_grad()
    def style_transfer(self, x: Tensor, labels: Tensor) -> Tensor:
        """Each item's style rendered as each label: (items, labels, *item shape). Supervised AAE only."""
        if not self.config.supervised:
            raise ValueError("style transfer needs a supervised AAE (train aae with --supervised)")
        styles = self.encode(x)
        codes = styles.repeat_interleave(len(labels), dim=0)
        frames = self.decode(codes, labels.repeat(x.shape[0]))
        return frames.unflatten(0, (x.shape[0], len(labels)))


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
