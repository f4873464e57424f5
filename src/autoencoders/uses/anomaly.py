"""Anomaly detection with autoencoders, in scikit-learn's outlier-detection style.

``AnomalyDetector`` wraps a model (trained here from a family name, or given trained) and scores how unlike
the data it was fitted on each new item is, by one or more of the scores in ``autoencoders.uses.anomaly_scores``
(``isolation``, the default for tables: isolation forests over the codes and residuals of a feature-bagged
autoencoder; ``recon``, ``elbo``, ``latent``, ``rapp``, ``rotation``).

Scores join with ``+`` (``scores="recon+latent"``): each part is standardized by the mean and standard
deviation of its scores on the fitted items and the standardized parts are summed, so no part dominates by
its units. ``AnomalyEnsemble`` joins whole detectors the same way (each with its own model, network and
score: an MLP's ``rapp`` with a convolutional network's ``latent``, say). As in scikit-learn
(``IsolationForest``, ``LocalOutlierFactor``), ``score_samples`` is higher for more normal items (it is minus
the anomaly score), ``decision_function`` is ``score_samples - offset_`` (negative for outliers) and
``predict`` gives +1 for inliers and -1 for outliers. ``offset_`` comes from
``contamination``, the share of outliers expected in the fitted data (as in scikit-learn and PyOD): the
threshold is that quantile from the top of the fitted items' anomaly scores, so that share of them is flagged;
``"auto"`` (the default, or None) is 0.01. Both detectors are scikit-learn estimators (``__init__`` only stores
the parameters, ``fit`` checks them), so ``clone``, ``GridSearchCV`` (with a scorer on labelled anomalies, e.g.
``scoring="roc_auc"`` and y = +1 normal / -1 anomaly) and ``Pipeline`` take them. A fitted ``AnomalyDetector`` saves
without pickle (``save_pretrained(folder)``: the model's config.json + model.safetensors, the detector's
parameters, threshold and scales in config.json, its fitted arrays in detector.safetensors) and
``AnomalyDetector.from_pretrained(folder)`` gives identical scores. ``AnomalyDetector.explain(X)`` says which
features make an item unusual: per item, each feature's share of its reconstruction error (a table's columns,
an image's pixels), which explains the ``"recon"`` score and only the reconstruction part of the others. The ``detect`` command and its file reading are in
``autoencoders.uses.detect``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import validate_data
from torch import Tensor

from autoencoders.files import atomic_write_bytes, atomic_write_json
from autoencoders.progress import track
from autoencoders.training.fit import train_on_items, training_steps
from autoencoders.uses.anomaly_scores import (
    ELBOScore, LatentScore, RaPPScore, ReconstructionScore, RotationScore, parse_latent_distance, scale_of, standardized_sum,
)
from autoencoders.uses.isolation import IsolationScore

SCORES = {cls.name: cls for cls in (ReconstructionScore, ELBOScore, LatentScore, RaPPScore, RotationScore, IsolationScore)}
DEFAULT_MAX_STEPS = 2000  # the most batches a model trained in fit takes when neither epochs nor max_steps is given


def auroc(anomaly_scores: Any, is_anomaly: Any) -> float:
    """Area under the ROC curve: the chance that a random anomaly scores above a random normal item.

    Computed exactly from ranks (the Mann-Whitney U statistic), ties counting one half.
    """
    from scipy.stats import rankdata

    scores = np.asarray(anomaly_scores, dtype=np.float64).ravel()
    positive = np.asarray(is_anomaly).astype(bool).ravel()
    if scores.shape != positive.shape:
        raise ValueError(f"auroc needs one label per score; got {scores.size} scores and {positive.size} labels")
    n_positive, n_negative = int(positive.sum()), int((~positive).sum())
    if n_positive == 0 or n_negative == 0:
        raise ValueError("auroc needs both anomalies and normal items among the labels")
    if not np.isfinite(scores).all():
        raise ValueError("auroc got NaN or infinite scores")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def parse_score(score: str) -> list[str]:
    """"recon+latent" -> ["recon", "latent"], checked against ``SCORES``."""
    if not isinstance(score, str) or not score.strip():
        raise ValueError(f"score must be one of {', '.join(SCORES)} or several joined by '+'; got {score!r}")
    parts = [part.strip() for part in score.split("+")]
    unknown = [part for part in parts if part not in SCORES]
    if unknown or len(set(parts)) != len(parts):
        raise ValueError(
            f"unknown or repeated score {score!r}; choose from {', '.join(SCORES)} or join several with '+' "
            "(e.g. recon+latent)"
        )
    return parts


def as_items(X: Any) -> Tensor:
    """Items as a float32 tensor (N, ...): numpy arrays, torch tensors, pandas frames or nested lists.

    uint8 arrays are images in 0..255 and become [0, 1].
    """
    if hasattr(X, "to_numpy") and hasattr(X, "columns"):  # a pandas DataFrame
        X = X.to_numpy()
    if isinstance(X, Tensor):
        array = X.detach().cpu()
        items = array.float().div(255) if array.dtype == torch.uint8 else array.float()
    else:
        try:
            array = np.asarray(X)
        except (TypeError, ValueError) as error:
            raise ValueError(f"cannot read the items as an array ({error})") from error
        if array.dtype == np.uint8:
            items = torch.from_numpy(array.astype(np.float32) / 255)
        elif np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_:
            items = torch.from_numpy(array.astype(np.float32))
        else:
            raise ValueError(f"items must be numbers; got an array of {array.dtype} (convert or drop non-numeric columns)")
    if items.dim() < 2 or items.shape[0] == 0:
        raise ValueError(
            f"items must be shaped (n_items, ...) with at least one item, e.g. (N, n_features) rows or (N, C, H, W) "
            f"images; got shape {tuple(items.shape)} (one item? use X[None])"
        )
    if not torch.isfinite(items).all():
        raise ValueError("items contain NaN or infinite values; fill or drop them first")
    return items.contiguous()


DETECTOR_SECTION = "anomaly_detector"  # save_pretrained's section of config.json
DETECTOR_FILE = "detector.safetensors"  # save_pretrained's fitted arrays
DETECTOR_FORMAT = 2  # 2: each score's state under its name
ENSEMBLE_SECTION = "anomaly_ensemble"  # AnomalyEnsemble.save_pretrained's config.json
ENSEMBLE_FILE = "ensemble.safetensors"
AUTO_CONTAMINATION = 0.01  # contamination="auto" (or None): 1% of the fitted items are flagged


def _ndim(X: Any) -> int:
    """The number of dimensions of ``X`` without converting it (2 for what cannot tell: validation says why)."""
    ndim = getattr(X, "ndim", None)
    if ndim is None:
        try:
            ndim = np.ndim(X)
        except (TypeError, ValueError):
            return 2
    return int(ndim)


class _OutlierDetector(OutlierMixin, BaseEstimator):
    """What a fitted detector offers over its ``anomaly_score``, in scikit-learn's outlier-detection style:
    ``score_samples``, ``decision_function``, ``predict``, ``fit_predict`` and the threshold, which ``fit`` takes
    from the fitted items' anomaly scores: the ``1 - contamination`` quantile of them, so that the share
    ``contamination`` of the fitted items is flagged (scikit-learn's and PyOD's meaning: the share of outliers
    expected in the fitted data; ``"auto"`` or None: ``AUTO_CONTAMINATION`` = 0.01)."""

    contamination: float | str | None

    def anomaly_score(self, X: Any) -> np.ndarray:
        raise NotImplementedError

    def _contamination(self) -> float:
        """The share of the fitted items to flag, checked: a number in (0, 0.5], or "auto"/None for 0.01."""
        value = self.contamination
        if value is None or (isinstance(value, str) and value == "auto"):
            return AUTO_CONTAMINATION
        if isinstance(value, (bool, str)) or not isinstance(value, (int, float, np.number)) or not 0.0 < float(value) <= 0.5:
            raise ValueError(
                f"contamination is the share of outliers expected in the fitted data, a number in (0, 0.5] or 'auto' "
                f"(= {AUTO_CONTAMINATION:g}); got {value!r}"
            )
        return float(value)

    def _set_threshold(self, fit_anomaly_scores: np.ndarray) -> None:
        self.fit_anomaly_scores_ = fit_anomaly_scores
        self.offset_ = -float(np.quantile(fit_anomaly_scores, 1.0 - self._contamination()))

    def _check_fitted(self) -> None:
        if not hasattr(self, "offset_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) with normal data first")

    def _items(self, X: Any, reset: bool) -> Tensor:
        """``X`` as items (``as_items``), checked as scikit-learn checks inputs. Rows of a table (2-d arrays,
        frames, lists, sparse matrices, which are refused) go through ``validate_data``, which records or checks
        ``n_features_in_`` (and ``feature_names_in_``); tensors and arrays of more dimensions (images) keep
        their shape, and ``n_features_in_`` is the number of values in one item."""
        if isinstance(X, Tensor) or _ndim(X) > 2:
            items = as_items(X)
            n_features = int(math.prod(items.shape[1:]))
            if reset:
                self.n_features_in_ = n_features
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
            elif n_features != self.n_features_in_:
                raise ValueError(
                    f"X has {n_features} features (items of shape {tuple(items.shape[1:])}), but {type(self).__name__} "
                    f"is expecting {self.n_features_in_} features as input"
                )
            return items
        return as_items(validate_data(self, X, reset=reset))

    def score_samples(self, X: Any) -> np.ndarray:
        """Higher for more normal items (scikit-learn's convention): minus the anomaly score."""
        return -self.anomaly_score(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples - offset_``: negative for outliers, positive for inliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for inliers, -1 for outliers (scikit-learn's convention)."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def fit_predict(self, X: Any, y: Any = None, **kwargs: Any) -> np.ndarray:
        """+1/-1 for the fitted items themselves, from their scores in ``fit`` (the latent kNN score leaves
        each item out of its own neighbours there, which ``predict(X)`` on the same items cannot)."""
        self.fit(X)
        return np.where(-self.fit_anomaly_scores_ - self.offset_ < 0, -1, 1)

    @property
    def threshold_(self) -> float:
        """The anomaly-score threshold: items scoring above it are outliers (``-offset_``)."""
        self._check_fitted()
        return -self.offset_


class AnomalyDetector(_OutlierDetector):
    """Outlier detection by an autoencoder: ``fit`` on normal data, then score, threshold and flag new items.

    With no arguments it is the detector for tables: a ``bagged-ae`` (8 small autoencoders, each on 60 % of the
    columns) trained 10 epochs of batches of 64 but at most 2000 batches, and the ``isolation`` score. Chosen on
    validation splits of the ODDS tables (benchmarks/anomaly_tables_validation.py) among reconstruction-error
    ensembles and isolation forests over codes and residuals; measured by benchmarks/anomaly_tables.py.

    ``model`` is a family name (``"bagged-ae"``, ``"ae"``, ``"vae"``, ... : trained in ``fit`` with ``latent_dim``, ``arch``,
    ``hidden``, ``epochs``/``max_steps`` ... and further ``settings``), a trained ``Autoencoder``, or the path
    of a run / saved-model folder. Tables (2-d items: rows of features) are standardized with the fitted
    data's column means and standard deviations when the model is trained here, or with the scaling a run
    recorded when it is given as a folder; a given ``Autoencoder`` takes items as it was trained on them.

    ``score_samples`` is higher for more normal items (scikit-learn's convention); ``anomaly_score`` is its
    negative. ``offset_`` is the threshold on ``score_samples``. ``out`` saves a model trained here as a
    folder that ``autoencoders.load`` and ``autoencoders detect`` take.

    Attributes after ``fit``: ``model_``, ``offset_`` (and ``threshold_ = -offset_``, on the anomaly score),
    ``fit_anomaly_scores_`` (of the fitted items), ``scorers_`` (each part's fitted score,
    ``autoencoders.uses.anomaly_scores``), ``score_scales_`` (mean and std of each part's scores),
    ``standardization_`` (a table's column means and stds, or None), ``n_features_in_`` (the number of
    values in one item), ``feature_names_in_`` (for a frame with named columns).

    It is a scikit-learn outlier estimator: ``__init__`` only stores the parameters below, ``fit`` checks
    them, so ``clone``, ``GridSearchCV`` and ``Pipeline`` take it. ``contamination`` is the share of outliers
    expected in the fitted data, in (0, 0.5]: the threshold flags that share of the fitted items ("auto" or
    None: 0.01). ``seed`` fixes the weights, the batch order and the sampled scores: the same data and
    parameters give the same scores.
    """

    def __init__(
        self,
        model: Any = "bagged-ae",
        scores: str = "isolation",
        contamination: float | str | None = "auto",
        *,
        latent_distance: str = "knn",
        neighbors: int = 5,
        samples: int = 1,
        pool: int = 1,
        components: int | None = None,
        latent_dim: int | None = None,
        arch: str | None = None,
        hidden: Sequence[int] | None = None,
        epochs: int | None = None,
        max_steps: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        settings: dict[str, Any] | None = None,
        out: str | Path | None = None,
        seed: int = 0,
        batch: int = 1024,
        device: str = "cpu",
    ):
        self.model = model
        self.scores = scores
        self.contamination = contamination
        self.latent_distance = latent_distance
        self.neighbors = neighbors
        self.samples = samples
        self.pool = pool
        self.components = components
        self.latent_dim = latent_dim
        self.arch = arch
        self.hidden = hidden
        self.epochs = epochs
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.settings = settings
        self.out = out
        self.seed = seed
        self.batch = batch
        self.device = device

    # -- fitting ----------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> "AnomalyDetector":
        """Train (or take) the model, remember the fitted items' codes and scores, set the threshold.

        ``y`` is ignored (outlier detection is unsupervised); it is accepted for scikit-learn pipelines.
        """
        from autoencoders.models import MODELS

        parts = self._check_parameters()
        items = self._items(X, reset=True)
        if isinstance(self.model, str) and self.model in MODELS:  # before training, not after
            for part in parts:
                SCORES[part].check(MODELS[self.model], tuple(items.shape[1:]))
        self.model_, self.standardization_ = self._fitted_model(items)
        items = self._model_input(items)
        params = self.get_params()
        self.scorers_, raw = {}, {}
        for part in parts:
            SCORES[part].check(self.model_, tuple(items.shape[1:]))
            self.scorers_[part] = SCORES[part](**{name: params[name] for name in SCORES[part].takes})
            raw[part] = self.scorers_[part].fit_score(self.model_, items)
        self.score_scales_ = {part: scale_of(values) for part, values in raw.items()}
        self._set_threshold(self._combine(raw))
        return self

    def _check_parameters(self) -> list[str]:
        parts = parse_score(self.scores)
        self._contamination()
        parse_latent_distance(self.latent_distance)
        if min(int(self.neighbors), int(self.samples), int(self.pool), int(self.components or 1)) < 1:
            raise ValueError(
                f"neighbors, samples, pool and components must be at least 1; got {self.neighbors}, {self.samples}, "
                f"{self.pool} and {self.components}"
            )
        return parts

    def _fitted_model(self, items: Tensor):
        from autoencoders.io import load, read_config
        from autoencoders.models import MODELS
        from autoencoders.models.base import Autoencoder

        model, standardization = self.model, None
        if isinstance(model, str) and model in MODELS:
            standardization = _standardization(items) if items.dim() == 2 else None
            model = train_on_items(
                model, items if standardization is None else _standardize(items, standardization),
                {"latent_dim": self.latent_dim, "arch": self.arch, "hidden": tuple(self.hidden) if self.hidden else None,
                 **(self.settings or {})},
                epochs=self.epochs, max_steps=self._training_steps(len(items)), batch_size=self.batch_size or 64, lr=self.lr or 1e-3,
                seed=self.seed, device=self.device,
            )
            if self.out is not None:
                _save_detector_model(model, self.out, standardization)
        elif isinstance(model, (str, Path)):
            path = Path(model)
            if not path.exists():
                raise ValueError(
                    f"model {str(model)!r} is neither a model family ({', '.join(MODELS)}) nor an existing run folder"
                )
            preprocessing = (read_config(path).get("data") or {}).get("preprocessing") or {}
            model = load(path)
            if preprocessing.get("kind") == "standardize" and items.dim() == 2:
                standardization = {"mean": preprocessing["mean"], "std": preprocessing["std"]}
        elif not isinstance(model, Autoencoder):
            raise ValueError(
                f"model must be a family name ({', '.join(MODELS)}), a trained Autoencoder or a run folder; "
                f"got {type(model).__name__}"
            )
        if model.conditional:
            raise ValueError(
                f"{model.name} is conditioned on labels, which new items to score do not have; "
                "use an unconditional model (ae, dae, vae, beta-vae, aae ...)"
            )
        return model.to(self.device).eval(), standardization

    def _training_steps(self, items: int) -> int:
        """``max_steps``, else ``epochs`` passes; with neither, 10 passes but at most ``DEFAULT_MAX_STEPS`` batches:
        on the ODDS tables a few passes rank outliers as well as ten, and a large table stays quick to fit."""
        steps = training_steps(self.max_steps, self.epochs, items, int(self.batch_size or 64))
        return steps if self.max_steps is not None or self.epochs is not None else min(steps, DEFAULT_MAX_STEPS)

    def _model_input(self, items: Tensor) -> Tensor:
        """Items standardized as the model was trained and shaped as it takes them."""
        shape = tuple(self.model_.config.input_shape)
        if self.standardization_ is not None:
            if items.dim() != 2 or items.shape[1] != len(self.standardization_["mean"]):
                raise ValueError(
                    f"the model takes rows of {len(self.standardization_['mean'])} features; got items of shape "
                    f"{tuple(items.shape[1:])}"
                )
            items = _standardize(items, self.standardization_)
        if tuple(items.shape[1:]) != shape:
            if math.prod(items.shape[1:]) != math.prod(shape):
                raise ValueError(
                    f"the model takes items of shape {shape} ({math.prod(shape)} numbers); got items of shape "
                    f"{tuple(items.shape[1:])}"
                )
            items = items.reshape(len(items), *shape)  # e.g. (N, 28, 28) or flat (N, 784) rows of 1x28x28 images
        return items

    # -- scores -----------------------------------------------------------------------------------------
    def _combine(self, raw: dict[str, np.ndarray]) -> np.ndarray:
        if len(raw) == 1:
            return next(iter(raw.values()))
        return standardized_sum(list(raw.values()), [self.score_scales_[part] for part in raw])

    def part_scores(self, X: Any) -> dict[str, np.ndarray]:
        """Each part of the score on its own, in its own units: {"recon": ..., "latent": ...}."""
        self._check_fitted()
        items = self._model_input(self._items(X, reset=False))
        return {part: scorer.score(self.model_, items) for part, scorer in self.scorers_.items()}

    def combine(self, part_scores: dict[str, np.ndarray]) -> np.ndarray:
        """The anomaly score from ``part_scores``: the one part, or the sum of the standardized parts."""
        self._check_fitted()
        return self._combine(part_scores)

    def anomaly_score(self, X: Any) -> np.ndarray:
        """Higher for more anomalous items (minus ``score_samples``)."""
        return self._combine(self.part_scores(X))

    @torch.no_grad()
    def explain(self, X: Any) -> Any:
        """Per item, the share of its reconstruction error each feature contributes: the squared difference
        between the item and its reconstruction, value by value, divided by its sum over the item, so each
        item's shares sum to 1 (an item reconstructed exactly gets equal shares).

        Tables give one share per column, (n_items, n_features), in the model's space: a table the detector
        scales is compared after that scaling, so a column's error counts in its standard deviations on the
        fitted data, not in its units; a DataFrame with the columns named by ``feature_names_in_`` when the
        detector was fitted on one. Images give one map per item, shaped as the model takes them ((n_items,
        C, H, W)): the share of each pixel and channel (before any ``pool``: the map stays at full resolution).

        It explains the reconstruction error, that is the ``"recon"`` score itself. For the other scores
        (``latent``, ``rapp``, ``elbo``, ``rotation``), which are not sums over the features, it explains the
        reconstruction part only: where the model fails to rebuild the item, which is most often where the item
        is unusual, but not how far its code lies from the fitted codes nor what RaPP's hidden layers see.
        """
        self._check_fitted()
        items = self._model_input(self._items(X, reset=False))
        shares = []
        chunks = items.split(self.batch)
        for chunk in track(chunks, len(chunks), f"explaining {len(items)} items"):
            chunk = chunk.to(self.device)
            error = (self.model_.reconstruct(chunk) - chunk).double().pow(2).cpu()
            flat = error.flatten(1)
            total = flat.sum(1, keepdim=True)
            flat = torch.where(total > 0, flat / total.clamp(min=torch.finfo(torch.float64).tiny),
                               torch.full_like(flat, 1.0 / flat.shape[1]))
            shares.append(flat.reshape(error.shape))
        result = torch.cat(shares).numpy()
        if result.ndim == 2 and hasattr(self, "feature_names_in_") and len(self.feature_names_in_) == result.shape[1]:
            import pandas as pd

            index = X.index if hasattr(X, "columns") and len(X.index) == len(result) else None  # a frame's (a tensor's .index is a method)
            return pd.DataFrame(result, columns=list(self.feature_names_in_), index=index)
        return result

    # -- saving -------------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the fitted detector, without pickle: the model as ``autoencoders.load`` reads it (config.json +
        model.safetensors), this detector's parameters, threshold, score scales and a table's scaling in
        config.json's ``"anomaly_detector"`` section, and its fitted arrays (the fitted items' scores, the codes
        and whitening of the latent score, RaPP's directions, the rotation predictor's weights) in
        ``detector.safetensors``. ``from_pretrained`` gives back a detector with identical scores."""
        from safetensors.torch import save

        from autoencoders.io import save_model
        from autoencoders.models import MODELS

        self._check_fitted()
        folder = Path(folder)
        params = {name: value for name, value in self.get_params().items() if name != "out"}
        params["model"] = self.model if isinstance(self.model, str) and self.model in MODELS else None  # else: the folder
        params["hidden"] = list(self.hidden) if self.hidden is not None else None
        section = {
            "class": type(self).__name__, "format": DETECTOR_FORMAT, "params": params,
            "offset": float(self.offset_), "contamination": self._contamination(),
            "threshold": float(self.threshold_),
            "threshold_from": f"the {1 - self._contamination():g} quantile of the {len(self.fit_anomaly_scores_)} "
                              "fitted items' anomaly scores",
            "score_scales": {part: list(scale) for part, scale in self.score_scales_.items()},
            "standardization": self.standardization_, "n_features_in": int(self.n_features_in_),
        }
        if hasattr(self, "feature_names_in_"):
            section["feature_names_in"] = [str(name) for name in self.feature_names_in_]
        arrays = {"fit_anomaly_scores": torch.from_numpy(np.asarray(self.fit_anomaly_scores_, dtype=np.float64))}
        section["scores_state"] = {}
        for part, scorer in self.scorers_.items():
            section["scores_state"][part], part_arrays = scorer.state()
            arrays.update(part_arrays)
        save_model(self.model_, folder, extra={DETECTOR_SECTION: section})
        arrays = {key: value.detach().cpu().contiguous() for key, value in arrays.items()}
        atomic_write_bytes(folder / DETECTOR_FILE, save(arrays, metadata={"class": type(self).__name__}))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | None = None) -> "AnomalyDetector":
        """The fitted detector ``save_pretrained`` wrote to ``folder`` (``device``: where to score; default, the
        saved one). Its ``model`` parameter is the family name it trained, or ``folder`` for a given model."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from autoencoders.io import ModelFileError, load, read_config

        folder = Path(folder)
        section = read_config(folder).get(DETECTOR_SECTION)
        if not isinstance(section, dict) or section.get("class") != cls.__name__:
            raise ModelFileError(
                f"{folder} holds no fitted {cls.__name__} (config.json has no {DETECTOR_SECTION!r} section); "
                f"write one with {cls.__name__}.save_pretrained, or pass the folder as AnomalyDetector(model=...) to fit one"
            )
        if section.get("format") != DETECTOR_FORMAT:
            raise ModelFileError(f"{folder}: detector format {section.get('format')!r} is not {DETECTOR_FORMAT}; save it again")
        params = dict(section["params"])
        params["model"] = params["model"] if params.get("model") is not None else str(folder)
        params["hidden"] = tuple(params["hidden"]) if params.get("hidden") is not None else None
        if device is not None:
            params["device"] = device
        detector = cls(**params)
        parts = detector._check_parameters()
        try:
            arrays = load_file(folder / DETECTOR_FILE)
        except (SafetensorError, OSError) as error:
            raise ModelFileError(f"{folder / DETECTOR_FILE} is missing, damaged or truncated ({error}); save the detector again") from error
        if "fit_anomaly_scores" not in arrays:
            raise ModelFileError(f"{folder / DETECTOR_FILE} lacks fit_anomaly_scores; save the detector again")
        detector.model_ = load(folder, device=detector.device)
        detector.standardization_ = section["standardization"]
        detector.n_features_in_ = int(section["n_features_in"])
        if "feature_names_in" in section:
            detector.feature_names_in_ = np.asarray(section["feature_names_in"], dtype=object)
        params, detector.scorers_ = detector.get_params(), {}
        for part in parts:
            scorer = SCORES[part](**{name: params[name] for name in SCORES[part].takes})
            try:
                scorer.restore(detector.model_, section["scores_state"][part], arrays)
            except (KeyError, ValueError, RuntimeError) as error:
                raise ModelFileError(f"{folder}: the saved state of score {part!r} is missing or damaged ({error}); save the detector again") from error
            detector.scorers_[part] = scorer
        detector.score_scales_ = {part: tuple(scale) for part, scale in section["score_scales"].items()}
        detector.fit_anomaly_scores_ = arrays["fit_anomaly_scores"].numpy()
        detector.offset_ = float(section["offset"])
        return detector


class AnomalyEnsemble(_OutlierDetector):
    """Several detectors as one: each member's anomaly score, standardized by the mean and standard deviation of
    its scores on the fitted items (so no member dominates by its units), summed.

    Members may differ in model family, network and score: ``AnomalyDetector("ae", scores="rapp", arch="mlp")``
    with ``AnomalyDetector("ae", scores="latent", arch="conv")`` is the one-class benchmark's best on MNIST. Each
    trains (or takes its given model) in ``fit``, as a copy, so the detectors passed in stay unfitted.

    Attributes after ``fit``: ``detectors_`` (the fitted copies), ``score_scales_`` (mean and std of each
    member's fitted scores), ``offset_``, ``threshold_``, ``fit_anomaly_scores_``, ``n_features_in_``.
    """

    def __init__(self, detectors: Sequence[AnomalyDetector] = (), contamination: float | str | None = "auto"):
        self.detectors = detectors
        self.contamination = contamination

    def fit(self, X: Any, y: Any = None) -> "AnomalyEnsemble":
        """Fit every member on ``X`` (normal data); ``y`` is ignored, as in ``AnomalyDetector.fit``."""
        self._contamination()
        members = list(self.detectors) if isinstance(self.detectors, (list, tuple)) else None
        if not members or not all(isinstance(member, AnomalyDetector) for member in members):
            raise ValueError(f"detectors takes a list of one or more AnomalyDetector; got {self.detectors!r}")
        self.detectors_ = [clone(member).fit(X) for member in members]
        self.score_scales_ = [scale_of(member.fit_anomaly_scores_) for member in self.detectors_]
        self._set_threshold(self._combine([member.fit_anomaly_scores_ for member in self.detectors_]))
        self.n_features_in_ = self.detectors_[0].n_features_in_
        return self

    def _combine(self, member_scores: Sequence[np.ndarray]) -> np.ndarray:
        return standardized_sum(member_scores, self.score_scales_)

    def member_scores(self, X: Any) -> list[np.ndarray]:
        """Each member's anomaly score of ``X``, in its own units, in the order of ``detectors``."""
        self._check_fitted()
        return [member.anomaly_score(X) for member in self.detectors_]

    def combine(self, member_scores: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble's anomaly score from ``member_scores``: the sum of the standardized members."""
        self._check_fitted()
        if len(member_scores) != len(self.detectors_):
            raise ValueError(f"combine takes one score array per member ({len(self.detectors_)}); got {len(member_scores)}")
        return self._combine(member_scores)

    def anomaly_score(self, X: Any) -> np.ndarray:
        """Higher for more anomalous items (minus ``score_samples``)."""
        return self._combine(self.member_scores(X))

    def explain(self, X: Any) -> Any:
        """Per item, each feature's share of the reconstruction error, averaged over the members
        (``AnomalyDetector.explain`` of each): rows still sum to 1. Like each member's, it explains the
        reconstruction error, not the other parts of the members' scores."""
        self._check_fitted()
        shares = [member.explain(X) for member in self.detectors_]
        return sum(shares[1:], shares[0]) / len(shares)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the fitted ensemble without pickle: each member as ``AnomalyDetector.save_pretrained`` writes it
        in ``member-0``, ``member-1`` ..., and the ensemble's contamination, threshold and member scales in
        config.json, its fitted items' scores in ensemble.safetensors."""
        from safetensors.torch import save

        self._check_fitted()
        folder = Path(folder)
        members = [member.save_pretrained(folder / f"member-{index}").name for index, member in enumerate(self.detectors_)]
        atomic_write_bytes(folder / ENSEMBLE_FILE, save({"fit_anomaly_scores": torch.from_numpy(
            np.ascontiguousarray(self.fit_anomaly_scores_, dtype=np.float64))}))
        atomic_write_json(folder / "config.json", {ENSEMBLE_SECTION: {
            "class": type(self).__name__, "format": DETECTOR_FORMAT, "members": members,
            "contamination": self.contamination, "offset": float(self.offset_), "threshold": float(self.threshold_),
            "threshold_from": f"the {1 - self._contamination():g} quantile of the {len(self.fit_anomaly_scores_)} "
                              "fitted items' anomaly scores",
            "score_scales": [list(scale) for scale in self.score_scales_], "n_features_in": int(self.n_features_in_),
        }})
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | None = None) -> "AnomalyEnsemble":
        """The fitted ensemble ``save_pretrained`` wrote to ``folder``: identical scores."""
        import json

        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from autoencoders.io import ModelFileError

        folder = Path(folder)
        try:
            section = json.loads((folder / "config.json").read_text()).get(ENSEMBLE_SECTION)
            scores = load_file(folder / ENSEMBLE_FILE)["fit_anomaly_scores"].numpy()
        except (OSError, ValueError, KeyError, AttributeError, SafetensorError) as error:
            raise ModelFileError(f"{folder} holds no saved {cls.__name__} ({error}); write one with save_pretrained") from error
        if not isinstance(section, dict) or section.get("class") != cls.__name__ or section.get("format") != DETECTOR_FORMAT:
            raise ModelFileError(f"{folder} holds no saved {cls.__name__} of format {DETECTOR_FORMAT}; save it again")
        members = [AnomalyDetector.from_pretrained(folder / Path(name).name, device=device) for name in section["members"]]
        ensemble = cls([clone(member) for member in members], contamination=section["contamination"])
        ensemble.detectors_ = members
        ensemble.score_scales_ = [tuple(scale) for scale in section["score_scales"]]
        ensemble.fit_anomaly_scores_ = scores
        ensemble.offset_ = float(section["offset"])
        ensemble.n_features_in_ = int(section["n_features_in"])
        return ensemble


def _save_detector_model(model, out: str | Path, standardization: dict[str, list[float]] | None) -> None:
    """The trained model as a saved-model folder; a table's scaling is recorded as a run records it."""
    from autoencoders.io import save_model

    preprocessing = {"kind": "standardize", **standardization} if standardization else {}
    save_model(model, out, extra={"data": {"name": "items given to AnomalyDetector.fit", "preprocessing": preprocessing}})


def _standardization(items: Tensor) -> dict[str, list[float]]:
    mean, std = items.double().mean(0), items.double().std(0, unbiased=False)
    std[std == 0] = 1.0  # a constant column stays constant instead of dividing by zero
    return {"mean": mean.tolist(), "std": std.tolist()}


def _standardize(items: Tensor, standardization: dict[str, list[float]]) -> Tensor:
    mean = torch.tensor(standardization["mean"], dtype=items.dtype)
    std = torch.tensor(standardization["std"], dtype=items.dtype)
    return (items - mean) / std
