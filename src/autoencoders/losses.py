"""Reconstruction terms and KL divergences, each per item (summed over the item's dimensions).

Per-item sums make the VAE losses negative log-likelihoods in nats, so the numbers mean the same thing in
training logs, ``evaluate`` and the NLL benchmark. Every reconstruction loss is the negative log-likelihood
of a decoder distribution: ``bce`` a Bernoulli, ``mse`` a Gaussian, ``l1`` a Laplace.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

RECON_LOSSES = ("mse", "l1", "bce", "hamming")


def _per_item(values: Tensor) -> Tensor:
    return values.flatten(1).sum(dim=1)


def reconstruction_loss(decoded: Tensor, target: Tensor, kind: str) -> Tensor:
    """Per-item reconstruction error of the decoder's raw output (logits for ``bce``/``hamming``)."""
    if kind == "mse":
        return _per_item((decoded - target).square())
    if kind == "l1":
        return _per_item((decoded - target).abs())
    if kind == "bce":
        return _per_item(F.binary_cross_entropy_with_logits(decoded, target, reduction="none"))
    if kind == "hamming":
        # The expected number of flipped bits under the decoder's Bernoulli: differentiable, and equal to
        # the Hamming distance once the probabilities are rounded.
        probability = torch.sigmoid(decoded)
        return _per_item(probability * (1 - target) + (1 - probability) * target)
    raise ValueError(f"unknown reconstruction loss {kind!r}; choose one of {', '.join(RECON_LOSSES)}")


def bernoulli_log_likelihood(logits: Tensor, target: Tensor) -> Tensor:
    return -_per_item(F.binary_cross_entropy_with_logits(logits, target, reduction="none"))


def gaussian_log_likelihood(mean: Tensor, log_scale: Tensor, target: Tensor) -> Tensor:
    variance_term = ((target - mean) * torch.exp(-log_scale)).square()
    return -0.5 * _per_item(variance_term + 2 * log_scale + math.log(2 * math.pi))


def laplace_log_likelihood(mean: Tensor, log_scale: Tensor, target: Tensor) -> Tensor:
    return -_per_item((target - mean).abs() * torch.exp(-log_scale) + log_scale + math.log(2))


def gaussian_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) per item, in closed form."""
    return 0.5 * (mean.square() + log_var.exp() - 1 - log_var).sum(dim=1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    return -0.5 * (z.square() + math.log(2 * math.pi)).sum(dim=-1)


def diagonal_normal_log_prob(z: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    return -0.5 * ((z - mean).square() * torch.exp(-log_var) + log_var + math.log(2 * math.pi)).sum(dim=-1)
