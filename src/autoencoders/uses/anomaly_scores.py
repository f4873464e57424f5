"""The anomaly scores of ``AnomalyDetector``, one class each.

Every score is made from the detector's parameters it ``takes``, learns what it needs from the fitted items in
``fit(model, items)`` and gives one number per item in ``score(model, items)``, higher for more anomalous items.
``fitted=True`` scores the fitted items themselves (the nearest-neighbour distances leave each item out of its
own neighbours there). ``state()`` is what ``save_pretrained`` keeps of a fitted score: JSON values and named
tensors, no pickle; ``restore`` puts them back. ``check`` refuses, before any training, a model family or an
item shape the score cannot work with.

- ``recon`` (ReconstructionScore): the mean squared reconstruction error per value; for images optionally of
  the residual average-pooled over ``pool`` x ``pool`` patches, which forgives strokes drawn a pixel off and
  weighs errors over whole parts of the image.
- ``elbo`` (ELBOScore): the negative ELBO, or with ``samples > 1`` the negative importance-sampled
  log-likelihood bound (Burda et al. 2016); models with a likelihood only.
- ``latent`` (LatentScore): the distance of an item's code to the fitted items' codes (``latent_distance``):
  the mean Euclidean distance to the ``neighbors`` nearest (``knn``), the same after whitening the codes by the
  fitted codes' principal directions (``whitened``: every direction the normal codes vary along counts alike),
  the mean cosine distance to the nearest by angle (``cosine``), or the Mahalanobis distance to their Gaussian
  fit (``mahalanobis``, Ledoit-Wolf shrunk covariance). Several join with ``+``, standardized and summed: on
  Fashion-MNIST ``knn+whitened+cosine`` ranks anomalies better than any one (benchmarks/anomaly_one_class.py).
- ``rapp`` (RaPPScore): reconstruction along the projection pathway (RaPP, Kim et al. 2020, its NAP form): the
  item and its reconstruction go through the encoder again, and the differences of every hidden layer's
  activations (and of the codes) are whitened by the principal directions of the fitted items' differences (all
  whose singular value is at least 1e-3 of the largest, or the top ``components`` by a randomized SVD) and summed
  in squares.
- ``rotation`` (RotationScore): self-supervised, square images only (``autoencoders.uses.rotation``).
- ``isolation`` (IsolationScore, in ``autoencoders.uses.isolation``): isolation forests over the model's
  ``anomaly_views``, its codes beside its residuals; the default for tables.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from autoencoders.progress import track
from autoencoders.training.fit import training_steps
from autoencoders.uses.rotation import RotationPredictor, check_rotatable, train_rotation_predictor

RAPP_RELATIVE_CUTOFF = 1e-3  # singular values below this fraction of the largest are left out of the whitening
# the encoder's layers whose outputs RaPP compares: each nonlinearity ends a layer
ACTIVATIONS = (torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.ELU, torch.nn.GELU, torch.nn.SiLU, torch.nn.Tanh)
LATENT_DISTANCES = {
    "knn": "mean Euclidean distance to the nearest fitted codes",
    "whitened": "mean distance to the nearest fitted codes after whitening them (Mahalanobis nearest neighbours)",
    "cosine": "mean cosine distance to the nearest fitted codes (by angle)",
    "mahalanobis": "Mahalanobis distance to a Gaussian fit of the fitted codes (Ledoit-Wolf)",
}
NEIGHBOUR_DISTANCES = ("knn", "whitened", "cosine")  # the latent distances that look up nearest fitted codes


def scale_of(fitted_scores: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of a score on the fitted items, by which it is standardized in a sum."""
    return float(np.mean(fitted_scores)), max(float(np.std(fitted_scores)), 1e-12)


def standardized_sum(scores: list[np.ndarray], scales: list[tuple[float, float]]) -> np.ndarray:
    return sum((values - mean) / std for values, (mean, std) in zip(scores, scales))


def parse_latent_distance(latent_distance: str) -> list[str]:
    """"knn+cosine" -> ["knn", "cosine"], checked against ``LATENT_DISTANCES``."""
    parts = [part.strip() for part in latent_distance.split("+")] if isinstance(latent_distance, str) else []
    if not parts or any(part not in LATENT_DISTANCES for part in parts) or len(set(parts)) != len(parts):
        raise ValueError(
            f"latent_distance must be one of {', '.join(LATENT_DISTANCES)} or several joined by '+' "
            f"(e.g. knn+whitened+cosine); got {latent_distance!r}"
        )
    return parts


def principal_directions(centred: Tensor) -> tuple[Tensor, Tensor]:
    """All singular values (descending) and right singular vectors of ``centred`` (N, P), exactly, from the
    eigendecomposition of the smaller of its two Gram matrices (faster than an SVD of the whole matrix)."""
    if centred.shape[1] <= centred.shape[0]:
        eigenvalues, vectors = torch.linalg.eigh(centred.T @ centred)  # P x P
        singular = eigenvalues.clamp(min=0).sqrt().flip(0)
        return singular, vectors.flip(1)
    eigenvalues, left = torch.linalg.eigh(centred @ centred.T)  # N x N
    singular, left = eigenvalues.clamp(min=0).sqrt().flip(0), left.flip(1)
    return singular, (centred.T @ left) / singular.clamp(min=singular[0] * 1e-12)


class AnomalyScore:
    """One anomaly score; subclasses set ``name``, ``description``, ``takes`` and implement ``score``."""

    name: ClassVar[str]
    description: ClassVar[str]
    takes: ClassVar[tuple[str, ...]] = ("batch", "device")  # the detector's parameters the score is made from

    def __init__(self, **params: Any):
        for key in self.takes:
            setattr(self, key, params[key])

    @classmethod
    def check(cls, model: Any, item_shape: tuple[int, ...]) -> None:
        """Refuse a model (class or instance) or item shape this score cannot work with; nothing by default."""

    def fit(self, model, items: Tensor) -> "AnomalyScore":
        return self

    def fit_score(self, model, items: Tensor) -> np.ndarray:
        """``fit``, then the fitted items' own scores (``score(..., fitted=True)``); a score that computes them
        while fitting returns those."""
        return self.fit(model, items).score(model, items, fitted=True)

    def score(self, model, items: Tensor, fitted: bool = False) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """(JSON values, named tensors) that ``restore`` needs to score as this fitted score does."""
        return {}, {}

    def restore(self, model, values: dict[str, Any], arrays: dict[str, Tensor]) -> None:
        """Put back what ``state`` gave; raises KeyError or ValueError on missing or inconsistent parts."""

    def _chunks(self, items: Tensor, what: str):
        chunks = items.split(self.batch)
        return track(chunks, len(chunks), f"{what} of {len(items)} items")


class ReconstructionScore(AnomalyScore):
    name = "recon"
    description = "mean squared reconstruction error per value"
    takes = ("batch", "device", "pool")

    @torch.no_grad()
    def score(self, model, items: Tensor, fitted: bool = False) -> np.ndarray:
        values = []
        for chunk in self._chunks(items, "recon scores"):
            chunk = chunk.to(self.device)
            residual = model.reconstruct(chunk) - chunk
            if self.pool > 1 and residual.dim() == 4:
                residual = torch.nn.functional.avg_pool2d(residual, int(self.pool), ceil_mode=True)
            values.append(residual.pow(2).flatten(1).mean(1).cpu())
        return torch.cat(values).double().numpy()


class ELBOScore(AnomalyScore):
    name = "elbo"
    description = "negative ELBO (samples=1) or negative importance-sampled log-likelihood bound (VAE family)"
    takes = ("batch", "device", "samples", "seed")

    @classmethod
    def check(cls, model: Any, item_shape: tuple[int, ...]) -> None:
        if not model.has_likelihood:
            raise ValueError(
                f"score 'elbo' needs a model with a likelihood (vae, beta-vae); {model.name!r} has none. "
                "Use scores='recon' or 'latent'"
            )

    @torch.no_grad()
    def score(self, model, items: Tensor, fitted: bool = False) -> np.ndarray:
        values = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # the ELBO's samples: the same scores every call
            for chunk in self._chunks(items, "elbo scores"):
                chunk = chunk.to(self.device)
                if self.samples == 1:
                    values.append(-model.log_importance_weights(chunk, samples=1)[0].cpu())
                else:
                    values.append(-model.log_marginal_likelihood(chunk, samples=int(self.samples)).cpu())
        return torch.cat(values).double().numpy()


class LatentScore(AnomalyScore):
    name = "latent"
    description = "distance of the code to the fitted items' codes (k nearest neighbours or Mahalanobis)"
    takes = ("batch", "device", "latent_distance", "neighbors")

    def fit(self, model, items: Tensor) -> "LatentScore":
        self._index(self._codes(model, items))
        return self

    def _index(self, codes: np.ndarray, whitening: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        from sklearn.covariance import LedoitWolf
        from sklearn.neighbors import NearestNeighbors

        distances = parse_latent_distance(self.latent_distance)
        if any(distance in NEIGHBOUR_DISTANCES for distance in distances) and len(codes) <= self.neighbors:
            raise ValueError(
                f"the latent nearest-neighbour score needs more than neighbors={self.neighbors} fitted items; got n_samples={len(codes)}"
            )
        self.codes_ = codes  # the fitted items' codes, which save_pretrained keeps
        if "whitened" in distances and whitening is not None:  # from save_pretrained's file
            self.mean_, self.whitening_ = whitening
        elif "whitened" in distances:
            # whitening along the principal directions of the fitted codes; directions they (almost) never vary
            # along carry no usable scale and are left out, as in RaPP
            self.mean_ = codes.mean(0)
            singular, directions = principal_directions(torch.from_numpy(codes - self.mean_))
            keep = singular > singular[0] * RAPP_RELATIVE_CUTOFF
            self.whitening_ = (directions[:, keep] / (singular[keep] / math.sqrt(len(codes)))).numpy()
        self.indexes_ = {}
        for distance in distances:
            if distance == "mahalanobis":
                self.indexes_[distance] = LedoitWolf().fit(codes)
            else:
                metric = "cosine" if distance == "cosine" else "euclidean"
                self.indexes_[distance] = NearestNeighbors(
                    n_neighbors=int(self.neighbors), metric=metric, algorithm="brute" if metric == "cosine" else "auto",
                ).fit(self._view(distance, codes))
        self.scales_ = {}  # each distance's (mean, std) on the fitted items, by which several are summed
        if len(distances) > 1:
            self.scales_ = {distance: scale_of(self._distance(distance, codes, fitted=True)) for distance in distances}

    @torch.no_grad()
    def _codes(self, model, items: Tensor) -> np.ndarray:
        return model.encode_batches(items, batch_size=self.batch, device=self.device).flatten(1).double().numpy()

    def _view(self, distance: str, codes: np.ndarray) -> np.ndarray:
        """The codes as ``distance`` compares them: whitened for "whitened", as they are otherwise."""
        return (codes - self.mean_) @ self.whitening_ if distance == "whitened" else codes

    def _distance(self, distance: str, codes: np.ndarray, fitted: bool) -> np.ndarray:
        index = self.indexes_[distance]
        if distance == "mahalanobis":
            return np.sqrt(index.mahalanobis(codes))
        # the fitted items are their own nearest codes: leave each one out (kneighbors without X)
        neighbours, _ = index.kneighbors(None if fitted else self._view(distance, codes))
        return neighbours.mean(axis=1)

    def score(self, model, items: Tensor, fitted: bool = False) -> np.ndarray:
        needs_codes = not fitted or "mahalanobis" in self.indexes_  # kNN on the fitted items needs none
        codes = self._codes(model, items) if needs_codes else None
        scores = {distance: self._distance(distance, codes, fitted) for distance in self.indexes_}
        if len(scores) == 1:
            return next(iter(scores.values()))
        return standardized_sum(list(scores.values()), [self.scales_[distance] for distance in scores])

    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        arrays = {"latent_codes": torch.from_numpy(self.codes_)}
        if hasattr(self, "whitening_"):
            arrays.update(latent_mean=torch.from_numpy(np.asarray(self.mean_)), latent_whitening=torch.from_numpy(np.asarray(self.whitening_)))
        return {"latent_scales": {name: list(scale) for name, scale in self.scales_.items()}}, arrays

    def restore(self, model, values: dict[str, Any], arrays: dict[str, Tensor]) -> None:
        whitening = (arrays["latent_mean"].numpy(), arrays["latent_whitening"].numpy()) if "latent_whitening" in arrays else None
        self._index(arrays["latent_codes"].numpy(), whitening)
        self.scales_ = {name: tuple(scale) for name, scale in values["latent_scales"].items()}


class RaPPScore(AnomalyScore):
    name = "rapp"
    description = "hidden-layer differences between the item and its reconstruction, whitened (RaPP's NAP)"
    takes = ("batch", "device", "components", "seed")

    @classmethod
    def check(cls, model: Any, item_shape: tuple[int, ...]) -> None:
        if not model.per_item_layers:
            raise ValueError(
                f"score 'rapp' compares the hidden layers of one encoder, item by item; {model.name}'s are not "
                "(use model='ae', or another score)"
            )

    @torch.no_grad()
    def _pathway_differences(self, model, items: Tensor) -> Tensor:
        """(N, units): every hidden layer's activations and the code, of each item minus of its reconstruction."""
        layers = [module for module in getattr(model, "encoder", torch.nn.Identity()).modules() if isinstance(module, ACTIVATIONS)]
        if not layers:
            raise ValueError(f"score 'rapp' compares the encoder's hidden layers; {model.name}'s encoder has none")
        outputs: list[Tensor] = []
        hooks = [layer.register_forward_hook(lambda module, inputs, output: outputs.append(output.flatten(1).clone())) for layer in layers]
        differences = []
        try:
            for chunk in self._chunks(items, "rapp pathways"):
                chunk = chunk.to(self.device)
                reconstruction = model.reconstruct(chunk)
                outputs.clear()
                code = model.encode(chunk).flatten(1)
                along_input = torch.cat([*outputs, code], dim=1)
                outputs.clear()
                code = model.encode(reconstruction).flatten(1)
                differences.append((along_input - torch.cat([*outputs, code], dim=1)).cpu())
        finally:
            for hook in hooks:
                hook.remove()
        return torch.cat(differences).double()

    def fit(self, model, items: Tensor) -> "RaPPScore":
        differences = self._pathway_differences(model, items)
        self.mean_ = differences.mean(0)
        centred = differences - self.mean_
        if self.components is None:
            singular, directions = principal_directions(centred)
        else:
            torch.manual_seed(self.seed)  # the randomized SVD's sketch
            _, singular, directions = torch.svd_lowrank(centred, q=min(int(self.components), *centred.shape), niter=4)
        # directions the fitted differences (almost) never vary along carry no usable scale
        keep = singular > singular[0] * RAPP_RELATIVE_CUTOFF
        self.directions_, self.scales_ = directions[:, keep], singular[keep] / math.sqrt(len(differences))
        return self

    def score(self, model, items: Tensor, fitted: bool = False) -> np.ndarray:
        centred = self._pathway_differences(model, items) - self.mean_
        return ((centred @ self.directions_) / self.scales_).pow(2).sum(1).numpy()

    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        return {}, {"rapp_mean": self.mean_, "rapp_directions": self.directions_, "rapp_scales": self.scales_}

    def restore(self, model, values: dict[str, Any], arrays: dict[str, Tensor]) -> None:
        self.mean_, self.directions_, self.scales_ = arrays["rapp_mean"], arrays["rapp_directions"], arrays["rapp_scales"]


class RotationScore(AnomalyScore):
    name = "rotation"
    description = "how badly a network trained on the fitted items tells which quarter-turn an image was given"
    takes = ("batch", "device", "max_steps", "epochs", "batch_size", "lr", "seed")

    @classmethod
    def check(cls, model: Any, item_shape: tuple[int, ...]) -> None:
        check_rotatable(tuple(item_shape))

    def fit(self, model, items: Tensor) -> "RotationScore":
        check_rotatable(tuple(model.config.input_shape))
        batch_size = int(self.batch_size or 64)
        self.predictor_ = train_rotation_predictor(
            model.config, items, max_steps=training_steps(self.max_steps, self.epochs, len(items), batch_size),
            batch_size=batch_size, lr=self.lr or 1e-3, seed=self.seed, device=self.device,
        )
        return self

    def score(self, model, items: Tensor, fitted: bool = False) -> np.ndarray:
        return self.predictor_.scores(items, self.batch)

    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        return {}, {f"rotation.{key}": value for key, value in self.predictor_.state_dict().items()}

    def restore(self, model, values: dict[str, Any], arrays: dict[str, Tensor]) -> None:
        predictor = RotationPredictor(model.config)
        predictor.load_state_dict({key[len("rotation."):]: value for key, value in arrays.items() if key.startswith("rotation.")})
        self.predictor_ = predictor.to(self.device).eval()
