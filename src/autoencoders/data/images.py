"""Image datasets from their original files (MNIST, Fashion-MNIST, CIFAR-10, SVHN), a folder of images, and
the user's ``.npy`` array.

Images come out as float32 in [0, 1], channels first. Validation items are carved from the official training
set by the seed; the test split is the official test set.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoencoders.data.errors import DataError
from autoencoders.data.files import fetch, search_folders
from autoencoders.data.registry import DATASETS, Dataset, Request
from autoencoders.data.splits import carve_validation, generator, three_way_split

DIGIT_NAMES = [str(digit) for digit in range(10)]
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

_FIX = "delete it and load again to download a fresh copy, or replace it with the original file"
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format), gzip-compressed or raw, as a native-endian array.

    Raises ``DataError`` for a file that is not IDX or holds fewer or more bytes than its header promises.
    """
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path} is damaged or incomplete ({error}); {_FIX}") from error
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (its header is wrong); {_FIX}")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    offset = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:offset]) if len(raw) >= offset else ()
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) < offset or len(raw) - offset != expected:
        raise DataError(
            f"{path} is damaged or incomplete: its header promises {expected} bytes of data, it holds "
            f"{max(len(raw) - offset, 0)}; {_FIX}"
        )
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _channels_first(pixels: np.ndarray) -> torch.Tensor:
    """Images (N, H, W) or (N, C, H, W) as a tensor (N, C, H, W) of the same dtype."""
    images = torch.from_numpy(np.ascontiguousarray(pixels))
    return images.unsqueeze(1) if images.ndim == 3 else images


def _unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as float32 in [0, 1]; float images as they are."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


def _checked_labels(labels: np.ndarray, count: int, source: Path | str) -> torch.Tensor:
    labels = torch.from_numpy(np.asarray(labels).reshape(-1).astype(np.int64))
    if len(labels) != count or (len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 9):
        raise DataError(f"{source} does not hold {count} labels in 0..9; {_FIX}")
    return labels


def _official(
    request: Request,
    train: torch.Tensor,
    train_labels: torch.Tensor,
    test: torch.Tensor,
    test_labels: torch.Tensor,
    class_names: list[str],
    default_val: int | float,
    val_source: torch.Tensor | None = None,
    **fields: Any,
) -> Dataset:
    """A Dataset from an official train/test pair; validation items come from ``val_source`` (default ``train``).

    uint8 pixels become floats only after the splits are cut (to ``limit`` too), which saves time and memory.
    """
    train_index, val_index = carve_validation(len(train), request.seed, request.val_size, default_val)
    train_index, val_index = train_index[: request.limit], val_index[: request.limit]
    val_source = train if val_source is None else val_source
    return Dataset(
        name=request.name,
        train=_unit(train[train_index]),
        val=_unit(val_source[val_index]),
        test=_unit(test[: request.limit]),
        train_labels=train_labels[train_index],
        val_labels=train_labels[val_index],
        test_labels=test_labels[: request.limit],
        item_shape=tuple(train.shape[1:]),
        value_range=(0.0, 1.0),
        num_classes=len(class_names),
        description=DATASETS[request.name].description,
        class_names=class_names,
        **fields,
    )


def _idx_arrays(request: Request) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, test images, test labels) of an MNIST-format dataset."""
    spec = DATASETS[request.name]
    paths = fetch(spec.name, spec.folder, spec.checksums, spec.mirrors, request.data_dir)
    arrays = []
    for prefix in ("train", "t10k"):
        images_path, labels_path = paths[f"{prefix}-images-idx3-ubyte.gz"], paths[f"{prefix}-labels-idx1-ubyte.gz"]
        images = read_idx(images_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{images_path} holds {images.dtype} data of shape {images.shape}, not uint8 images; {_FIX}")
        arrays += [_channels_first(images), _checked_labels(read_idx(labels_path), len(images), labels_path)]
    return tuple(arrays)


def load_mnist(request: Request) -> Dataset:
    """MNIST: (1, 28, 28) in [0, 1]; 5,000 training images held out for validation by default."""
    return _official(request, *_idx_arrays(request), DIGIT_NAMES, default_val=5000)


def load_fashion_mnist(request: Request) -> Dataset:
    """Fashion-MNIST: (1, 28, 28) in [0, 1]; 5,000 training images held out for validation by default."""
    return _official(request, *_idx_arrays(request), FASHION_NAMES, default_val=5000)


def load_mnist_binary(request: Request, binarization: str = "stochastic") -> Dataset:
    """MNIST with pixels drawn as Bernoulli(grey level).

    Every image is binarized once from a fixed stream that does not depend on the seed, so val/test (and the
    ``fixed`` training set) are the same binary images in every run and NLL numbers compare across runs. With
    ``stochastic`` the training split keeps the grey levels and ``binarize_train`` asks for a fresh draw every
    epoch (dynamic binarization).
    """
    if binarization not in ("stochastic", "fixed"):
        raise DataError(f"binarization must be 'stochastic' or 'fixed'; got {binarization!r}")
    pixels, train_labels, test_pixels, test_labels = _idx_arrays(request)
    train, test = _unit(pixels), _unit(test_pixels)
    binary_train = torch.bernoulli(train, generator=generator("mnist-binary", "train"))
    binary_test = torch.bernoulli(test, generator=generator("mnist-binary", "test"))
    stochastic = binarization == "stochastic"
    return _official(
        request, train if stochastic else binary_train, train_labels, binary_test, test_labels, DIGIT_NAMES,
        default_val=5000, val_source=binary_train, binary=True, binarize_train=stochastic,
    )


_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_BATCHES = [*(f"data_batch_{index}" for index in range(1, 6)), "test_batch"]


def _unpickle_batch(raw: bytes, source: Path) -> dict[str, Any]:
    """One CIFAR batch (a pickled dict, with bytes keys in the original Python 2 files) with str keys."""
    try:
        batch = pickle.loads(raw, encoding="bytes")  # the md5-verified archive, or files the user put there
        batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return {"data": data, "labels": _checked_labels(np.asarray(batch["labels"]), len(data), source)}
    except (pickle.UnpicklingError, EOFError, AttributeError, KeyError, ValueError, TypeError) as error:
        raise DataError(f"{source} holds a CIFAR-10 batch that cannot be read ({error!r}); {_FIX}") from error


def _cifar_batches(request: Request) -> dict[str, dict[str, Any]]:
    """The six CIFAR-10 batches, from an extracted ``cifar-10-batches-py`` folder or straight from the archive."""
    spec = DATASETS["cifar10"]
    for folder in search_folders(spec.folder, request.data_dir):
        extracted = folder / _CIFAR_FOLDER
        if extracted.is_dir():
            missing = [name for name in _CIFAR_BATCHES if not (extracted / name).is_file()]
            if missing:
                raise DataError(f"{extracted} lacks {', '.join(missing)}; extract cifar-10-python.tar.gz there again")
            return {name: _unpickle_batch((extracted / name).read_bytes(), extracted / name) for name in _CIFAR_BATCHES}
    archive = fetch(spec.name, spec.folder, spec.checksums, spec.mirrors, request.data_dir)["cifar-10-python.tar.gz"]
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {name: tar.extractfile(f"{_CIFAR_FOLDER}/{name}").read() for name in _CIFAR_BATCHES}
    except (tarfile.TarError, OSError, EOFError, zlib.error, KeyError) as error:
        raise DataError(f"{archive} cannot be read as the CIFAR-10 archive ({error}); {_FIX}") from error
    return {name: _unpickle_batch(raw, archive) for name, raw in members.items()}


def load_cifar10(request: Request) -> Dataset:
    """CIFAR-10: (3, 32, 32) in [0, 1]; 10% of the 50,000 training images held out for validation by default."""
    batches = _cifar_batches(request)
    train = [batches[name] for name in _CIFAR_BATCHES[:-1]]
    return _official(
        request,
        _channels_first(np.concatenate([batch["data"] for batch in train])),
        torch.cat([batch["labels"] for batch in train]),
        _channels_first(batches["test_batch"]["data"]),
        batches["test_batch"]["labels"],
        CIFAR10_NAMES,
        default_val=0.1,
    )


def _read_svhn(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """An SVHN ``*_32x32.mat`` file: X (32, 32, 3, N) uint8 and y (N, 1) with 10 for the digit 0."""
    from scipy.io import loadmat

    try:
        contents = loadmat(path)
        pixels, labels = contents["X"], contents["y"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path} cannot be read as an SVHN .mat file ({error!r}); {_FIX}") from error
    if pixels.ndim != 4 or pixels.shape[:3] != (32, 32, 3):
        raise DataError(f"{path} holds images of shape {pixels.shape}, not (32, 32, 3, N); {_FIX}")
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    labels[labels == 10] = 0
    return _channels_first(pixels.astype(np.uint8).transpose(3, 2, 0, 1)), _checked_labels(labels, pixels.shape[3], path)


def load_svhn(request: Request) -> Dataset:
    """SVHN (cropped digits): (3, 32, 32) in [0, 1], label 0 for the digit 0; 10% of train held out for val."""
    spec = DATASETS["svhn"]
    paths = fetch(spec.name, spec.folder, spec.checksums, spec.mirrors, request.data_dir)
    train, test = _read_svhn(paths["train_32x32.mat"]), _read_svhn(paths["test_32x32.mat"])
    return _official(request, *train, *test, DIGIT_NAMES, default_val=0.1)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _image_size(value: Any) -> tuple[int, int]:
    """(height, width) from an int or a pair."""
    size = (value, value) if isinstance(value, int) else tuple(value)
    if len(size) != 2 or not all(isinstance(side, int) and side > 0 for side in size):
        raise DataError(f"image_size must be a positive int or [height, width]; got {value!r}")
    return size


def load_image_folder(
    request: Request, image_size: int | list[int] | None = None, test_size: int | float | None = None
) -> Dataset:
    """Every image under a folder, as float32 (C, H, W) in [0, 1].

    Images in sub-folders are labelled by their top sub-folder, classes sorted alphabetically. All images take
    the size and mode (grey: 1 channel, else RGB) of the first one, or ``image_size`` (height, width); the
    ``preprocessing`` of an earlier load re-applies its size, mode and class names.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(request.name).expanduser()
    files = sorted(path for path in root.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
    if not files:
        raise DataError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    classes_of = [path.relative_to(root).parts[0] if path.parent != root else None for path in files]
    if None in classes_of and any(classes_of):
        raise DataError(f"{root} mixes loose images with class sub-folders; move the loose images into a sub-folder")

    def open_image(path: Path) -> Image.Image:
        try:
            image = Image.open(path)
            image.load()
            return image
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"{path} cannot be read as an image ({error}); fix or remove it") from error

    # the preprocessing of an earlier load of a folder (a run's data may have been of another kind)
    previous = request.preprocessing if (request.preprocessing or {}).get("kind") == "image-folder" else {}
    if previous:
        height, width = previous["image_size"]
        mode = previous["mode"]
    else:
        first = open_image(files[0])
        height, width = _image_size(image_size) if image_size is not None else (first.height, first.width)
        mode = "L" if first.mode in _GREY_MODES else "RGB"
    class_names, labels = None, None
    if any(classes_of):
        class_names = previous.get("class_names") or sorted(set(classes_of))
        unknown = sorted(set(classes_of) - set(class_names))
        if unknown:
            raise DataError(f"{root} has class folders {', '.join(unknown)} unknown to the model's classes {class_names}")
        index = {name: position for position, name in enumerate(class_names)}
        labels = torch.tensor([index[name] for name in classes_of], dtype=torch.int64)

    pixels = np.stack([
        np.asarray(open_image(path).convert(mode).resize((width, height), Image.BILINEAR), dtype=np.uint8)
        for path in files
    ])
    images = _unit(_channels_first(pixels if mode == "L" else pixels.transpose(0, 3, 1, 2)))
    train, val, test = three_way_split(len(images), request.seed, request.val_size, test_size)
    pick = (lambda index: None) if labels is None else (lambda index: labels[index])
    return Dataset(
        name=request.name,
        train=images[train], val=images[val], test=images[test],
        train_labels=pick(train), val_labels=pick(val), test_labels=pick(test),
        item_shape=tuple(images.shape[1:]),
        value_range=(0.0, 1.0),
        num_classes=len(class_names) if class_names else 0,
        description=f"{len(images)} images from {root}" + (f", {len(class_names)} classes" if class_names else ""),
        preprocessing={"kind": "image-folder", "image_size": [height, width], "mode": mode, "class_names": class_names},
        class_names=class_names,
    )


_ARRAY_KIND = "divide"


def load_array(request: Request, test_size: int | float | None = None) -> Dataset:
    """The user's ``.npy`` array (N, ...) as N float32 items; uint8 is divided by 255, bool becomes {0, 1}.

    ``value_range`` is (0, 1) when every value lies there, else the observed (min, max).
    """
    path = Path(request.name).expanduser()
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path} cannot be read as a .npy array ({error})") from error
    if array.ndim < 2 or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(f"{path} holds a {array.dtype} array of shape {array.shape}; expected numbers shaped (N, ...)")
    previous = request.preprocessing if (request.preprocessing or {}).get("kind") == _ARRAY_KIND else None
    divisor = previous["divisor"] if previous else (255.0 if array.dtype == np.uint8 else 1.0)
    items = torch.from_numpy(array.astype(np.float32)).div_(divisor)
    if not torch.isfinite(items).all():
        raise DataError(f"{path} contains NaN or infinite values; replace them before training")
    low, high = float(items.min()), float(items.max())
    train, val, test = three_way_split(len(items), request.seed, request.val_size, test_size)
    return Dataset(
        name=request.name,
        train=items[train], val=items[val], test=items[test],
        train_labels=None, val_labels=None, test_labels=None,
        item_shape=tuple(items.shape[1:]),
        value_range=(0.0, 1.0) if low >= 0.0 and high <= 1.0 else (low, high),
        num_classes=0,
        description=f"{len(items)} items of shape {tuple(items.shape[1:])} from {path}",
        binary=bool(((items == 0) | (items == 1)).all()),
        preprocessing={"kind": _ARRAY_KIND, "divisor": divisor},
    )
