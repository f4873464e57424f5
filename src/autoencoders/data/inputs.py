"""A user's files as a trained model's inputs, and the model's outputs written back as files.

Every command that takes items from the user (``denoise``, ``compress``, ``detect``, ``interpolate --from``,
``style-transfer --source``) reads them here, the same way:

- an image file, a folder of images (searched recursively, sorted by path), or a ``.npy`` array;
- images take the model's channels (grey or RGB) and its value range; images of another size (a folder may
  mix sizes) are refused, naming one and how many there are, or resampled to the model's size where the
  caller allows it (``resize=True``: scoring or interpolating tolerates it, denoising and compression do not,
  since resampling blurs what they should keep), and a note on the ``autoencoders`` logger says how many were;
- a uint8 array holds pixels 0..255; any other numeric array is in the model's value range already. An
  array holds (N, *item_shape) items, or one item without the N axis; a one-channel model also takes
  (N, H, W) and (H, W).

``write_items`` writes outputs in the form the inputs came in: a folder of PNGs named like the inputs, one
image file, or a ``.npy`` array in the input array's layout and dtype.

``stream_items`` gives the same items a chunk at a time, for inputs larger than memory (``compress``): their
count and names first, then the items as they are read (arrays row range by row range, images file by file).
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from autoencoders.data.errors import DataError
from autoencoders.data.images import IMAGE_SUFFIXES, open_image, read_npy
from autoencoders.data.streaming import RowFile, finite_float32, npy_rows
from autoencoders.files import atomic_write_bytes
from autoencoders.progress import track

log = logging.getLogger("autoencoders")
_SUFFIXES = ", ".join(sorted(IMAGE_SUFFIXES))


@dataclass
class Items:
    """Items read from files, with what writing results back in the same form needs."""

    values: Tensor  # float32 (N, *item_shape) in the model's value range
    names: list[str]  # per item: its image's path relative to the folder given, or "<array stem>-<index>"
    kind: str  # "images" or "array" (one .npy source)
    array_shape: tuple[int, ...] | None = None  # arrays: the shape as read (a single item may lack the N axis)
    array_dtype: str | None = None  # arrays: "uint8" arrays are written back as uint8


def is_image_shape(item_shape: Sequence[int]) -> bool:
    return len(item_shape) == 3 and item_shape[0] in (1, 3)


def read_items(
    sources: str | Path | Sequence[str | Path],
    item_shape: Sequence[int],
    value_range: Sequence[float],
    resize: bool = False,
) -> Items:
    """The items of image files, folders of images and ``.npy`` arrays, in the order given."""
    listed = _list_sources(sources, item_shape)
    item_shape, value_range = tuple(item_shape), (float(value_range[0]), float(value_range[1]))
    pieces: list[Tensor | list[Path]] = []  # per source: an array's items, or its image files (read below)
    names: list[str] = []
    array_info: tuple[tuple[int, ...], str] | None = None
    for path, files, file_names in listed:
        if files is None:
            values, array_info = read_array(path, item_shape, value_range)
            pieces.append(values)
            names += [f"{path.stem}-{index:05d}" for index in range(len(values))]
        else:
            pieces.append(files)
            names += file_names
    if len(listed) == 1 and array_info is not None:
        return Items(pieces[0], names, "array", *array_info)
    files = [file for piece in pieces if isinstance(piece, list) for file in piece]
    read = [_read_image(file, item_shape, value_range, resize) for file in track(files, len(files), f"reading {len(files)} images")]
    _note_resized(files, [size for _, size in read], item_shape)
    images = iter([item for item, _ in read])
    parts = [piece if isinstance(piece, Tensor) else torch.stack([next(images) for _ in piece]) for piece in pieces]
    return Items(torch.cat(parts), names, "images")


def _list_sources(sources: str | Path | Sequence[str | Path], item_shape: Sequence[int]) -> list[tuple[Path, list[Path] | None, list[str]]]:
    """Per source given: its path, and its image files with their names (None and [] for a ``.npy`` array)."""
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
    if not sources:
        raise DataError("no input given: name image files, folders of images or .npy arrays")
    item_shape = tuple(item_shape)
    listed: list[tuple[Path, list[Path] | None, list[str]]] = []
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(f"{path} does not exist")
        if path.suffix.lower() == ".npy" and path.is_file():
            listed.append((path, None, []))
            continue
        if not is_image_shape(item_shape):
            raise DataError(
                f"{path}: the model takes items of shape {item_shape}, not images; give a .npy array of shape "
                f"(N, {', '.join(map(str, item_shape))})"
            )
        if path.is_dir():
            files = folder_images(path)
            listed.append((path, files, [file.relative_to(path).as_posix() for file in files]))
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            listed.append((path, [path], [path.name]))
        else:
            raise DataError(f"{path} is neither an image ({_SUFFIXES}), a folder of images nor a .npy array")
    return listed


@dataclass
class ItemStream:
    """The items of the user's files read a chunk at a time, for inputs larger than memory: how many there are,
    their names and their kind are ``read_items``'s, known before any item is read. Arrays of (N, *item_shape)
    items (or (N, H, W) for a one-channel model) are read row range by row range (``streaming.RowFile``), image
    files one chunk of files at a time; an array of another shape (one item without the N axis) is read whole."""

    pieces: list[tuple[Path, RowFile | list[Path] | None, int]]  # per source: path, rows or image files, items
    names: list[str]
    kind: str  # "images" or "array", as ``Items.kind``
    item_shape: tuple[int, ...]
    value_range: tuple[float, float]

    @property
    def count(self) -> int:
        return sum(count for _, _, count in self.pieces)

    def chunks(self, size: int) -> Iterator[tuple[Tensor, list[str]]]:
        """(items, their names) ``size`` items at a time (the last chunk may hold fewer), in order."""
        pending: list[Tensor] = []
        held = done = 0
        for part in (part for piece in self.pieces for part in self._parts(piece, size)):
            while len(part):
                taken = part[: size - held]
                pending.append(taken)
                held, part = held + len(taken), part[len(taken):]
                if held == size:
                    yield torch.cat(pending), self.names[done : done + held]
                    pending, done, held = [], done + held, 0
        if pending:
            yield torch.cat(pending), self.names[done : done + held]

    def _parts(self, piece: tuple[Path, RowFile | list[Path] | None, int], size: int) -> Iterator[Tensor]:
        path, rows, count = piece
        if rows is None:
            yield read_array(path, self.item_shape, self.value_range)[0]
        elif isinstance(rows, RowFile):
            for start in range(0, count, size):
                stop = min(start + size, count)
                # named with its rows, so that an index in a message (the first NaN) can be found in the file
                yield items_of_array(rows.read(np.arange(start, stop)), self.item_shape, self.value_range, f"{path} (rows {start} to {stop - 1})")
        else:
            for start in range(0, count, size):
                yield torch.stack([_read_image(file, self.item_shape, self.value_range, False)[0] for file in rows[start : start + size]])


def stream_items(sources: str | Path | Sequence[str | Path], item_shape: Sequence[int], value_range: Sequence[float]) -> ItemStream:
    """The items ``read_items`` would read, as an ``ItemStream`` (images of another size are refused)."""
    listed = _list_sources(sources, item_shape)
    item_shape = tuple(item_shape)
    pieces: list[tuple[Path, RowFile | list[Path] | None, int]] = []
    names: list[str] = []
    for path, files, file_names in listed:
        if files is not None:
            pieces.append((path, files, len(files)))
            names += file_names
            continue
        try:
            rows = npy_rows(path)
        except DataError:  # one item of one axis, or a file read_array refuses with its own message
            rows = None
        rows_are_items = rows is not None and (
            rows.row_shape == item_shape or (len(item_shape) == 3 and item_shape[0] == 1 and rows.row_shape == item_shape[1:])
        )
        count = rows.rows if rows_are_items else len(read_array(path, item_shape, value_range)[0])
        pieces.append((path, rows if rows_are_items else None, count))
        names += [f"{path.stem}-{index:05d}" for index in range(count)]
    kind = "array" if len(listed) == 1 and listed[0][1] is None else "images"
    return ItemStream(pieces, names, kind, item_shape, (float(value_range[0]), float(value_range[1])))


def folder_images(path: Path) -> list[Path]:
    """The image files of a folder, searched recursively, sorted by path; a folder with none is refused."""
    files = sorted(file for file in path.rglob("*") if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{path} holds no images ({_SUFFIXES})")
    return files


def read_image(path: str | Path, item_shape: Sequence[int], value_range: Sequence[float], resize: bool = False) -> Tensor:
    """One image file as a (C, H, W) item in ``value_range``, in the model's channels; one of another size is
    refused, or with ``resize`` resampled to the model's size (with a note)."""
    item, size = _read_image(Path(path), item_shape, value_range, resize)
    _note_resized([Path(path)], [size], item_shape)
    return item


def _read_image(
    path: Path, item_shape: Sequence[int], value_range: Sequence[float], resize: bool
) -> tuple[Tensor, tuple[int, int]]:
    """An image file as an item in the model's channels and size, with its own (width, height)."""
    if not is_image_shape(item_shape):
        raise DataError(f"the model takes items of shape {tuple(item_shape)}; only 1- and 3-channel image models read image files")
    with open_image(path) as image:
        return _image_item(image, path, item_shape, value_range, resize)


def image_of_bytes(data: bytes, name: str, item_shape: Sequence[int], value_range: Sequence[float],
                   formats: tuple[str, ...] | None = None) -> Tensor:
    """An image's bytes (an HTTP request's body, called ``name`` in messages; ``formats``: the image formats tried)
    as one (C, H, W) item in ``value_range`` and the model's channels; an image of another size is refused."""
    if not is_image_shape(item_shape):
        raise DataError(f"the model takes items of shape {tuple(item_shape)}, not images; send numbers")
    with open_image(io.BytesIO(data), name, formats) as image:
        return _image_item(image, name, item_shape, value_range, resize=False)[0]


def _image_item(image, name, item_shape: Sequence[int], value_range: Sequence[float], resize: bool) -> tuple[Tensor, tuple[int, int]]:
    """An opened image as an item in the model's channels and size, with its own (width, height)."""
    from PIL import Image

    channels, height, width = item_shape
    size = image.size
    if size != (width, height) and not resize:
        raise DataError(
            f"{name} is {size[0]}x{size[1]} pixels; the model takes {width}x{height}. Resize it (and any other "
            f"image of another size) to {width}x{height} first: this command does not resample images, which "
            "would blur the detail it should keep"
        )
    image = image.convert("L" if channels == 1 else "RGB")
    if size != (width, height):
        image = image.resize((width, height), Image.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8).reshape(height, width, channels).transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(pixels_in_range(pixels, value_range))), size


def pixels_in_range(pixels: np.ndarray, value_range: Sequence[float]) -> np.ndarray:
    """Pixels 0..255 as float32 values in ``value_range``; in numpy, not torch: a few microseconds instead of tens
    for one small image (serve)."""
    low, high = value_range
    return pixels.astype(np.float32) / np.float32(255.0) * np.float32(high - low) + np.float32(low)


def _note_resized(files: list[Path], sizes: list[tuple[int, int]], item_shape: Sequence[int]) -> None:
    """Note how many images (their (width, height) as read) were resampled to the model's size."""
    model = f"{item_shape[2]}x{item_shape[1]}"
    other = [index for index, size in enumerate(sizes) if size != (item_shape[2], item_shape[1])]
    if not other:
        return
    first, size = files[other[0]], "x".join(map(str, sizes[other[0]]))
    if len(files) == 1:
        log.info("resized %s from %s to the model's %s pixels", first, size, model)
    else:
        log.info("resized %d of %d images to the model's %s pixels (%s was %s)", len(other), len(files), model, first, size)


def read_array(path: str | Path, item_shape: Sequence[int], value_range: Sequence[float]) -> tuple[Tensor, tuple[tuple[int, ...], str]]:
    """A ``.npy`` array as (N, *item_shape) float32 items, with the array's own shape and dtype."""
    path = Path(path)
    array = read_npy(path)
    return items_of_array(array, item_shape, value_range, path), (tuple(array.shape), str(array.dtype))


def items_of_array(array: np.ndarray, item_shape: Sequence[int], value_range: Sequence[float], source) -> Tensor:
    """An array of numbers (from a .npy file or a request, called ``source`` in messages) as (N, *item_shape)
    float32 items: uint8 holds pixels 0..255, anything else is in the model's value range already; NaN and
    infinities are refused."""
    item_shape = tuple(item_shape)
    values = torch.from_numpy(finite_float32(array, source))
    if array.dtype == np.uint8:
        low, high = value_range
        values = values / 255.0 * (high - low) + low
    if tuple(values.shape) == item_shape:
        values = values.unsqueeze(0)
    elif len(item_shape) == 3 and item_shape[0] == 1 and tuple(values.shape) == item_shape[1:]:
        values = values[None, None]
    elif len(item_shape) == 3 and item_shape[0] == 1 and values.dim() == 3 and tuple(values.shape[1:]) == item_shape[1:]:
        values = values.unsqueeze(1)
    if tuple(values.shape[1:]) != item_shape:
        raise DataError(
            f"{source} holds an array of shape {array.shape}; the model takes items of shape {item_shape}, so give "
            f"(N, {', '.join(map(str, item_shape))})"
        )
    return values


def write_items(values: Tensor, output: str | Path, value_range: Sequence[float], like: Items | None = None) -> list[Path]:
    """Write ``values`` (N, *item_shape) to ``output``: a ``.npy`` array, one image file, or a folder of PNGs;
    returns the paths written. With ``like`` (the items they came from), a folder keeps the inputs' names and
    an array the input array's layout and dtype. Every file is written atomically."""
    output = Path(output)
    low, high = value_range
    values = values.detach().cpu().float()
    unit = ((values - low) / (high - low)).clamp(0.0, 1.0)
    if output.suffix.lower() == ".npy":
        if like is not None and like.kind == "array" and like.array_dtype == "uint8":
            array = (unit.reshape(like.array_shape).numpy() * 255).round().astype(np.uint8)
        elif like is not None and like.kind == "array":
            array = values.reshape(like.array_shape).numpy()
        else:
            array = values.numpy()
        buffer = io.BytesIO()
        np.save(buffer, array)
        atomic_write_bytes(output, buffer.getvalue())
        return [output]
    targets = image_targets(output, len(values), tuple(values.shape[1:]), like.names if like is not None and like.kind == "images" else None)
    for target, item in track(list(zip(targets, image_pixels(values, value_range))), len(targets), f"writing {len(targets)} images"):
        atomic_write_bytes(target, image_bytes(item, target.suffix))
    return targets


def image_targets(output: Path, count: int, item_shape: tuple[int, ...], names: Sequence[str] | None = None) -> list[Path]:
    """The image files ``count`` items are written to under ``output``: one image file, or a folder of PNGs named
    like the inputs (``names``) or by number; refused when they are not images or two would share a file."""
    if not is_image_shape(item_shape):
        raise DataError(f"items of shape {item_shape} are not images: give -o a .npy file")
    if output.suffix.lower() in IMAGE_SUFFIXES:
        if count != 1:
            raise DataError(f"there are {count} items but {output} names one image: give a folder or a .npy file")
        return [output]
    if output.suffix:
        raise DataError(f"cannot write {output}: give a folder, an image file ({_SUFFIXES}) or a .npy file")
    if names is not None:
        targets = [output / Path(name).with_suffix(".png") for name in names]
    else:
        targets = [output / f"{index:06d}.png" for index in range(count)]
    clashes = [target for target, times in Counter(targets).items() if times > 1]
    if clashes:
        raise DataError(
            f"two items would be written to {clashes[0]} (their inputs' names differ only in their suffix); rename "
            "one of the inputs, or give -o a .npy file"
        )
    return targets


def image_bytes(pixels: np.ndarray, suffix: str) -> bytes:
    """uint8 pixels (H, W, C) as the bytes of an image file of the format ``suffix`` names (PNG when unknown)."""
    from PIL import Image

    buffer = io.BytesIO()
    image_format = Image.registered_extensions().get(suffix.lower(), "PNG")
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, format=image_format)
    return buffer.getvalue()


def image_pixels(values: Tensor, value_range: Sequence[float]) -> np.ndarray:
    """Items (N, C, H, W) in ``value_range`` as uint8 pixels (N, H, W, C), clipped to the range."""
    low, high = value_range
    unit = ((values.detach().cpu().float() - low) / (high - low)).clamp(0.0, 1.0)
    return (unit.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
