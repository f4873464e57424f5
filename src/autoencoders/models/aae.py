"""Adversarial autoencoders (Makhzani, Shlens, Jaitly, Goodfellow & Frey 2016): the AAE, its priors, and what
the adversarial AAEs share (the discriminator, its losses, the R1 penalty, the GAN's Adam betas).

Section 2 of the paper: an autoencoder whose code distribution is pushed onto a chosen prior by a GAN in latent
space. A discriminator D tells codes z = E(x) from prior samples, and the encoder, as the generator, learns to
fool it; the decoder then turns prior samples into data. Each batch runs the paper's phases as players, in order:

1. ``autoencoder`` (encoder + decoder): the reconstruction loss, -log p(x | E(x));
2. ``discriminator``: prior samples are "real", codes of the batch are "fake":
   -log D(z_prior) - log(1 - D(E(x))) (+ the R1 penalty on the prior samples, ``discriminator_r1``);
3. ``generator`` (the encoder): make codes the discriminator calls real, -log D(E(x)).

The code has a Gaussian, mixture-of-Gaussians or swiss-roll prior (``sample_prior``). With ``supervised=True``
(section 4) the label enters the decoder, so the code need only hold the style (style transfer: decode one
input's code with every label). The categorical AAEs (``aae-semi``, ``aae-cluster``) are in
models/categorical_aae.py and use the shared pieces from here.
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


# -- what the adversarial AAEs share (models/categorical_aae.py imports these) --------------------------
GAN_BETAS = (0.5, 0.999)  # Adam's β1 for the adversarial players, as is usual for GANs (Radford et al. 2016)


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


def check_r1(weight: float) -> None:
    if weight < 0:
        raise ValueError(f"discriminator_r1 is the weight of a gradient penalty, >= 0 (e.g. 1); got {weight}")


# -- the AAE --------------------------------------------------------------------------------------------
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
    search_space: ClassVar[dict[str, dict]] = {**ModelConfig.search_space, "discriminator_lr": {"type": "float", "low": 1e-05, "high": 0.001, "log": True}}


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
