"""The ``"isolation"`` anomaly score: isolation forests over what an autoencoder sees of an item.

An isolation forest (Liu, Ting & Zhou 2008) cuts the data at random features and random values; an item that
few cuts separate from the rest is unusual. Here the forest does not cut the raw columns but the autoencoder's
view of each item (``Autoencoder.anomaly_views``): its code beside its residual. Codes place an item on the
manifold the autoencoder learned, residuals say how far off it the item lies and in which features, and an
isolation forest needs no assumption on how either is distributed. A bagged autoencoder gives one view per
member (its code and its residual on its own features); each view gets its own forest of ``trees / views``
trees, each forest's score is standardized by its mean and standard deviation on the fitted items, and the
item's score is their mean.

The forests are grown by scikit-learn's ``IsolationForest``; their trees are kept as plain arrays (split
feature, threshold, children, items per node), which score new items here and save without pickle.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from autoencoders.progress import track
from autoencoders.uses.anomaly_scores import AnomalyScore

TREE_ARRAYS = ("feature", "threshold", "left", "right", "node_items", "roots", "sample_size")
TREES, MAX_SAMPLES = 100, 256  # trees in all (split among the views), items each tree is grown on
SCORE_CHUNK = 8192  # items traversed at once: (chunk x trees) node indices in memory


def average_path_length(items: np.ndarray) -> np.ndarray:
    """c(n): the mean path length of an unsuccessful search in a binary search tree of n items (Liu et al.)."""
    items = np.asarray(items, dtype=np.float64)
    result = np.zeros_like(items)
    result[items == 2] = 1.0
    larger = items > 2
    n = items[larger]
    result[larger] = 2.0 * (np.log(n - 1.0) + np.euler_gamma) - 2.0 * (n - 1.0) / n
    return result


class IsolationForestArrays:
    """The trees of one fitted isolation forest, all nodes in flat arrays; ``score`` is scikit-learn's anomaly
    score 2^(-E[h(x)] / c(sample_size)), in (0, 1], higher for items isolated by fewer cuts."""

    def __init__(self, feature, threshold, left, right, node_items, roots, sample_size):
        self.feature, self.threshold = np.asarray(feature, np.int64), np.asarray(threshold, np.float64)
        self.left, self.right = np.asarray(left, np.int64), np.asarray(right, np.int64)
        self.node_items, self.roots = np.asarray(node_items, np.float64), np.asarray(roots, np.int64)
        self.sample_size = int(np.asarray(sample_size).reshape(-1)[0])
        nodes, index = len(self.feature), np.arange(len(self.feature))
        internal = self.left >= 0
        # arrays read from a file: every child lies after its parent, so a traversal always ends
        if not (
            all(len(array) == nodes for array in (self.threshold, self.left, self.right, self.node_items))
            and ((self.left > index) & (self.left < nodes) | ~internal).all()
            and ((self.right > index) & (self.right < nodes) | ~internal).all()
            and ((self.right < 0) == ~internal).all() and (self.feature[internal] >= 0).all()
            and len(self.roots) > 0 and ((self.roots >= 0) & (self.roots < nodes)).all() and self.sample_size >= 1
        ):
            raise ValueError("the isolation forest's tree arrays are inconsistent (children must follow their parents)")
        # a leaf's depth correction: the mean path length of the items it still holds
        self.leaf_extra = average_path_length(self.node_items)

    @classmethod
    def fit(cls, view: np.ndarray, trees: int, max_samples: int, seed: int) -> "IsolationForestArrays":
        from sklearn.ensemble import IsolationForest

        forest = IsolationForest(n_estimators=trees, max_samples=min(max_samples, len(view)), random_state=seed).fit(view)
        parts, offset = {name: [] for name in ("feature", "threshold", "left", "right", "node_items", "roots")}, 0
        for estimator, features in zip(forest.estimators_, forest.estimators_features_):
            tree = estimator.tree_
            internal = tree.children_left >= 0
            parts["feature"].append(np.where(internal, np.asarray(features)[np.maximum(tree.feature, 0)], -1))
            parts["threshold"].append(tree.threshold)
            parts["left"].append(np.where(internal, tree.children_left + offset, -1))
            parts["right"].append(np.where(internal, tree.children_right + offset, -1))
            parts["node_items"].append(tree.n_node_samples)
            parts["roots"].append([offset])
            offset += tree.node_count
        return cls(**{name: np.concatenate(values) for name, values in parts.items()}, sample_size=forest.max_samples_)

    def score(self, view: np.ndarray) -> np.ndarray:
        view = np.asarray(view, dtype=np.float32)
        if self.feature.max() >= view.shape[1]:
            raise ValueError(f"the isolation forest splits {self.feature.max() + 1} numbers per item; got {view.shape[1]}")  # scikit-learn's trees compare float32 values with the thresholds
        scores = np.empty(len(view))
        for start in range(0, len(view), SCORE_CHUNK):
            chunk = view[start : start + SCORE_CHUNK]
            node = np.broadcast_to(self.roots, (len(chunk), len(self.roots))).copy()  # (items, trees)
            depth = np.zeros(node.shape)
            rows = np.arange(len(chunk))[:, None]
            while True:
                internal = self.left[node] >= 0
                if not internal.any():
                    break
                goes_left = chunk[rows, np.maximum(self.feature[node], 0)] <= self.threshold[node]
                node = np.where(internal, np.where(goes_left, self.left[node], self.right[node]), node)
                depth += internal
            path = (depth + self.leaf_extra[node]).mean(axis=1)
            scores[start : start + len(chunk)] = 2.0 ** (-path / average_path_length(np.array([self.sample_size]))[0])
        return scores

    def arrays(self) -> dict[str, np.ndarray]:
        return {"feature": self.feature, "threshold": self.threshold, "left": self.left, "right": self.right,
                "node_items": self.node_items, "roots": self.roots, "sample_size": np.array([self.sample_size])}


class IsolationScore(AnomalyScore):
    """``fit`` grows one forest per view of the fitted items ((views, N, numbers), ``Autoencoder.anomaly_views``);
    ``score`` gives each item the mean over views of its forest's score, standardized on the fitted items."""

    name = "isolation"
    description = "isolation forests over the code beside the residual (one per member of a bagged-ae)"
    takes = ("batch", "device", "seed")

    @torch.no_grad()
    def views(self, model, items: Tensor) -> np.ndarray:
        """(views, N, numbers): the model's ``anomaly_views`` of the items, batch by batch."""
        return torch.cat([model.anomaly_views(chunk.to(self.device)).cpu() for chunk in self._chunks(items, "views")], dim=1).numpy()

    def fit(self, model, items: Tensor) -> "IsolationScore":
        self.fit_score(model, items)
        return self

    def fit_score(self, model, items: Tensor) -> np.ndarray:
        """Grow the forests and standardize them on the fitted items, whose scores this gives (computed once)."""
        views = self.views(model, items)
        per_view = max(10, TREES // len(views))
        self.forests_ = [IsolationForestArrays.fit(view, per_view, MAX_SAMPLES, self.seed + index)
                         for index, view in enumerate(track(views, len(views), "isolation forests"))]
        fitted = np.stack([forest.score(view) for forest, view in zip(self.forests_, views)])
        self.means_, self.stds_ = fitted.mean(axis=1), np.maximum(fitted.std(axis=1), 1e-12)
        return self._standardized_mean(fitted)

    def score(self, model, items: Tensor, fitted: bool = False) -> np.ndarray:
        views = self.views(model, items)
        if len(views) != len(self.forests_):
            raise ValueError(f"the isolation score was fitted on {len(self.forests_)} views of each item; got {len(views)}")
        return self._standardized_mean(np.stack([forest.score(view) for forest, view in zip(self.forests_, views)]))

    def _standardized_mean(self, scores: np.ndarray) -> np.ndarray:
        """(views, N) forest scores -> each view standardized on the fitted items, averaged over views."""
        return ((scores - self.means_[:, None]) / self.stds_[:, None]).mean(axis=0)

    def state(self) -> tuple[dict, dict[str, Tensor]]:
        arrays = {"means": self.means_, "stds": self.stds_}
        for index, forest in enumerate(self.forests_):
            arrays.update({f"{index}.{name}": value for name, value in forest.arrays().items()})
        return {}, {f"isolation.{name}": torch.from_numpy(np.ascontiguousarray(value)) for name, value in arrays.items()}

    def restore(self, model, values: dict, arrays: dict[str, Tensor]) -> None:
        arrays = {name[len("isolation."):]: value.numpy() for name, value in arrays.items() if name.startswith("isolation.")}
        self.means_, self.stds_ = arrays["means"], arrays["stds"]
        views = len(self.means_)
        missing = [f"{index}.{name}" for index in range(views) for name in TREE_ARRAYS if f"{index}.{name}" not in arrays]
        if missing or len(self.stds_) != views:
            raise ValueError(f"the isolation score's arrays are incomplete (missing {', '.join(missing[:4]) or 'stds'})")
        self.forests_ = [IsolationForestArrays(**{name: arrays[f"{index}.{name}"] for name in TREE_ARRAYS}) for index in range(views)]
