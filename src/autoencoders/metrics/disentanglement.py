"""Disentanglement metrics: how well single code dimensions capture single known factors of the data.

They need data whose labels are the indices of its generating factors (``Dataset.factor_names``/``factor_sizes``,
e.g. the procedural ``sprites``: shape, scale, orientation, x, y). Codes are the model's deterministic codes
(``encode``: the posterior mean for the VAE family), as in disentanglement_lib (Locatello et al. 2019).

- ``mig``, the Mutual Information Gap (Chen et al. 2018): each code dimension is discretized into 20
  equal-width bins over its range; for every factor k, the mutual information I(z_j; v_k) with each dimension
  is computed from the joint histogram, and the gap between the largest and the second largest, divided by
  the factor's entropy H(v_k), says how much more one dimension knows of it than any other. MIG is the mean
  gap over the factors: 1 when each factor is copied by one dimension alone, 0 when no dimension stands out.
- ``factor-score``, the FactorVAE score (Kim & Mnih 2018): the codes are divided by their standard deviation
  over the data; each vote fixes one factor at a random value, draws a batch of fresh items with the other
  factors random, and records the (factor, dimension of least variance in the batch) pair. Dimensions whose
  standard deviation over the data is below 0.05 are left out (they carry nothing), as disentanglement_lib's
  ``_prune_dims`` does with the threshold of its study configs: the threshold is on the standard deviation,
  not the variance, so a dimension of std 0.1 (variance 0.01) counts. A majority-vote classifier maps each
  dimension to the factor it most often stood for in the training votes; the score is its accuracy on
  held-out votes. The default counts are disentanglement_lib's: 10,000 training and 5,000 held-out votes of
  64 items, the scale from 10,000 items. The fresh items need a generator of the data from factors
  (``FACTOR_GENERATORS``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from autoencoders.data.synthetic import render_sprites, sample_factors
from autoencoders.metrics.representation import codes as encode_items

MIG_BINS = 20
PRUNE_STD = 0.05  # dimensions with a smaller standard deviation over the data (in code units) carry nothing


# dataset name -> (sample_factors(count, generator) -> int64 (count, K), render(factors) -> items)
FACTOR_GENERATORS: dict[str, tuple[Callable, Callable]] = {"sprites": (sample_factors, render_sprites)}


def _require_factors(dataset, metric: str) -> None:
    if not getattr(dataset, "factor_sizes", None):
        raise ValueError(
            f"metric {metric} needs data with known generating factors (labels that are factor indices, like the "
            f"sprites dataset: autoencoders train vae --data sprites); dataset {dataset.name!r} has none"
        )


def _require_unconditional(model, metric: str) -> None:
    if model.conditional:
        raise ValueError(f"metric {metric} scores the code of an unconditional model; {model.name} also takes a label")


# -- MIG ---------------------------------------------------------------------------------------------------
def discretize(codes: np.ndarray, bins: int = MIG_BINS) -> np.ndarray:
    """Each column of ``codes`` (N, D) as bin indices 0..bins-1 of ``bins`` equal-width bins over its range."""
    discrete = np.zeros(codes.shape, dtype=np.int64)
    for column in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, column], bins)
        discrete[:, column] = np.digitize(codes[:, column], edges[1:-1])
    return discrete


def mutual_information_matrix(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """I(z_j; v_k) in nats for every code dimension j and factor k: (D, K)."""
    from sklearn.metrics import mutual_info_score

    return np.array([
        [mutual_info_score(factors[:, k], discrete_codes[:, j]) for k in range(factors.shape[1])]
        for j in range(discrete_codes.shape[1])
    ])


def mutual_information_gap(codes: np.ndarray, factors: np.ndarray, bins: int = MIG_BINS) -> float:
    """MIG of codes (N, D) against factor indices (N, K); factors constant over the items are left out."""
    from sklearn.metrics import mutual_info_score

    codes, factors = np.asarray(codes, dtype=np.float64), np.asarray(factors)
    entropy = np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])
    varying = entropy > 0
    if not varying.any():
        raise ValueError("MIG needs factors that vary over the items; every factor is constant here")
    information = mutual_information_matrix(discretize(codes, bins), factors[:, varying])
    top = -np.sort(-information, axis=0)  # each factor's column, largest first
    second = top[1] if len(top) > 1 else np.zeros(top.shape[1])
    return float(np.mean((top[0] - second) / entropy[varying]))


def mig(model, dataset, split: str = "test", seed: int = 0) -> float:
    _require_factors(dataset, "mig")
    _require_unconditional(model, "mig")
    factors = dataset.labels(split).long().numpy()
    return mutual_information_gap(encode_items(model, dataset.split(split)), factors)


# -- FactorVAE score ---------------------------------------------------------------------------------------
def majority_vote_accuracy(train_votes: tuple[np.ndarray, np.ndarray], eval_votes: tuple[np.ndarray, np.ndarray], dims: int, factors: int) -> float:
    """Fit dimension -> most frequent factor on ``train_votes`` (dimensions, factors); accuracy on ``eval_votes``."""
    counts = np.zeros((dims, factors), dtype=np.int64)
    np.add.at(counts, train_votes, 1)
    classifier = counts.argmax(axis=1)
    chosen_dims, true_factors = eval_votes
    return float(np.mean(classifier[chosen_dims] == true_factors))


def least_variance_votes(
    codes_of: Callable[[torch.Tensor], np.ndarray], sample: Callable, votes: int, batch: int, scale: np.ndarray,
    active: np.ndarray, generator: torch.Generator, chunk_votes: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """(least-variance active dimension, fixed factor) of ``votes`` batches, each with one factor fixed."""
    dims, fixed = [], []
    active_index = np.flatnonzero(active)
    for start in range(0, votes, chunk_votes):
        count = min(chunk_votes, votes - start)
        factors = sample(count * batch, generator).view(count, batch, -1)
        chosen = torch.randint(factors.shape[2], (count,), generator=generator)
        rows = torch.arange(count)
        factors[rows, :, chosen] = factors[rows, 0, chosen].unsqueeze(1)  # the first item's value, for all
        codes = codes_of(factors.flatten(0, 1)).reshape(count, batch, -1) / scale
        variances = codes.var(axis=1, ddof=1)[:, active_index]
        dims.append(active_index[variances.argmin(axis=1)])
        fixed.append(chosen.numpy())
    return np.concatenate(dims), np.concatenate(fixed)


def factor_score_of(
    codes_of: Callable[[torch.Tensor], np.ndarray], sample: Callable, seed: int = 0, train_votes: int = 10000,
    eval_votes: int = 5000, batch: int = 64, scale_items: int = 10000, prune_std: float = PRUNE_STD,
) -> float:
    """The FactorVAE score of the codes ``codes_of(factors)`` gives for factor indices drawn by ``sample``;
    dimensions whose standard deviation over the data is below ``prune_std`` do not vote."""
    generator = torch.Generator().manual_seed(seed)
    data_codes = codes_of(sample(scale_items, generator))
    scale = data_codes.std(axis=0, ddof=1)
    active = scale >= prune_std
    if not active.any():  # a collapsed code tells nothing about any factor
        return 0.0
    scale[~active] = 1.0
    train = least_variance_votes(codes_of, sample, train_votes, batch, scale, active, generator)
    held_out = least_variance_votes(codes_of, sample, eval_votes, batch, scale, active, generator)
    factors = sample(1, generator).shape[1]
    return majority_vote_accuracy(train, held_out, data_codes.shape[1], factors)


def factor_vae_score(model, dataset, split: str = "test", seed: int = 0, **options) -> float:
    """The FactorVAE score of ``model``; ``split`` is not used: the items are rendered afresh from factors."""
    _require_factors(dataset, "factor-score")
    _require_unconditional(model, "factor-score")
    if dataset.name not in FACTOR_GENERATORS:
        raise ValueError(
            f"factor-score draws fresh items with one factor fixed and can make them only for "
            f"{', '.join(FACTOR_GENERATORS)}; dataset {dataset.name!r} is not one of them (use mig instead)"
        )
    sample, render = FACTOR_GENERATORS[dataset.name]
    return factor_score_of(lambda factors: encode_items(model, render(factors)), sample, seed=seed, **options)


# -- latent traversals ------------------------------------------------------------------------------------
TRAVERSAL_SPAN = 2.5  # VAE family: each dimension is swept over [-2.5, 2.5], most of the N(0, 1) prior


@torch.no_grad()
def latent_traversals(
    model, item: torch.Tensor, reference: torch.Tensor, steps: int = 9, max_dims: int = 16
) -> tuple[torch.Tensor, list[int], list[float] | None]:
    """Decodings of ``item``'s code with one dimension swept at a time: (frames (dims, steps, ...), dims, KL).

    Dimensions come in order of their mean KL(q(z_j|x) || N(0, 1)) over ``reference`` items, largest first,
    for models with a Gaussian posterior (the KL, in nats, is returned too); for other models in order of
    their variance over ``reference``, swept between its 2nd and 98th percentiles. At most ``max_dims`` rows.
    """
    model = model.eval()
    reference_codes = model.encode_batches(reference)
    if reference_codes.dim() != 2:
        raise ValueError(f"latent traversals need flat codes; {model.name} gives codes of shape {tuple(reference_codes.shape[1:])}")
    if model.gaussian_posterior:
        mean, log_var = zip(*(model.posterior(reference[start : start + 1024]) for start in range(0, len(reference), 1024)))
        mean, log_var = torch.cat(mean), torch.cat(log_var)
        per_dim = (0.5 * (mean.square() + log_var.exp() - 1 - log_var)).mean(0)
        order = torch.argsort(per_dim, descending=True)[:max_dims]
        sweep = torch.linspace(-TRAVERSAL_SPAN, TRAVERSAL_SPAN, steps).expand(len(order), steps)
        kl = [float(per_dim[dim]) for dim in order]
    else:
        order = torch.argsort(reference_codes.var(0), descending=True)[:max_dims]
        low, high = torch.quantile(reference_codes[:, order], torch.tensor([0.02, 0.98]), dim=0)
        sweep = low.unsqueeze(1) + (high - low).unsqueeze(1) * torch.linspace(0, 1, steps)
        kl = None
    code = model.encode(item.unsqueeze(0))[0]
    codes = code.repeat(len(order), steps, 1)  # (dims, steps, latent)
    codes[torch.arange(len(order)), :, order] = sweep
    frames = model.decode(codes.flatten(0, 1)).unflatten(0, (len(order), steps))
    return frames, [int(dim) for dim in order], kl


DISENTANGLEMENT_METRICS = {"mig": mig, "factor-score": factor_vae_score}
