"""The dataset table, the ``Dataset`` object every loader returns, and ``load_dataset``.

This module imports no torch: ``autoencoders datasets`` lists the table in well under a second. The loaders
live in ``images``, ``synthetic`` and ``tables`` and are imported only when a dataset is loaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from autoencoders.data.errors import DataError
from autoencoders.data.files import locate, search_folders, verify_md5

if TYPE_CHECKING:
    import torch

    from autoencoders.data.batches import TensorBatches
    from autoencoders.data.streaming import Rows

SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """Three splits of float32 items with what models and metrics must know about them. The splits are tensors
    in memory, or ``Rows`` read from a file batch by batch for data larger than memory (see ``streaming``)."""

    name: str
    train: torch.Tensor | Rows  # float32, (N, *item_shape), contiguous; or Rows read from a file batch by batch
    val: torch.Tensor | Rows
    test: torch.Tensor | Rows
    train_labels: torch.Tensor | None  # int64 (N,) classes, int64 (N, k) factor indices, or float (N,) angles
    val_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    item_shape: tuple[int, ...]
    value_range: tuple[float, float]
    num_classes: int  # 0 when there are no class labels
    description: str
    binary: bool = False  # values are exactly {0, 1}
    binarize_train: bool = False  # train batches are freshly Bernoulli-sampled every epoch
    preprocessing: dict = field(default_factory=dict)  # JSON-able; re-creates the scaling when passed back
    class_names: list[str] | None = None
    factor_names: list[str] | None = None
    factor_sizes: list[int] | None = None
    ids: dict[str, list] | None = None  # tables: the original row ids of every split

    def __post_init__(self) -> None:
        self.item_shape = tuple(int(size) for size in self.item_shape)
        self.value_range = (float(self.value_range[0]), float(self.value_range[1]))
        for split in SPLITS:
            items = getattr(self, split)
            items = items if self.streamed else items.float().contiguous()
            if tuple(items.shape[1:]) != self.item_shape:
                raise ValueError(f"{self.name} {split} items have shape {tuple(items.shape[1:])}, not {self.item_shape}")
            labels = getattr(self, f"{split}_labels")
            if labels is not None and len(labels) != len(items):
                raise ValueError(f"{self.name} has {len(items)} {split} items but {len(labels)} labels")
            setattr(self, split, items)

    @property
    def streamed(self) -> bool:
        """Whether the splits are read from a file batch by batch (``Rows``) rather than held in memory."""
        from autoencoders.data.streaming import Rows  # torch is loaded once a Dataset exists

        return isinstance(self.train, Rows)

    def split(self, name: str) -> torch.Tensor:
        """The items of split ``name`` ("train", "val" or "test")."""
        return getattr(self, _check_split(name))

    def labels(self, name: str) -> torch.Tensor | None:
        """The labels of split ``name``, or None when the dataset has none."""
        return getattr(self, f"{_check_split(name)}_labels")

    def batches(
        self, split: str = "train", batch_size: int = 64, shuffle: bool | None = None, seed: int = 0, **options: Any
    ) -> TensorBatches:
        """(x, y) batches of a split; shuffled by default for train only, dynamically binarized where the data asks."""
        from autoencoders.data.batches import TensorBatches

        options.setdefault("binarize", self.binarize_train and split == "train")
        return TensorBatches(
            self.split(split), self.labels(split), batch_size=batch_size,
            shuffle=split == "train" if shuffle is None else shuffle, seed=seed, **options,
        )

    def head(self, limit: int) -> Dataset:
        """This dataset with only the first ``limit`` items of every split (copied, so the rest can be freed)."""
        cut = {split: getattr(self, split).head(limit) if self.streamed else getattr(self, split)[:limit].clone() for split in SPLITS}
        for split in SPLITS:
            labels = self.labels(split)
            cut[f"{split}_labels"] = None if labels is None else labels[:limit].clone()
        ids = None if self.ids is None else {split: list(values[:limit]) for split, values in self.ids.items()}
        return dataclasses.replace(self, **cut, ids=ids)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{split}={len(getattr(self, split))}" for split in SPLITS)
        return (
            f"Dataset({self.name!r}, {sizes}, item_shape={self.item_shape}, value_range={self.value_range}, "
            f"num_classes={self.num_classes}, binary={self.binary})"
        )


def _check_split(name: str) -> str:
    if name not in SPLITS:
        raise DataError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
    return name


@dataclass(frozen=True)
class DatasetSpec:
    """One row of the dataset table: what the dataset is, which files it needs and which function loads it."""

    name: str
    description: str
    kind: str  # "built-in" (made here, no files) or "download"
    shape: str  # item shape for people, e.g. "1x28x28"
    loader: str  # "module:function" under autoencoders.data, imported when the dataset is loaded
    options: tuple[str, ...] = ()  # the extra keyword options the loader accepts
    folder: str = ""  # sub-folder of a data root that may hold the files (<root>/<folder>/<file>)
    checksums: dict[str, str] = field(default_factory=dict)  # file name -> published md5
    mirrors: tuple[str, ...] = ()  # base URLs, tried in order

    @property
    def files(self) -> list[str]:
        return list(self.checksums)


@dataclass(frozen=True)
class Request:
    """What every loader is asked for; loaders take it plus their own keyword options."""

    name: str  # the registered name, or the path as given
    data_dir: str | Path | None
    seed: int
    val_size: int | float | None
    limit: int | None
    preprocessing: dict | None


_MNIST_FILES = (
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
)
_MNIST_MD5 = (
    "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
    "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c",
)
_FASHION_MD5 = (
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
    "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310",
)
_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            "digits", "scikit-learn's 1,797 8x8 handwritten digits in [0, 1], 10 classes (bundled, no download)",
            "built-in", "1x8x8", "synthetic:load_digits",
        ),
        DatasetSpec(
            "mnist", "MNIST handwritten digits in [0, 1], 60k train (5k held out for val) + 10k test, 10 classes",
            "download", "1x28x28", "images:load_mnist", folder="mnist",
            checksums=dict(zip(_MNIST_FILES, _MNIST_MD5)), mirrors=_MNIST_MIRRORS,
        ),
        DatasetSpec(
            "mnist-binary", "MNIST binarized: train re-sampled every epoch (binarization=stochastic) or once (fixed)",
            "download", "1x28x28", "images:load_mnist_binary", options=("binarization",), folder="mnist",
            checksums=dict(zip(_MNIST_FILES, _MNIST_MD5)), mirrors=_MNIST_MIRRORS,
        ),
        DatasetSpec(
            "fashion-mnist", "Zalando's Fashion-MNIST clothing images in [0, 1], 60k + 10k, 10 classes",
            "download", "1x28x28", "images:load_fashion_mnist", folder="fashion-mnist",
            checksums=dict(zip(_MNIST_FILES, _FASHION_MD5)),
            mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ),
        DatasetSpec(
            "cifar10", "CIFAR-10 colour images in [0, 1], 50k train (10% val) + 10k test, 10 classes",
            "download", "3x32x32", "images:load_cifar10", folder="cifar10",
            checksums={"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
            mirrors=("https://www.cs.toronto.edu/~kriz/",),
        ),
        DatasetSpec(
            "svhn", "SVHN street-view house numbers in [0, 1], 73k train (10% val) + 26k test, 10 classes",
            "download", "3x32x32", "images:load_svhn", folder="svhn",
            checksums={
                "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
                "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
            },
            mirrors=("http://ufldl.stanford.edu/housenumbers/",),
        ),
        DatasetSpec(
            "lines", "ACAI synthetic lines: a 15 px antialiased line from the centre at a random angle, in [-1, 1]",
            "built-in", "1x32x32", "synthetic:load_lines", options=("train_size", "test_size"),
        ),
        DatasetSpec(
            "sprites", "dSprites-style binary shapes from 5 known factors (shape, scale, orientation, x, y)",
            "built-in", "1x64x64", "synthetic:load_sprites", options=("train_size", "test_size"),
        ),
        DatasetSpec(
            "sine", "multivariate time series: sums of random sines plus noise, clipped to [-1, 1]",
            "built-in", "64x3 (T x C)", "synthetic:load_sine", options=("train_size", "test_size", "length", "channels"),
        ),
        DatasetSpec(
            "text", "character-level text: Python's reference topics shipped in the stdlib, lower-cased, one-hot windows",
            "built-in", "64x70 (T x alphabet)", "sequences:load_text", options=("length", "stride"),
        ),
        DatasetSpec(
            "moving-digits", "Moving MNIST made from the MNIST files: 2 digits bouncing in 64x64 frames, 10 frames",
            "download", "10x1x64x64 (T x C x H x W)", "sequences:load_moving_digits",
            options=("train_size", "test_size", "length", "image_size", "digits"), folder="mnist",
            checksums=dict(zip(_MNIST_FILES, _MNIST_MD5)), mirrors=_MNIST_MIRRORS,
        ),
    ]
}

# A path instead of a name: (loader, accepted options) by what the path is.
_TABLE_OPTIONS = (
    "columns", "label_column", "id_column", "test_size", "time_column", "window", "stride", "drop_nonfinite", "stream",
)
_PATH_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "folder": ("images:load_image_folder", ("image_size", "test_size", "stream")),
    ".csv": ("tables:load_table", _TABLE_OPTIONS),
    ".parquet": ("tables:load_table", _TABLE_OPTIONS),
    ".pq": ("tables:load_table", _TABLE_OPTIONS),
    ".npy": ("images:load_array", ("test_size", "stream")),
}
_PATH_HELP = (
    "a folder of images (class sub-folders optional), a .csv/.parquet/.pq table (or a folder of .parquet files), or a .npy array"
)


def _resolve(name_or_path: str) -> tuple[str, tuple[str, ...]]:
    """The loader and its accepted options for a registered name or a path."""
    if name_or_path in DATASETS:
        spec = DATASETS[name_or_path]
        return spec.loader, spec.options
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        # a folder of .parquet files is one table (a Parquet dataset); any other folder, images
        return _PATH_KINDS[".parquet" if any(path.glob("*.parquet")) else "folder"]
    if path.is_file():
        if path.suffix.lower() in _PATH_KINDS:
            return _PATH_KINDS[path.suffix.lower()]
        raise DataError(f"{path} is a {path.suffix or 'suffix-less'} file; a dataset path must be {_PATH_HELP}")
    if path.suffix or len(path.parts) > 1:
        raise DataError(f"no such file or folder: {path}. A dataset path must be {_PATH_HELP}")
    close = difflib.get_close_matches(name_or_path, DATASETS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise DataError(
        f"unknown dataset {name_or_path!r}.{hint} Registered datasets: {', '.join(DATASETS)}; "
        f"or give a path to {_PATH_HELP}"
    )


def _import_loader(reference: str) -> Callable[..., Dataset]:
    module, function = reference.split(":")
    return getattr(importlib.import_module(f"autoencoders.data.{module}"), function)


def load_dataset(
    name_or_path: str | Path,
    data_dir: str | Path | None = None,
    seed: int = 0,
    val_size: int | float | None = None,
    limit: int | None = None,
    preprocessing: dict | None = None,
    **options: Any,
) -> Dataset:
    """Load a registered dataset by name, or the user's data from a path, as a ``Dataset``.

    ``data_dir`` is searched first for dataset files (then ``$AUTOENCODERS_DATA``, then the cache; missing
    files are downloaded). ``seed`` picks the validation split; ``val_size`` (count, or fraction) overrides its
    size; ``limit`` keeps the first ``limit`` items of every split; ``preprocessing`` (a ``Dataset.preprocessing``
    from an earlier load) re-applies that load's scaling. Other ``options`` are dataset-specific.
    """
    name = str(name_or_path)
    loader, accepted = _resolve(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataError(
            f"unknown option(s) {', '.join(unknown)} for dataset {name!r}; "
            f"it accepts {', '.join(accepted) if accepted else 'no options'}"
        )
    if limit is not None and limit < 1:
        raise DataError(f"limit must be a positive number of items per split; got {limit}")
    request = Request(name, data_dir, seed, val_size, limit, preprocessing or None)
    dataset = _import_loader(loader)(request, **options)
    return dataset.head(limit) if limit is not None else dataset


def dataset_status(name: str, data_dir: str | Path | None = None) -> str:
    """"built-in" (nothing to fetch), "cached" (every file found and its md5 right), "corrupt" or "missing".

    md5 results are remembered per file (path, size, mtime), so repeated calls are quick.
    """
    if name not in DATASETS:
        _resolve(name)  # raises the unknown-name error
    spec = DATASETS[name]
    if spec.kind == "built-in":
        return "built-in"
    folders = search_folders(spec.folder, data_dir)
    if name == "cifar10" and any((folder / "cifar-10-batches-py").is_dir() for folder in folders):
        return "cached"  # the archive already extracted
    status = "cached"
    for filename, md5 in spec.checksums.items():
        path = locate(filename, folders)
        if path is None:
            status = "missing"
        elif path.name == filename:
            try:
                verify_md5(path, md5, spec.mirrors[0] + filename)
            except DataError:
                return "corrupt"  # the most urgent thing to report
    return status
