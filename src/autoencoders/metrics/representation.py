"""How useful the codes are, mostly measured with the dataset's class labels (as in the ACAI paper, section 4).

- probe: a single linear layer (multinomial logistic regression) trained on the frozen, standardized codes
  of the training split; accuracy on the evaluated split.
- kmeans: k-means with k = number of classes on the whitened training codes; accuracy on the evaluated
  split after matching clusters to classes one-to-one (Hungarian algorithm).
- classification_error: the error of a model's own label head (aae-semi).
- cluster_error: each cluster of a model's cluster head (aae-cluster) is given the majority label of its
  training members; the error of those labels on the evaluated split (the AAE paper's protocol).
- cluster_stability needs no labels: the share of items whose cluster (or class) stays the same when the item
  is moved a little (the model's consistency moves). Clustering runs from different seeds differ a lot; the
  most stable of them is the one to keep when no labels tell them apart (benchmarks/aae_mnist.py).
"""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def codes(model, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1024) -> np.ndarray:
    """The flattened codes ``model.encode`` gives for ``x``, as float64 numpy."""
    model = model.eval()
    return model.encode_batches(x, y if model.conditional else None, batch_size).flatten(1).double().numpy()


def _labels(dataset, split: str, metric: str) -> np.ndarray:
    labels = dataset.labels(split)
    if labels is None or dataset.num_classes < 2:
        raise ValueError(f"metric {metric} needs class labels; dataset {dataset.name!r} has none")
    return labels.long().numpy()


def _train_and_split_codes(model, dataset, split: str, metric: str):
    train_labels, split_labels = _labels(dataset, "train", metric), _labels(dataset, split, metric)
    train_codes = codes(model, dataset.split("train"), torch.as_tensor(train_labels))
    split_codes = codes(model, dataset.split(split), torch.as_tensor(split_labels))
    return train_codes, train_labels, split_codes, split_labels


def linear_probe_accuracy(model, dataset, split: str = "test", seed: int = 0) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_codes, train_labels, split_codes, split_labels = _train_and_split_codes(model, dataset, split, "probe")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(train_codes, train_labels)
    return float((probe.predict(split_codes) == split_labels).mean())


def matched_accuracy(assigned: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of cluster ids ``assigned`` after the one-to-one cluster-to-class matching that maximizes it."""
    from scipy.optimize import linear_sum_assignment

    clusters, classes = int(assigned.max()) + 1, int(labels.max()) + 1
    counts = np.zeros((clusters, classes), dtype=np.int64)
    np.add.at(counts, (assigned, labels), 1)
    rows, columns = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, columns].sum() / len(labels))


def kmeans_accuracy(model, dataset, split: str = "test", seed: int = 0, restarts: int = 10) -> float:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    train_codes, train_labels, split_codes, split_labels = _train_and_split_codes(model, dataset, split, "kmeans")
    whiten = PCA(whiten=True, random_state=seed).fit(train_codes)
    kmeans = KMeans(n_clusters=dataset.num_classes, n_init=restarts, random_state=seed).fit(whiten.transform(train_codes))
    return matched_accuracy(kmeans.predict(whiten.transform(split_codes)), split_labels)


@torch.no_grad()
def _predictions(model, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    if not model.classifies:
        raise ValueError(f"{model.name} has no label or cluster head; these metrics are for aae-semi and aae-cluster")
    device = next(model.parameters()).device
    model = model.eval()
    return torch.cat([model.predict(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]).numpy()


def classification_error(model, dataset, split: str = "test", seed: int = 0) -> float:
    labels = _labels(dataset, split, "classification_error")
    return float((_predictions(model, dataset.split(split)) != labels).mean())


def cluster_error(model, dataset, split: str = "test", seed: int = 0) -> float:
    train_labels, labels = _labels(dataset, "train", "cluster_error"), _labels(dataset, split, "cluster_error")
    train_clusters = _predictions(model, dataset.split("train"))
    clusters = int(max(train_clusters.max(), model.categories - 1)) + 1
    counts = np.zeros((clusters, int(train_labels.max()) + 1), dtype=np.int64)
    np.add.at(counts, (train_clusters, train_labels), 1)
    majority = counts.argmax(axis=1)  # an empty cluster gets class 0; no training item went there anyway
    return float((majority[_predictions(model, dataset.split(split))] != labels).mean())


@torch.no_grad()
def cluster_stability(model, dataset, split: str = "test", seed: int = 0, draws: int = 5, batch_size: int = 1024) -> float:
    """Share of the split's items that keep their cluster (or class) when moved, the mean over ``draws`` moves."""
    if not model.classifies:
        raise ValueError(f"{model.name} has no cluster or label head to move items under; cluster_stability is for aae-cluster and aae-semi")
    x = dataset.split(split)
    clusters = torch.as_tensor(_predictions(model, x, batch_size))
    device = next(model.parameters()).device
    kept = 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for _ in range(draws):
            for start in range(0, len(x), batch_size):
                moved = model.move(x[start : start + batch_size].to(device))
                kept += int((model.predict(moved).cpu() == clusters[start : start + batch_size]).sum())
    return kept / (draws * len(x))


REPRESENTATION_METRICS = {
    "probe": linear_probe_accuracy,
    "kmeans": kmeans_accuracy,
    "classification_error": classification_error,
    "cluster_error": cluster_error,
    "cluster_stability": cluster_stability,
}
