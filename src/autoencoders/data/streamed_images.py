"""A folder of images larger than memory: decoded once into a uint8 cache beside it, then streamed.

The images (already listed, checked and given their mode, size and labels by ``images.load_image_folder``) are
decoded one by one into ``.FOLDER.autoencoders-cache/images-KEY.u8`` (KEY: the mode, size and resizing): N x C x H x W bytes, a quarter of what the
float32 items would take. The cache records a checksum of the folder's listing (every image's relative path,
size and modification time, in order) and of the decoding settings; a cache whose checksum does not match its
folder is rebuilt, never used. Items are read from it batch by batch (``streaming.Rows``), divided by 255.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from autoencoders.data.errors import DataError
from autoencoders.data.streaming import RowFile, cache_folder
from autoencoders.files import atomic_write_json, atomic_writer

log = logging.getLogger("autoencoders")


def folder_checksum(root: Path, files: list[Path], settings: dict) -> str:
    """sha256 of the decoding ``settings`` and of every image's relative path, size and modification time."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in files:
        status = os.stat(path)
        digest.update(f"{path.relative_to(root)}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cached_images(root: Path, files: list[Path], mode: str, size: tuple[int, int], resize: bool) -> tuple[RowFile, int]:
    """The images decoded as uint8 (C, H, W) rows of a cache file (built when missing or not matching the
    folder), and how many of them had another size and were resampled (``resize``; else they are refused)."""
    settings = {"mode": mode, "size": list(size), "resize": resize, "version": 1}
    checksum = folder_checksum(root, files, settings)
    shape = (1 if mode == "L" else 3, *size)
    folder = cache_folder(root)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]  # one cache per setting
    values, record = folder / f"images-{key}.u8", folder / f"images-{key}.json"
    try:
        saved = json.loads(record.read_text())
    except (OSError, ValueError):
        saved = None
    expected_bytes = len(files) * int(np.prod(shape))
    if isinstance(saved, dict) and saved.get("checksum") == checksum and values.exists() and values.stat().st_size == expected_bytes:
        return RowFile(values, 0, np.uint8, shape, len(files)), int(saved.get("resized", 0))
    if saved is not None:
        log.info("the image cache of %s does not match the folder; rebuilding it", root)
    resized = _decode_into(root, values, files, mode, size, resize)
    if folder_checksum(root, files, settings) != checksum:
        raise DataError(f"{root} changed while its images were being decoded into the cache; load it again once it is complete")
    atomic_write_json(record, {"checksum": checksum, "images": len(files), "resized": resized})
    return RowFile(values, 0, np.uint8, shape, len(files)), resized


def _decode_into(root: Path, values: Path, files: list[Path], mode: str, size: tuple[int, int], resize: bool) -> int:
    from PIL import Image

    from autoencoders.data.images import open_image
    from autoencoders.progress import track

    resized = 0
    with atomic_writer(values) as handle:
        for path in track(files, len(files), f"decoding {len(files)} images into their cache"):
            image = open_image(path).convert(mode)
            if (image.height, image.width) != size:
                if not resize:
                    raise DataError(
                        f"{root} holds images of several sizes: {path.relative_to(root)} is {image.width}x{image.height} "
                        f"pixels, {files[0].relative_to(root)} {size[1]}x{size[0]}; make them one size, or have every image "
                        f"resized as it is loaded with --set 'data.image_size=[{size[0]}, {size[1]}]'"
                    )
                image = image.resize((size[1], size[0]), Image.BILINEAR)
                resized += 1
            pixels = np.asarray(image, dtype=np.uint8)
            handle.write(np.ascontiguousarray(pixels if mode == "L" else pixels.transpose(2, 0, 1)).tobytes())
    return resized
