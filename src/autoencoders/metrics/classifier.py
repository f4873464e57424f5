"""A domain classifier for small images: a small CNN trained on a dataset's labels, saved and reused.

Generated images of MNIST-like data are judged by a network that knows the domain, as InceptionV3 does for
natural images: ``.logits(x)`` give class scores (the Inception Score, "does this look like a digit the
classifier is sure about"), ``.features(x)`` the penultimate layer (a "domain FID" compares their statistics).

``domain_classifier(name)`` trains it once per dataset on the training split (a few CPU minutes for MNIST,
≥ 99 % test accuracy) and saves it as ``model.safetensors`` + ``config.json`` (no pickle) in
``$AUTOENCODERS_CACHE/classifiers/<dataset>`` (default ``~/.cache/autoencoders/classifiers/<dataset>``); later
calls load it. Inputs are items as the dataset's default loader gives them (``value_range`` of the dataset).

The network: per stage a 3x3 convolution, batch normalisation, ReLU and 2x2 max pooling (channels 32, 64,
128, as many stages as the image size allows), global average pooling, a 128-unit ReLU layer (the
features), dropout, and the linear classification layer.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoencoders.files import atomic_write_bytes, atomic_write_json

FORMAT_VERSION = 1
TRAIN_BATCH = 128
CHANNELS = (32, 64, 128)
FEATURE_DIM = 128


class DomainClassifier(nn.Module):
    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, value_range: tuple[float, float] = (0.0, 1.0),
        channels: tuple[int, ...] = CHANNELS, feature_dim: int = FEATURE_DIM,
    ):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"the domain classifier takes images (C, H, W); got items of shape {tuple(input_shape)}")
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes; got {num_classes}")
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.info: dict = {}  # a saved classifier's config.json: dataset, test accuracy, training time
        self.value_range, self.channels, self.feature_dim = tuple(value_range), tuple(channels), feature_dim
        layers: list[nn.Module] = []
        size = min(input_shape[1:])
        for channels_in, channels_out in zip((input_shape[0], *channels[:-1]), channels):
            layers += [nn.Conv2d(channels_in, channels_out, 3, padding=1), nn.BatchNorm2d(channels_out), nn.ReLU()]
            if size >= 2:  # pool while the image is large enough
                layers.append(nn.MaxPool2d(2))
                size //= 2
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels[-1], feature_dim), nn.ReLU())
        self.dropout = nn.Dropout(0.3)
        self.classify = nn.Linear(feature_dim, num_classes)

    def _check(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"the classifier takes items of shape {self.input_shape}; got a batch of shape {tuple(x.shape)}")
        low, high = self.value_range
        return (x.float() - low) / (high - low) * 2 - 1  # to [-1, 1]

    def features(self, x: Tensor) -> Tensor:
        """The penultimate layer, (N, 128): the domain feature set (for a domain FID)."""
        return self.body(self._check(x))

    def logits(self, x: Tensor) -> Tensor:
        """Class scores (N, num_classes); softmax gives p(y|x) (for the Inception Score)."""
        return self.classify(self.dropout(self.features(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.logits(x)

    def config(self) -> dict:
        return {
            "format_version": FORMAT_VERSION, "input_shape": list(self.input_shape), "num_classes": self.num_classes,
            "value_range": list(self.value_range), "channels": list(self.channels), "feature_dim": self.feature_dim,
        }

    @torch.no_grad()
    def accuracy(self, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
        self.eval()
        correct = sum(
            int((self.logits(x[start : start + batch_size]).argmax(1) == y[start : start + batch_size]).sum())
            for start in range(0, len(x), batch_size)
        )
        return correct / max(len(x), 1)


def train_classifier(
    x: Tensor, y: Tensor, num_classes: int, value_range: tuple[float, float] = (0.0, 1.0), epochs: int = 3,
    batch_size: int = TRAIN_BATCH, lr: float = 2e-3, seed: int = 0,
) -> DomainClassifier:
    """Adam with a one-cycle learning rate over ``epochs`` passes of seeded shuffled batches; eval mode on return."""
    from autoencoders.data.batches import TensorBatches

    if y is None or y.dim() != 1 or y.is_floating_point():
        raise ValueError("the domain classifier trains on class labels: one integer label per item")
    torch.manual_seed(seed)
    classifier = DomainClassifier(tuple(x.shape[1:]), num_classes, value_range)
    batches = TensorBatches(x, y.long(), batch_size=batch_size, shuffle=True, seed=seed)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(epochs * len(batches), 1))
    classifier.train()
    with torch.enable_grad():  # callers such as ``evaluate`` run under no_grad
        for epoch in range(epochs):
            batches.set_epoch(epoch)
            for items, labels in batches:
                loss = F.cross_entropy(classifier.logits(items), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return classifier.eval()


def classifier_folder(dataset_name: str, cache_dir: str | Path | None = None) -> Path:
    from autoencoders.data.files import cache_dir as default_cache

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(dataset_name))
    return Path(cache_dir or default_cache()) / "classifiers" / safe


def save_classifier(classifier: DomainClassifier, folder: str | Path, extra: dict | None = None) -> Path:
    from safetensors.torch import save

    folder = Path(folder)
    state = {key: value.detach().cpu().contiguous() for key, value in classifier.state_dict().items()}
    atomic_write_bytes(folder / "model.safetensors", save(state))
    atomic_write_json(folder / "config.json", {**classifier.config(), **(extra or {})})
    return folder


def load_classifier(folder: str | Path) -> DomainClassifier:
    """A classifier saved by ``save_classifier`` (eval mode); clear errors for missing or damaged files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from autoencoders.io import ModelFileError

    folder = Path(folder)
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    if not config_path.exists() or not weights_path.exists():
        raise ModelFileError(f"{folder} holds no saved classifier (config.json and model.safetensors)")
    try:
        config = json.loads(config_path.read_text())
        classifier = DomainClassifier(
            tuple(config["input_shape"]), config["num_classes"], tuple(config["value_range"]),
            tuple(config["channels"]), config["feature_dim"],
        )
        classifier.load_state_dict(load_file(weights_path))
    except (json.JSONDecodeError, KeyError, SafetensorError, OSError, RuntimeError) as error:
        raise ModelFileError(f"the classifier in {folder} is damaged ({error}); delete the folder to retrain it") from error
    classifier.info = config
    return classifier.eval()


def domain_classifier(
    dataset_name: str, data_dir: str | Path | None = None, *, cache_dir: str | Path | None = None, epochs: int = 3,
    min_steps: int = 1000, seed: int = 0, retrain: bool = False,
) -> DomainClassifier:
    """The classifier of a labelled image dataset: loaded from the cache, or trained and saved there.

    It trains for ``epochs``, or more on a small dataset, so as to take at least ``min_steps`` optimizer
    steps (three epochs of the 1258 ``digits`` images would be 30 steps). Its ``info`` dict (the saved
    ``config.json``) holds the test accuracy, the dataset, the steps and the training time.
    """
    folder = classifier_folder(dataset_name, cache_dir)
    if not retrain and (folder / "config.json").exists():
        classifier = load_classifier(folder)
        if classifier.info.get("format_version") == FORMAT_VERSION and classifier.info.get("steps", 0) >= min_steps:
            return classifier
    from autoencoders.data import load_dataset

    dataset = load_dataset(dataset_name, data_dir=data_dir, seed=seed)
    if dataset.num_classes < 2 or dataset.train_labels is None or dataset.train_labels.dim() != 1:
        raise ValueError(f"a domain classifier needs class labels; dataset {dataset_name!r} has none")
    if len(dataset.item_shape) != 3:
        raise ValueError(f"the domain classifier is for images; {dataset_name!r} has items of shape {dataset.item_shape}")
    batches_per_epoch = math.ceil(len(dataset.train) / TRAIN_BATCH)
    epochs = max(epochs, math.ceil(min_steps / batches_per_epoch))
    started = time.perf_counter()
    classifier = train_classifier(
        dataset.train, dataset.train_labels, dataset.num_classes, dataset.value_range, epochs, TRAIN_BATCH, seed=seed
    )
    extra = {
        "dataset": str(dataset_name), "epochs": epochs, "steps": epochs * batches_per_epoch, "seed": seed,
        "test_accuracy": classifier.accuracy(dataset.test, dataset.test_labels),
        "training_seconds": round(time.perf_counter() - started, 1), "torch_threads": torch.get_num_threads(),
    }
    save_classifier(classifier, folder, extra)
    classifier.info = {**classifier.config(), **extra}
    return classifier


def confident_fraction(classifier: DomainClassifier, x: Tensor, threshold: float = 0.9, batch_size: int = 1000) -> float:
    """Share of items whose most likely class has probability ≥ ``threshold``."""
    with torch.no_grad():
        top = torch.cat([
            F.softmax(classifier.logits(x[start : start + batch_size]), dim=1).max(1).values
            for start in range(0, len(x), batch_size)
        ])
    return float((top >= threshold).float().mean()) if len(top) else math.nan
