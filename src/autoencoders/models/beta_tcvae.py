"""β-TCVAE (Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of Disentanglement in VAEs").

The KL term of the ELBO, averaged over the data, splits into three parts (z ~ q(z|n), n uniform over the N
training items, q(z) = (1/N) Σ_n q(z|n) the aggregate posterior):

    E_n KL(q(z|n) || p(z)) = I_q(n; z)                  index-code mutual information
                           + KL(q(z) || Π_j q(z_j))     total correlation (TC)
                           + Σ_j KL(q(z_j) || p(z_j))   dimension-wise KL

and the loss weighs them apart: recon + α·MI + β·TC + γ·dimKL. A large β alone makes the code's dimensions
independent, without squeezing the information the code carries (α) or its match to the prior (γ).

The terms need log q(z) and log q(z_j), sums over the whole dataset; both are estimated from the batch (B
items with posterior samples z_i): log q(z_i) ≈ log Σ_k w_ik q(z_i|n_k), and the same per dimension, with

- ``mws``, minibatch-weighted sampling: w_ik = 1/(N·B) for every pair (the paper's estimator). These
  weights sum to 1/N, not 1: a constant offset that leaves the gradients alone but shifts the reported terms
  by multiples of log N (MI up by log N, TC up by (D-1)·log N, the dimension-wise KL down by D·log N);
- ``mss``, minibatch-stratified sampling: z_i's own item is always in the batch and stands for itself,
  w_ii = 1/N, and the other B-1 items, a uniform draw from the other N-1, stand for all of them,
  w_ik = (N-1)/(N(B-1)). The weights sum to one and the density estimate is unbiased. (The authors'
  released code builds a different matrix that misplaces these weights, see
  github.com/YannDubs/disentangling-vae/issues/58; this follows the estimator's definition.)

Whatever the estimator, the three terms sum to the sampled KL, log q(z|n) - log p(z). N, the number of
training items, is part of the config (``dataset_size``); ``autoencoders train`` fills it
from the training data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from autoencoders.losses import diagonal_normal_log_prob, gaussian_kl, standard_normal_log_prob
from autoencoders.models.vae import VAE, VAEConfig

ESTIMATORS = ("mss", "mws")


def pairwise_log_density(z: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """log N(z_i,d; mean_k,d, exp(log_var_k,d)) for every sample i, posterior k, dimension d: (B, B, D)."""
    z, mean, log_var = z.unsqueeze(1), mean.unsqueeze(0), log_var.unsqueeze(0)
    return -0.5 * ((z - mean).square() * torch.exp(-log_var) + log_var + math.log(2 * math.pi))


def log_batch_weights(batch: int, dataset_size: int, estimator: str, device=None, dtype=None) -> Tensor:
    """log w_ik (B, B): the weight of posterior k in the estimate of q(z_i) (see the module docstring)."""
    if estimator == "mws":
        return torch.full((batch, batch), -math.log(dataset_size * batch), device=device, dtype=dtype)
    if estimator != "mss":
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    others = math.log((dataset_size - 1) / (dataset_size * max(batch - 1, 1)))
    weights = torch.full((batch, batch), others, device=device, dtype=dtype)
    weights.fill_diagonal_(-math.log(dataset_size))
    return weights


def log_aggregate_posterior(
    z: Tensor, mean: Tensor, log_var: Tensor, dataset_size: int, estimator: str = "mss"
) -> tuple[Tensor, Tensor]:
    """Batch estimates of log q(z_i) and of Σ_j log q(z_ij) for every sample z_i: two tensors of shape (B,)."""
    densities = pairwise_log_density(z, mean, log_var)
    weights = log_batch_weights(z.shape[0], dataset_size, estimator, z.device, z.dtype)
    log_qz = torch.logsumexp(weights + densities.sum(dim=2), dim=1)
    log_marginals = torch.logsumexp(weights.unsqueeze(2) + densities, dim=1)  # (B, D): log q(z_ij)
    return log_qz, log_marginals.sum(dim=1)


def kl_decomposition(
    z: Tensor, mean: Tensor, log_var: Tensor, dataset_size: int, estimator: str = "mss"
) -> dict[str, Tensor]:
    """Batch means of the index-code MI, the total correlation and the dimension-wise KL, in nats."""
    log_qz, log_product = log_aggregate_posterior(z, mean, log_var, dataset_size, estimator)
    log_qz_given_x = diagonal_normal_log_prob(z, mean, log_var)
    log_pz = standard_normal_log_prob(z)
    return {
        "mi": (log_qz_given_x - log_qz).mean(),
        "tc": (log_qz - log_product).mean(),
        "dim_kl": (log_product - log_pz).mean(),
    }


@dataclass
class BetaTCVAEConfig(VAEConfig):
    beta: float = 6.0  # weight of the total correlation (follows kl_schedule when one is set)
    alpha: float = 1.0  # weight of the index-code mutual information
    gamma: float = 1.0  # weight of the dimension-wise KL
    estimator: str = "mss"  # mss (minibatch-stratified) | mws (minibatch-weighted)
    dataset_size: int = 0  # N, the number of training items; filled from the training data

    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        **VAEConfig.bounds, "dataset_size": (0, 2**40),
    }
    search_space: ClassVar[dict[str, dict]] = {**VAEConfig.search_space, "beta": {"type": "float", "low": 1.0, "high": 10.0, "log": True}}


class BetaTCVAE(VAE):
    name = "beta-tcvae"
    config_class = BetaTCVAEConfig
    own_objective = "its decomposed ELBO"

    def __init__(self, config: BetaTCVAEConfig):
        super().__init__(config)
        if config.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {config.estimator!r}; choose one of {', '.join(ESTIMATORS)}")
        if config.dataset_size < 2:
            raise ValueError(
                "β-TCVAE estimates q(z) over the training set and needs its size: set dataset_size to the number "
                f"of training items (autoencoders train fills it from the data); got {config.dataset_size}"
            )

    @classmethod
    def data_settings(cls, dataset, settings: dict[str, Any]) -> dict[str, Any]:
        return {"dataset_size": len(dataset.train)}

    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        output = self(x, y)
        mean, log_var = output.extras["mean"], output.extras["log_var"]
        recon = -self.log_likelihood(output.decoded, x).mean()
        terms = kl_decomposition(output.latent, mean, log_var, self.config.dataset_size, self.config.estimator)
        loss = recon + self.config.alpha * terms["mi"] + self.kl_weight(step) * terms["tc"] + self.config.gamma * terms["dim_kl"]
        kl = gaussian_kl(mean, log_var).mean()
        return {"loss": loss, "recon": recon, "kl": kl, **terms, "elbo": -(recon + kl)}
