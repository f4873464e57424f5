"""Denoising: a model trained to undo corruption (``dae``; any family whose config has a ``noise`` field)
maps noisy items to clean ones.

    from autoencoders.uses.denoise import denoise, denoise_path
    clean = denoise(model, noisy)                        # tensors in, tensors out
    denoise_path("runs/dae", "noisy/", "clean/")         # image files, a folder of them, or a .npy array

Items are read at the model's own size: an image of another size is refused rather than resized, since
resampling would blur the very detail a denoiser is asked to keep. Outputs keep the inputs' names (a folder of
images gives a folder of PNG files) or their array layout (a uint8 ``.npy`` gives a uint8 ``.npy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from autoencoders.data.errors import DataError
from autoencoders.data.images import IMAGE_SUFFIXES

DENOISE_BATCH = 1024


def is_denoising(model) -> bool:
    """Whether ``model`` was trained to remove corruption (its config names the noise it was trained on)."""
    return hasattr(model.config, "noise")


def check_denoising(model) -> None:
    if not is_denoising(model):
        raise ValueError(
            f"a {model.name!r} model was not trained to remove noise; train a denoising model, e.g. "
            "`autoencoders train dae --data mnist --noise gaussian --noise-level 0.3 --out runs/dae`"
        )
    if model.uses_labels:
        raise ValueError(f"{model.name!r} needs class labels to encode; denoising takes unlabelled items")


@torch.no_grad()
def denoise(model, noisy: Tensor, batch_size: int = DENOISE_BATCH) -> Tensor:
    """The model's clean estimate of each noisy item, clipped to the model's value range."""
    check_denoising(model)
    shape = tuple(model.config.input_shape)
    if tuple(noisy.shape[1:]) != shape:
        raise ValueError(f"the model takes items of shape {shape}; got a batch of shape {tuple(noisy.shape)}")
    model.eval()
    low, high = model.config.value_range
    parts = [model.reconstruct(noisy[start : start + batch_size].float()) for start in range(0, len(noisy), batch_size)]
    return torch.cat(parts).clamp(low, high)


def add_gaussian_noise(x: Tensor, sigma: float, value_range: tuple[float, float], seed: int = 0) -> Tensor:
    """``x`` plus Gaussian noise of standard deviation ``sigma`` times the value range's width (not clipped).

    The same scaling as the DAE's training corruption, so σ = 0.3 on [0, 1] images means what ``noise_level
    0.3`` means in training.
    """
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x + sigma * (value_range[1] - value_range[0]) * noise


# -- reading and writing items -----------------------------------------------------------------------------
@dataclass
class Items:
    """Items read from files, with what writing them back in the same form needs."""

    values: Tensor  # float32 (N, *input_shape) in the model's value range
    names: list[str]  # one relative file name per item (images) or an index (arrays)
    kind: str  # "images" or "array"
    array_shape: tuple[int, ...] | None = None  # arrays: the shape as read (a single item may lack the N axis)
    array_dtype: str | None = None  # arrays: "uint8" arrays are written back as uint8


def _is_image_model(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and shape[0] in (1, 3)


def _to_unit_range(values: Tensor, value_range: tuple[float, float]) -> Tensor:
    low, high = value_range
    return ((values - low) / (high - low)).clamp(0.0, 1.0)


def _read_image(path: Path, shape: tuple[int, ...], value_range: tuple[float, float]) -> Tensor:
    from PIL import Image, UnidentifiedImageError

    channels, height, width = shape
    try:
        with Image.open(path) as image:
            image.load()
            if (image.height, image.width) != (height, width):
                raise DataError(
                    f"{path} is {image.width}x{image.height} pixels; the model takes {width}x{height}. Resize it "
                    "first (resampling would blur what the denoiser should restore)"
                )
            pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{path} cannot be read as an image ({error})") from error
    unit = torch.from_numpy(pixels / 255.0).reshape(height, width, channels).permute(2, 0, 1)
    low, high = value_range
    return unit * (high - low) + low


def read_items(path: str | Path, shape: tuple[int, ...], value_range: tuple[float, float]) -> Items:
    """An image file, a folder of images (searched recursively) or a ``.npy`` array, as model inputs.

    Arrays hold (N, *shape) items, or one item of ``shape``, or (N, H, W) for one-channel images; uint8
    arrays are pixels 0..255, other arrays are taken to be in the model's value range already.
    """
    path = Path(path).expanduser()
    shape = tuple(shape)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.suffix == ".npy":
        return _read_array(path, shape, value_range)
    if not _is_image_model(shape):
        raise DataError(f"the model takes items of shape {shape}, not images: give a .npy array of shape (N, {', '.join(map(str, shape))})")
    if path.is_dir():
        files = sorted(file for file in path.rglob("*") if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        names = [str(file.relative_to(path)) for file in files]
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        files, names = [path], [path.name]
    else:
        raise DataError(f"{path} is neither an image ({', '.join(sorted(IMAGE_SUFFIXES))}), a folder of images nor a .npy array")
    values = torch.stack([_read_image(file, shape, value_range) for file in files])
    return Items(values, names, "images")


def _read_array(path: Path, shape: tuple[int, ...], value_range: tuple[float, float]) -> Items:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path} cannot be read as a .npy array ({error})") from error
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{path} holds {array.dtype} values; expected numbers")
    values = torch.from_numpy(array.astype(np.float32))
    if array.dtype == np.uint8:
        low, high = value_range
        values = values / 255.0 * (high - low) + low
    if tuple(values.shape) == shape:
        values = values.unsqueeze(0)
    elif len(shape) == 3 and shape[0] == 1 and values.dim() == 3 and tuple(values.shape[1:]) == shape[1:]:
        values = values.unsqueeze(1)
    if tuple(values.shape[1:]) != shape:
        raise DataError(f"{path} holds an array of shape {array.shape}; the model takes items of shape {shape}, so give (N, {', '.join(map(str, shape))})")
    if not torch.isfinite(values).all():
        raise DataError(f"{path} contains NaN or infinite values")
    names = [f"{index:05d}" for index in range(len(values))]
    return Items(values, names, "array", tuple(array.shape), str(array.dtype))


def write_items(items: Items, values: Tensor, output: str | Path, value_range: tuple[float, float]) -> list[Path]:
    """Write ``values`` (one per item read) to ``output``: a ``.npy`` array, one image file, or a folder of PNGs."""
    from PIL import Image

    output = Path(output)
    unit = _to_unit_range(values.detach().cpu().float(), value_range)
    if output.suffix == ".npy":
        output.parent.mkdir(parents=True, exist_ok=True)
        if items.kind == "array":
            array = values.detach().cpu().float().reshape(items.array_shape).numpy()
            if items.array_dtype == "uint8":
                array = (unit.reshape(items.array_shape).numpy() * 255).round().astype(np.uint8)
        else:
            array = values.detach().cpu().float().numpy()
        np.save(output, array)
        return [output]
    if not _is_image_model(tuple(values.shape[1:])):
        raise DataError(f"items of shape {tuple(values.shape[1:])} are not images: give -o a .npy file")
    pixels = (unit.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    if output.suffix.lower() in IMAGE_SUFFIXES:
        if len(pixels) != 1:
            raise DataError(f"the input holds {len(pixels)} items but {output} names one image: give a folder or a .npy file")
        targets = [output]
    elif output.suffix:
        raise DataError(f"-o {output}: give a folder, an image file ({', '.join(sorted(IMAGE_SUFFIXES))}) or a .npy file")
    else:
        targets = [output / Path(name).with_suffix(".png") for name in items.names]
    for target, item in zip(targets, pixels):
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(item[..., 0] if item.shape[-1] == 1 else item).save(target)
    return targets


def denoise_path(run: str | Path, input_path: str | Path, output: str | Path) -> list[Path]:
    """Denoise the items in ``input_path`` with the denoising model saved in ``run``; returns the files written."""
    from autoencoders.io import load

    model = load(run)
    check_denoising(model)
    value_range = tuple(model.config.value_range)
    items = read_items(input_path, tuple(model.config.input_shape), value_range)
    return write_items(items, denoise(model, items.values), output, value_range)
