"""Image datasets from their original files (MNIST, Fashion-MNIST, CIFAR-10, SVHN), a folder of images, and
the user's ``.npy`` array.

Images come out as float32 in [0, 1], channels first. Validation items are carved from the official training
set by the seed; the test split is the official test set.
"""

from __future__ import annotations

import gzip
import io
import logging
import pickle
import pickletools
import re
import struct
import tarfile
import tokenize
import warnings
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoencoders.data.errors import DataError
from autoencoders.data.files import fetch, search_folders
from autoencoders.data.registry import DATASETS, Dataset, Request
from autoencoders.data.splits import carve_validation, generator, three_way_split
from autoencoders.data.streaming import NUMBER_KINDS, Rows, finite_float32, npy_rows, should_stream, value_summary

DIGIT_NAMES = [str(digit) for digit in range(10)]
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

log = logging.getLogger("autoencoders")

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


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes at protocol 2 (always Latin-1), and nothing else of it."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}: CIFAR-10 batches encode bytes as latin1")
    return text.encode("latin1")


class _PickledArray:
    """What a batch's array unpickles to: its pickled state, turned into an array by ``_uint8_array`` after checks,
    so no byte of the file reaches numpy's own unpickling code."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _PickledDtype:
    """What a batch's ``numpy.dtype(...)`` unpickles to: its arguments (its state, byte order and flags, is moot
    for the one dtype allowed, uint8)."""

    def __init__(self, *arguments: Any):
        self.arguments = arguments

    def __setstate__(self, state: Any) -> None:
        pass


_NDARRAY = object()  # a batch's numpy.ndarray global: only ever the type argument of _reconstruct, never called


def _reconstruct(subtype: object, shape: Any, dtype: Any) -> _PickledArray:
    """numpy's ``_reconstruct`` as an array's pickle calls it: an empty array that the pickled state then fills."""
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError(f"_reconstruct of {subtype!r}, not of a numpy.ndarray")
    return _PickledArray()


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch and refuses every global the format does not need, so a file planted in a
    data folder cannot run code: a batch is a dict of bytes keys, lists of ints and bytes, and one uint8 array
    (numpy's ``_reconstruct`` of an ``ndarray`` and ``dtype``, under numpy 1's or 2's module name), plus the
    Latin-1 encoding Python 3 writes bytes with at protocol 2. The allowed globals build stand-ins, not numpy
    objects, so a crafted shape or state cannot allocate memory or reach numpy's C code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _PickledDtype,
        ("_codecs", "encode"): _latin1_bytes,
    }

    def __init__(self, raw: bytes, source: Path | str):
        super().__init__(io.BytesIO(raw), encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise DataError(
                f"{self.source} is no CIFAR-10 batch: it asks to load {module}.{name}, which a batch never needs and "
                f"which could run code, so it is not unpickled; {_FIX}"
            )
        return self._ALLOWED[module, name]


def _check_memo_indices(raw: bytes) -> None:
    """Refuse a pickle that stores an object at a memo index beyond its own length: the unpickler would grow its
    memo to that index (up to 32 GB), where a real pickle numbers its memo entries 0, 1, 2, ..."""
    for count, (opcode, argument, _) in enumerate(pickletools.genops(raw)):
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and int(argument) > count:
            raise pickle.UnpicklingError(f"memo index {argument} at opcode {count}")


def _uint8_array(value: Any) -> np.ndarray:
    """A batch's ``data`` as the uint8 array its pickled state describes: (version, shape, dtype, Fortran order,
    bytes); the bytes must fill the shape exactly."""
    if not isinstance(value, _PickledArray):
        raise ValueError(f"its data is a {type(value).__name__}, not a numpy array")
    _, shape, dtype, fortran_order, raw = value.state
    if not isinstance(dtype, _PickledDtype) or dtype.arguments[:1] not in (("u1",), (b"u1",)):
        raise ValueError("its data is not a uint8 array")
    if not isinstance(raw, bytes) or not all(isinstance(size, int) for size in shape):
        raise ValueError(f"its data array has shape {shape!r} and {type(raw).__name__} contents")
    return np.frombuffer(raw, np.uint8).reshape(shape, order="F" if fortran_order else "C").copy()  # writable


def _unpickle_batch(raw: bytes, source: Path | str) -> dict[str, Any]:
    """One CIFAR batch (a pickled dict, with bytes keys in the original Python 2 files) with str keys; whether
    from the md5-verified archive or from files found in a data folder, only the batch format is unpickled."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # a damaged protocol-0 string's escapes
            _check_memo_indices(raw)
            batch = _CifarUnpickler(raw, source).load()
        batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
        data = _uint8_array(batch["data"]).reshape(-1, 3, 32, 32)
        return {"data": data, "labels": _checked_labels(np.asarray(batch["labels"]), len(data), source)}
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, KeyError, ValueError, TypeError, IndexError, OverflowError) as error:
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
    return {name: _unpickle_batch(raw, f"{archive}:{_CIFAR_FOLDER}/{name}") for name, raw in members.items()}


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


def open_image(path: Path | io.BytesIO, name: str | None = None, formats: tuple[str, ...] | None = None):
    """An image file (or an image's bytes, called ``name`` in messages) with its pixels decoded; ``formats`` limits
    the formats tried (Pillow's names, e.g. ("PNG",)). One over Pillow's decompression-bomb limit
    (``PIL.Image.MAX_IMAGE_PIXELS``, where Pillow would only warn as well as where it raises) is refused before its
    pixels are decoded, and a file Pillow cannot read is a DataError that names it."""
    from PIL import Image

    label = path if name is None else name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path, formats=formats)
            image.load()
            return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        counted = re.search(r"\((\d+) pixels\)", str(error))  # Pillow's message is the one place that counts them
        size = f"{int(counted.group(1)):,} pixels" if counted else "more pixels than allowed"
        raise DataError(
            f"{label} has {size}, over the limit of {Image.MAX_IMAGE_PIXELS:,} pixels that guards against "
            "decompression bombs; shrink the image, or raise PIL.Image.MAX_IMAGE_PIXELS in Python if you trust it"
        ) from error
    except (OSError, ValueError, EOFError, SyntaxError) as error:  # OSError: UnidentifiedImageError; SyntaxError: a broken PNG
        raise DataError(f"{label} cannot be read as an image ({error}); fix or remove it") from error


def _image_size(value: Any) -> tuple[int, int]:
    """(height, width) from an int or a pair."""
    size = (value, value) if isinstance(value, int) else tuple(value)
    if len(size) != 2 or not all(isinstance(side, int) and side > 0 for side in size):
        raise DataError(f"image_size must be a positive int or [height, width]; got {value!r}")
    return size


def load_image_folder(
    request: Request, image_size: int | list[int] | None = None, test_size: int | float | None = None,
    stream: bool | None = None,
) -> Dataset:
    """Every image under a folder, as float32 (C, H, W) in [0, 1].

    Images in sub-folders are labelled by their top sub-folder, classes sorted alphabetically. Every image takes
    the mode (grey: 1 channel, else RGB) of the first one. Images must all have one size, or ``image_size``
    (height, width) is given: then every image of another size is resampled to it (bilinear, like
    torchvision's ``Resize``) and a note says how many were. The ``preprocessing`` of an earlier load re-applies
    its size, mode and class names. A folder whose float32 items would exceed the streaming threshold (see
    ``streaming``; ``stream`` overrides the choice) is decoded once into a cache beside it and read batch by batch
    (``streamed_images``).
    """
    from PIL import Image

    root = Path(request.name).expanduser()
    files = sorted(path for path in root.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
    if not files:
        raise DataError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    classes_of = [path.relative_to(root).parts[0] if path.parent != root else None for path in files]
    if None in classes_of and any(classes_of):
        raise DataError(f"{root} mixes loose images with class sub-folders; move the loose images into a sub-folder")

    # the preprocessing of an earlier load of a folder (a run's data may have been of another kind)
    previous = request.preprocessing if (request.preprocessing or {}).get("kind") == "image-folder" else {}
    if previous:
        size, mode, reason = tuple(previous["image_size"]), previous["mode"], "the size the model was trained on"
    else:
        first = open_image(files[0])
        size, reason = (_image_size(image_size), "data.image_size") if image_size is not None else (None, "")
        mode = "L" if first.mode in _GREY_MODES else "RGB"
    class_names, labels = None, None
    if any(classes_of):
        class_names = previous.get("class_names") or sorted(set(classes_of))
        unknown = sorted(set(classes_of) - set(class_names))
        if unknown:
            raise DataError(f"{root} has class folders {', '.join(unknown)} unknown to the model's classes {class_names}")
        index = {name: position for position, name in enumerate(class_names)}
        labels = torch.tensor([index[name] for name in classes_of], dtype=torch.int64)

    planned = size or (first.height, first.width)
    if should_stream(stream, len(files) * (1 if mode == "L" else 3) * planned[0] * planned[1] * 4):
        return _streamed_folder(request, root, files, mode, planned, size is not None, labels, class_names, test_size, reason)
    pixels, sizes = [], []  # sizes: (height, width) of each image as read
    for path in files:
        image = open_image(path).convert(mode)
        sizes.append((image.height, image.width))
        if size is not None and sizes[-1] != size:
            image = image.resize((size[1], size[0]), Image.BILINEAR)
        pixels.append(np.asarray(image, dtype=np.uint8))
    if size is None:
        _check_one_size(root, files, sizes)
        size = sizes[0]
    resized = sum(1 for read in sizes if read != size)
    if resized:
        log.info("resized %d of %d images of %s to %dx%d pixels (%s)", resized, len(files), root, size[1], size[0], reason)
    height, width = size
    pixels = np.stack(pixels)
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


def _streamed_folder(request: Request, root: Path, files: list[Path], mode: str, size: tuple[int, int], resize: bool, labels,
                     class_names, test_size, reason: str) -> Dataset:
    """``load_image_folder``'s dataset read batch by batch from the folder's decoded cache."""
    from autoencoders.data.streamed_images import cached_images

    file, resized = cached_images(root, files, mode, size, resize)
    if resized:
        log.info("resized %d of %d images of %s to %dx%d pixels (%s)", resized, len(files), root, size[1], size[0], reason)
    splits = dict(zip(("train", "val", "test"), three_way_split(len(files), request.seed, request.val_size, test_size)))
    return Dataset(
        name=request.name,
        **{name: Rows(file, index.numpy(), scale=255.0) for name, index in splits.items()},
        **{f"{name}_labels": None if labels is None else labels[index] for name, index in splits.items()},
        item_shape=file.row_shape,
        value_range=(0.0, 1.0),
        num_classes=len(class_names) if class_names else 0,
        description=f"{len(files)} images from {root}" + (f", {len(class_names)} classes" if class_names else "") + ", read batch by batch",
        preprocessing={"kind": "image-folder", "image_size": list(size), "mode": mode, "class_names": class_names},
        class_names=class_names,
    )


def _check_one_size(root: Path, files: list[Path], sizes: list[tuple[int, int]]) -> None:
    """Refuse images of several sizes (height, width), naming one of the most common size and one of another."""
    counts = Counter(sizes).most_common()
    if len(counts) == 1:
        return
    common = counts[0][0]
    example, odd = files[sizes.index(common)], next(index for index, read in enumerate(sizes) if read != common)
    listed = ", ".join(f"{count} of {width}x{height}" for (height, width), count in counts[:3])
    raise DataError(
        f"{root} holds images of {len(counts)} sizes ({listed}{', ...' if len(counts) > 3 else ''}), e.g. "
        f"{example.relative_to(root)} is {common[1]}x{common[0]} pixels and {files[odd].relative_to(root)} is "
        f"{sizes[odd][1]}x{sizes[odd][0]}; make them one size, or have every image resized as it is loaded with "
        f"--set 'data.image_size=[{common[0]}, {common[1]}]' ([height, width]; here the most common size)"
    )


_ARRAY_KIND = "divide"
# what numpy raises for a damaged .npy header (it parses the header's dict with ast.literal_eval, whose tokenizer
# raises TokenError on an unclosed bracket)
_HEADER_ERRORS = (ValueError, EOFError, SyntaxError, TypeError, tokenize.TokenError, RecursionError)


def read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file's array of numbers. It is mapped from the file before it is copied, so a header that
    promises more data than the file holds is refused before anything is allocated; object arrays (pickles)
    are never loaded."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, *_HEADER_ERRORS) as error:
        raise DataError(
            f"{path} cannot be read as a .npy array ({error}); it may be cut short or not written by numpy.save: "
            "save the array again with numpy.save (numbers only)"
        ) from error
    if not isinstance(mapped, np.ndarray):  # np.load opens .npz archives as well
        mapped.close()
        raise DataError(f"{path} is a .npz archive, not a .npy array; save one array with numpy.save")
    _check_numbers(mapped.dtype, mapped.shape, path)
    return np.array(mapped)  # a copy in memory: the file is not held open


def _check_numbers(dtype: np.dtype, shape: tuple[int, ...], source: Any) -> None:
    if dtype.kind not in NUMBER_KINDS:
        raise DataError(f"{source} holds {dtype} values; save numbers (bool, integer or float) with numpy.save")
    if 0 in shape:
        raise DataError(f"{source} holds no items (its shape is {shape}); save an array of at least one item")


def read_npy_bytes(data: bytes, source: str = "the .npy bytes") -> np.ndarray:
    """The array of numbers in the bytes of a ``.npy`` file (an HTTP request's body): its header is read first,
    and an array whose header promises other than the bytes that follow it is refused before anything is
    allocated; object arrays (pickles) are never loaded."""
    stream = io.BytesIO(data)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(stream)
        if version not in readers:
            raise ValueError(f"version {version[0]}.{version[1]} is not read here")
        shape, fortran_order, dtype = readers[version](stream)
    except _HEADER_ERRORS as error:
        raise DataError(
            f"{source} cannot be read as a .npy array ({str(error)[:200]}); send the bytes numpy.save writes (numbers only)"
        ) from error
    _check_numbers(dtype, shape, source)
    count = int(np.prod(shape, dtype=object))
    if len(data) - stream.tell() != count * dtype.itemsize:
        raise DataError(
            f"{source}: its header promises an array of shape {shape} ({count * dtype.itemsize} bytes of {dtype}) but "
            f"{len(data) - stream.tell()} bytes follow it; send the whole file numpy.save writes"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=stream.tell())
    return array.reshape(shape, order="F" if fortran_order else "C").copy()


def load_array(request: Request, test_size: int | float | None = None, stream: bool | None = None) -> Dataset:
    """The user's ``.npy`` array (N, ...) as N float32 items; uint8 is divided by 255, bool becomes {0, 1}.

    ``value_range`` is (0, 1) when every value lies there, else the observed (min, max). A large array (see
    ``streaming``; ``stream`` overrides the choice) is read from the file batch by batch instead of loaded.
    """
    path = Path(request.name).expanduser()
    file = npy_rows(path)
    previous = request.preprocessing if (request.preprocessing or {}).get("kind") == _ARRAY_KIND else None
    divisor = previous["divisor"] if previous else (255.0 if file.dtype == np.uint8 else 1.0)
    if should_stream(stream, file.rows * file.row_bytes // file.dtype.itemsize * 4):
        return _streamed_array(request, file, divisor, test_size)
    array = read_npy(path)
    items = torch.from_numpy(finite_float32(array, path)).div_(divisor)
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


def _streamed_array(request: Request, file, divisor: float, test_size: int | float | None) -> Dataset:
    """``load_array``'s dataset with its splits read from the file batch by batch (one pass checks the values)."""
    low, high, binary = value_summary(file, divisor)
    train, val, test = three_way_split(file.rows, request.seed, request.val_size, test_size)
    split = {name: Rows(file, index.numpy(), scale=divisor) for name, index in (("train", train), ("val", val), ("test", test))}
    return Dataset(
        name=request.name, **split,
        train_labels=None, val_labels=None, test_labels=None,
        item_shape=file.row_shape,
        value_range=(0.0, 1.0) if low >= 0.0 and high <= 1.0 else (low, high),
        num_classes=0,
        description=f"{file.rows} items of shape {file.row_shape} from {file.path}, read batch by batch",
        binary=binary,
        preprocessing={"kind": _ARRAY_KIND, "divisor": divisor},
    )
