"""Samplers: how new items are drawn from a trained model.

- ``prior``: the model's own prior (VAEs, AAEs): ``model.sample``.
- ``gmm``: a Gaussian mixture (scikit-learn) fitted on the codes of training items, then decoded. It lets a plain
  autoencoder generate, and often improves a VAE whose aggregate posterior does not fill its prior (the "ex-post
  density estimation" of Ghosh et al. 2020). Conditional models (cvae, aae --supervised) fit the mixture on the
  codes given the true labels, which hold the style, and decode them with the label asked for.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

SAMPLERS = ("prior", "gmm")
FIT_ITEMS = 20000  # training items whose codes the mixture is fitted on (the first ones of the split)


class LatentMixture:
    """A Gaussian mixture over a model's training codes; ``sample`` decodes draws from it."""

    def __init__(self, model, components: int = 10, covariance: str = "full", seed: int = 0):
        if components < 1:
            raise ValueError(f"the latent mixture needs at least 1 component; got {components}")
        self.model, self.components, self.covariance, self.seed = model, components, covariance, seed
        self.mixture = None
        self.class_frequencies: Tensor | None = None
        self.code_shape: tuple[int, ...] = ()

    @torch.no_grad()
    def fit(self, items: Tensor, labels: Tensor | None = None, batch_size: int = 1000) -> "LatentMixture":
        from sklearn.mixture import GaussianMixture

        model = self.model
        if model.conditional and labels is None:
            raise ValueError(f"the {model.name} model is conditional: fitting its latent mixture needs the training labels")
        if len(items) < self.components:
            raise ValueError(f"{len(items)} training items cannot fit a mixture of {self.components} components")
        items = items[:FIT_ITEMS]
        labels = None if labels is None or not model.conditional else labels[:FIT_ITEMS].long()
        codes = model.encode_batches(items, labels, batch_size)
        self.code_shape = tuple(codes.shape[1:])  # some archs (acai) code as a feature map: fitted flattened
        codes = codes.flatten(1).double().cpu().numpy()
        self.mixture = GaussianMixture(self.components, covariance_type=self.covariance, reg_covar=1e-5, random_state=self.seed).fit(codes)
        if labels is not None:
            counts = torch.bincount(labels, minlength=model.sample_classes).double()
            self.class_frequencies = counts / counts.sum()
        return self

    def codes(self, n: int, seed: int = 0) -> Tensor:
        """``n`` codes drawn from the mixture, in random order (scikit-learn returns them grouped by component)."""
        if self.mixture is None:
            raise ValueError("fit the latent mixture on training items first (LatentMixture(model).fit(x, y))")
        self.mixture.random_state = seed
        draws, _ = self.mixture.sample(n)
        order = np.random.default_rng(seed).permutation(n)
        return torch.as_tensor(draws[order], dtype=torch.float32)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None, seed: int = 0, batch_size: int = 1000) -> Tensor:
        """``n`` decoded draws; conditional models take class ``y`` (else classes drawn as often as in training)."""
        model = self.model
        if y is not None and not model.conditional:
            raise ValueError(
                f"the gmm sampler draws a chosen class only for conditional models (cvae, aae --supervised); "
                f"{model.name} is not one: drop the label, or use --sampler prior"
            )
        device = next(model.parameters()).device
        codes = self.codes(n, seed).to(device).view(n, *self.code_shape)
        if model.conditional and y is None:
            generator = torch.Generator().manual_seed(seed)
            y = torch.multinomial(self.class_frequencies.float(), n, replacement=True, generator=generator)
        if y is not None:
            y = y.to(device).expand(n) if y.numel() == 1 else y.to(device)
        return torch.cat([
            model.decode(codes[start : start + batch_size], None if y is None else y[start : start + batch_size])
            for start in range(0, n, batch_size)
        ])


@torch.no_grad()
def draw_samples(
    model, n: int, sampler: str = "prior", y: Tensor | None = None, train: Tensor | None = None,
    train_labels: Tensor | None = None, components: int = 10, seed: int = 0, device: str = "cpu", batch_size: int = 1000,
) -> Tensor:
    """``n`` new items from ``model`` by ``sampler`` (``gmm`` needs the training items ``train``)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    model = model.to(device).eval()
    if sampler == "gmm":
        if train is None:
            raise ValueError("the gmm sampler fits a mixture on training codes: pass the training items")
        return LatentMixture(model, components, seed=seed).fit(train, train_labels).sample(n, y, seed=seed).cpu()
    if not model.generative:
        raise ValueError(f"{model.name} has no prior to sample from; use the gmm sampler (--sampler gmm), which fits one to its codes")
    torch.manual_seed(seed)
    if y is not None:
        y = y.to(device).expand(n) if y.numel() == 1 else y.to(device)
    return torch.cat([
        model.sample(min(batch_size, n - start), None if y is None else y[start : start + batch_size]).cpu()
        for start in range(0, n, batch_size)
    ])


MAX_SAMPLES = 1_000_000


def sample_run(run, n: int, sampler: str = "prior", label: int | None = None, components: int = 10, seed: int = 0, data_dir=None) -> Tensor:
    """``n`` samples of a run folder's model; the gmm sampler is fitted on the run's own training data."""
    from autoencoders.io import load, load_run_data

    if not 1 <= n <= MAX_SAMPLES:
        raise ValueError(f"the number of samples must lie in [1, {MAX_SAMPLES}]; got {n}")
    model = load(run)
    train = train_labels = None
    if sampler == "gmm":
        dataset = load_run_data(run, data_dir=data_dir)
        train, train_labels = dataset.train, dataset.train_labels
    if label is not None and not 0 <= label < model.sample_classes:
        raise ValueError(
            f"a label needs a conditional model (cvae, aae --supervised, aae-semi, aae-cluster) and a class in "
            f"0..{max(model.sample_classes - 1, 0)}; {model.name} takes {model.sample_classes} classes"
        )
    y = None if label is None else torch.full((n,), label, dtype=torch.long)
    return draw_samples(model, n, sampler, y, train, train_labels, components, seed)
