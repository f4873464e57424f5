"""``AutoencoderTransformer``: any unsupervised model of the library as a scikit-learn transformer.

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.linear_model import LogisticRegression
    from autoencoders import AutoencoderTransformer

    pipeline = make_pipeline(StandardScaler(), AutoencoderTransformer("vae", latent_dim=8), LogisticRegression())

``fit`` trains the model with the library's own training module (the same players, optimizers and step
counter as ``autoencoders train``) but writes no run folder and prints nothing; ``transform`` gives the codes
(posterior means for VAEs), ``inverse_transform`` decodes codes back to rows, and ``score`` is the negative
reconstruction MSE, so ``GridSearchCV`` can tune the model without a scoring function. Rows are flat feature
vectors; ``input_shape`` (e.g. (1, 28, 28)) lets convolutional networks see them as images.
``save_pretrained``/``from_pretrained`` keep a fitted estimator as ``config.json`` + ``model.safetensors``,
and ``from_pretrained`` also wraps a run folder written by ``autoencoders train``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

ENCODE_BATCH = 4096
# what the estimator's own parameters set in a model's config; every other field goes through ``settings``
_CONFIG_PARAMS = ("latent_dim", "arch", "hidden", "recon_loss")
_DATA_FIELDS = ("input_shape", "value_range")


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """An autoencoder of family ``model`` (``autoencoders models``) as a scikit-learn transformer.

    Parameters
    ----------
    model : family name: "ae", "dae", "vae", "beta-vae", "aae", "acai" ... (models that need labels are refused)
    latent_dim : size of the code, the number of output features of ``transform``
    arch : "mlp" (any rows) or "conv" (rows that are images; give ``input_shape``)
    hidden : layer widths (mlp) or channels (conv); None takes the arch's default
    input_shape : the shape each row is reshaped to, e.g. (1, 28, 28); None keeps rows flat
    recon_loss : "mse" (any values), "l1", or "bce" (values in [0, 1])
    settings : further fields of the family's config, e.g. {"beta": 4} or {"noise_level": 0.2}
    max_steps : training batches; batch_size, lr, weight_decay : as in ``autoencoders train``
    random_state : seed of the weights, the batch order and the noise (None: a fresh one each fit)
    device : "cpu" or "cuda"

    Attributes after ``fit``: ``model_`` (the trained ``Autoencoder``), ``n_features_in_``,
    ``feature_names_in_`` (for named columns), ``value_range_`` (of the training data).
    """

    def __init__(
        self,
        model: str = "ae",
        latent_dim: int = 8,
        arch: str = "mlp",
        hidden: tuple[int, ...] | None = None,
        input_shape: tuple[int, ...] | None = None,
        recon_loss: str = "mse",
        settings: dict[str, Any] | None = None,
        max_steps: int = 1000,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        random_state: int | np.random.RandomState | None = None,
        device: str = "cpu",
    ):
        self.model = model
        self.latent_dim = latent_dim
        self.arch = arch
        self.hidden = hidden
        self.input_shape = input_shape
        self.recon_loss = recon_loss
        self.settings = settings
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.device = device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]  # codes come back in the input's dtype
        return tags

    # -- fitting ------------------------------------------------------------------------------------------
    def _item_shape(self, n_features: int) -> tuple[int, ...]:
        if self.input_shape is None:
            return (n_features,)
        shape = tuple(int(size) for size in self.input_shape)
        if math.prod(shape) != n_features:
            raise ValueError(
                f"input_shape {shape} holds {math.prod(shape)} values but X has {n_features} features per row; "
                "give a shape whose sizes multiply to the number of columns"
            )
        return shape

    def _check_params(self) -> None:
        from autoencoders.models import MODELS

        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        for name in ("latent_dim", "max_steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float, np.number)) or not self.lr > 0:
            raise ValueError(f"lr must be a positive number; got {self.lr!r}")
        if self.device not in ("cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'cpu' or 'cuda'; got {self.device!r}")
        clashes = sorted(set(self.settings or {}) & {*_CONFIG_PARAMS, *_DATA_FIELDS})
        if clashes:
            raise ValueError(
                f"settings may not hold {', '.join(clashes)}: those are the estimator's own parameters or come "
                "from the data"
            )

    def fit(self, X, y=None):
        """Train a fresh model on the rows of ``X`` (``y`` is ignored: the models here learn without labels)."""
        import torch

        from autoencoders.io import build_model
        from autoencoders.training.fit import fit_model

        self._check_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        shape = self._item_shape(X.shape[1])
        low, high = float(X.min()), float(X.max())
        self.value_range_ = (0.0, 1.0) if low >= 0.0 and high <= 1.0 else (low, high if high > low else low + 1.0)
        if self.recon_loss in ("bce", "hamming") and self.value_range_ != (0.0, 1.0):
            raise ValueError(
                f"recon_loss={self.recon_loss!r} needs values in [0, 1]; X spans [{low:.4g}, {high:.4g}]. Scale it "
                "(MinMaxScaler) or use recon_loss='mse'"
            )
        config = {
            "input_shape": shape, "value_range": self.value_range_, "latent_dim": int(self.latent_dim),
            "arch": self.arch, "hidden": tuple(self.hidden or ()), "recon_loss": self.recon_loss, **(self.settings or {}),
        }
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        items = torch.tensor(X, dtype=torch.float32).reshape(len(X), *shape)  # a copy: X may be read-only
        with torch.random.fork_rng(devices=[]):  # the caller's random streams stay as they were
            torch.manual_seed(seed)
            model = build_model(self.model, config)
            if model.uses_labels:
                raise ValueError(
                    f"{self.model!r} with these settings needs class labels in training and encoding, which a "
                    "transformer does not get; use an unsupervised family (ae, dae, vae, beta-vae, aae, acai)"
                )
            self.model_ = fit_model(
                model, items, max_steps=int(self.max_steps), batch_size=int(self.batch_size), lr=float(self.lr),
                weight_decay=float(self.weight_decay), seed=seed, device=str(self.device),
            )
        self._n_features_out = self.model_.code_size
        return self

    # -- using the fitted model -----------------------------------------------------------------------------
    def _apply(self, function, rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """``function`` over batches of ``rows`` reshaped to ``shape``; flat float results in the rows' dtype."""
        import torch

        device = self.device if str(self.device).startswith("cuda") and torch.cuda.is_available() else "cpu"
        model = self.model_.to(device)
        with torch.no_grad():
            parts = [
                function(model, torch.tensor(rows[start : start + ENCODE_BATCH], dtype=torch.float32, device=device)
                         .reshape(-1, *shape)).flatten(1).cpu().numpy()
                for start in range(0, len(rows), ENCODE_BATCH)
            ]
        self.model_ = model.cpu()
        dtype = rows.dtype if rows.dtype in (np.float32, np.float64) else np.float64
        return np.concatenate(parts).astype(dtype, copy=False)

    def transform(self, X) -> np.ndarray:
        """The code of each row (n_samples, code size); the posterior mean for stochastic encoders."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self._apply(lambda model, batch: model.encode(batch), X, tuple(self.model_.config.input_shape))

    def inverse_transform(self, X) -> np.ndarray:
        """Decode codes (n_samples, code size) back to rows (n_samples, n_features_in_)."""
        check_is_fitted(self, "model_")
        codes = check_array(X, dtype=[np.float64, np.float32])
        if codes.shape[1] != self.model_.code_size:
            raise ValueError(f"codes must have {self.model_.code_size} columns (the code size); got {codes.shape[1]}")
        return self._apply(lambda model, batch: model.decode(batch), codes, (self.model_.code_size,))

    def score(self, X, y=None) -> float:
        """Negative mean squared reconstruction error of the rows of ``X`` (higher is better)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        reconstructed = self._apply(lambda model, batch: model.reconstruct(batch), X, tuple(self.model_.config.input_shape))
        return -float(np.mean((reconstructed - X) ** 2))

    # -- saving -----------------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the fitted model (config.json + model.safetensors) with this estimator's parameters."""
        from autoencoders.io import save_model

        check_is_fitted(self, "model_")
        params = {
            name: (list(value) if isinstance(value, tuple) else value)
            for name, value in self.get_params().items() if name != "random_state"
        }
        estimator = {"class": type(self).__name__, "params": params, "n_features_in": int(self.n_features_in_)}
        if hasattr(self, "feature_names_in_"):
            estimator["feature_names_in"] = [str(name) for name in self.feature_names_in_]
        return save_model(self.model_, folder, extra={"estimator": estimator})

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "AutoencoderTransformer":
        """A fitted estimator from ``save_pretrained``'s folder, or wrapping a run of ``autoencoders train``."""
        from autoencoders.io import load, read_config

        config = read_config(folder)
        model = load(folder)
        if model.uses_labels:
            raise ValueError(f"{folder} holds a {model.name!r} model that needs class labels; a transformer cannot use it")
        saved = config.get("estimator")
        model_config = model.config.to_dict()
        if saved is not None:
            estimator = cls(**{name: tuple(value) if isinstance(value, list) else value for name, value in saved["params"].items()})
        else:  # a run folder: the estimator that would have trained this model
            named = {name: model_config[name] for name in _CONFIG_PARAMS}
            defaults = model.config_class().to_dict()
            extra = {
                name: value for name, value in model_config.items()
                if name not in (*_CONFIG_PARAMS, *_DATA_FIELDS) and value != defaults.get(name)
            }
            shape = tuple(model_config["input_shape"])
            estimator = cls(
                model=model.name, **{**named, "hidden": tuple(named["hidden"]) or None},
                input_shape=shape if len(shape) > 1 else None, settings=extra or None,
            )
        estimator.model_ = model.cpu().eval()
        estimator.n_features_in_ = math.prod(model.config.input_shape)
        if saved is not None and "feature_names_in" in saved:
            estimator.feature_names_in_ = np.asarray(saved["feature_names_in"], dtype=object)
        estimator.value_range_ = tuple(model.config.value_range)
        estimator._n_features_out = model.code_size
        return estimator
