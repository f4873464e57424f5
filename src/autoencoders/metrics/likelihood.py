"""Likelihood metrics for the VAE family, in nats per item.

``nll``: -log p(x) estimated by importance sampling with K samples from q(z|x) (Burda et al. 2016);
the estimate is a stochastic upper bound on the true NLL that tightens as K grows (K=1 is the ELBO in
expectation). ``neg_elbo``: the negative ELBO (reconstruction NLL + KL). ``kl``: KL(q(z|x) || p(z)).
"""

from __future__ import annotations

from torch import Tensor


def _require_vae(model) -> None:
    if not model.has_likelihood:
        raise ValueError(f"likelihood metrics need a VAE-family model; {model.name!r} has no likelihood")


def nll(model, x: Tensor, y: Tensor | None, samples: int = 1000) -> Tensor:
    _require_vae(model)
    return -model.log_marginal_likelihood(x, y, samples=samples)


def negative_elbo(model, x: Tensor, y: Tensor | None, samples: int = 1) -> Tensor:
    _require_vae(model)
    return model.negative_elbo(x, y)


def kl(model, x: Tensor, y: Tensor | None, samples: int = 1) -> Tensor:
    _require_vae(model)
    return model.kl_divergence(x, y)


LIKELIHOOD_METRICS = {"nll": nll, "neg_elbo": negative_elbo, "kl": kl}
