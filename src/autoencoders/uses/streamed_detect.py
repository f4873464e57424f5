"""``detect`` on data larger than memory: items scored chunk by chunk, every item's line written as it goes.

One loop serves both kinds of ``detect`` (a run, whose fitted detector takes items in the model's space, and a
saved detector, which takes a table's raw columns and scales them itself): ``score_streamed`` takes a
``StreamedItems``, items read in order from a file: a table's rows from its float32 cache
(``data.streamed_tables``), a ``.npy`` array's rows from the file itself (``streaming.npy_rows``), a folder's
images from their uint8 cache (``data.streamed_images``); chunks of ``CHUNK_ROWS`` items (fewer for large
items: at most ``streaming.CHUNK_BYTES`` of float32 a chunk).

Two passes. The first keeps every item's anomaly score, one float64 array (8 bytes an item: 50 MB for 6.25M
rows), so that the threshold, from a share of the scored items (``--top``) too, is the very quantile the
in-memory path takes. The second reads the items again and writes every item's line (id, anomaly_score,
outlier, and for tables top_feature_k/top_share_k from ``explain``) to every target (.csv blocks or .parquet
row groups, each through a temporary file renamed into place at the end), summing the flagged rows' shares for
the summary and picking up the ids of the worst items. Ids are the item's number, an image's path in its
folder, or a table's id column read beside the cache in chunks of the same size.

What is returned holds the flagged items only (every item's line is in the files) and the summary.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from autoencoders.data.errors import DataError
from autoencoders.data.streaming import CHUNK_BYTES, RowFile, should_stream
from autoencoders.progress import track
from autoencoders.uses.outputs import table_writer

log = logging.getLogger("autoencoders")

CHUNK_ROWS = 16384
SCORE_BATCH = 1024  # AnomalyDetector's default batch: chunks of a multiple of it score in the same batches as in memory


class FileItems:
    """The items of a ``RowFile``, converted by ``convert`` (raw rows -> float32 items) as they are read."""

    def __init__(self, file: RowFile, convert: Callable[[np.ndarray], Tensor]):
        self.file = file
        self.convert = convert

    def __len__(self) -> int:
        return self.file.rows

    def __getitem__(self, key) -> Tensor:
        index = np.arange(self.file.rows)[key] if isinstance(key, slice) else np.asarray(key, dtype=np.int64)
        return self.convert(self.file.read(index))


@dataclass
class StreamedItems:
    """Items of a file or folder too large for memory, read in order chunk by chunk."""

    source: Path
    items: Any  # len() and a slice or an index array give float32 items: ``streaming.Rows`` or ``FileItems``
    item_bytes: int  # of one float32 item
    columns: list[str] | None = None  # a table's columns: each row's top features are written beside its score
    id_chunks: Callable[[int], Iterator[Sequence]] | None = None  # the ids, chunk by chunk; None: the item's number

    def chunk_rows(self) -> int:
        rows = max(1, min(CHUNK_ROWS, CHUNK_BYTES // max(self.item_bytes, 1)))
        return rows - rows % SCORE_BATCH if rows > SCORE_BATCH else rows


def is_large(path: Path, item_shape: Sequence[int]) -> bool:
    """Whether ``detect`` streams ``path``: a table over the size at which training streams one
    (``streaming.STREAM_TABLE_ABOVE_BYTES``), a ``.npy`` array or a folder of images whose float32 items would
    take more than ``streaming.STREAM_ABOVE_BYTES``."""
    from autoencoders.data.inputs import folder_images
    from autoencoders.data.streaming import npy_rows

    if path.is_file() and path.suffix.lower() in (".csv", ".parquet", ".pq"):
        return should_stream(None, path.stat().st_size, table=True)
    item_bytes = 4 * math.prod(item_shape)
    if path.is_file() and path.suffix.lower() == ".npy":
        return should_stream(None, npy_rows(path).rows * item_bytes)
    return path.is_dir() and should_stream(None, len(folder_images(path)) * item_bytes)


def table_items(path: Path, columns: list, id_column: str | None, shift=0.0, scale=1.0) -> StreamedItems:
    """The rows of ``columns`` of a table, as ``(value - shift) / scale``, with ids from ``id_column`` (checked
    first: a bad name is one line naming the table's columns) or else the row number."""
    from autoencoders.data.streamed_tables import column_chunks, table_columns, table_rows

    if id_column is not None and id_column not in table_columns(path):
        raise DataError(f"{path} has no id column {id_column!r}; its columns: {', '.join(table_columns(path))}")
    rows = table_rows(path, list(columns), shift, scale)
    ids = None if id_column is None else (lambda size: column_chunks(path, id_column, size))
    return StreamedItems(path, rows, 4 * len(columns), [str(name) for name in columns], ids)


def model_items(path: Path, model_config: dict[str, Any]) -> StreamedItems:
    """A ``.npy`` array's or a folder's images as the model with ``model_config`` takes them (``array_items``,
    ``image_items``)."""
    opener = array_items if path.suffix.lower() == ".npy" else image_items
    return opener(path, model_config["input_shape"], model_config.get("value_range", (0.0, 1.0)))


def array_items(path: Path, item_shape: Sequence[int], value_range: Sequence[float]) -> StreamedItems:
    """The items of a ``.npy`` array, read from the file chunk by chunk and converted as ``inputs.read_items``
    converts a whole array (uint8 pixels to ``value_range``; NaN and infinities refused); ids are their index."""
    from autoencoders.data.inputs import items_of_array
    from autoencoders.data.streaming import npy_rows

    file, item_shape = npy_rows(path), tuple(item_shape)
    if file.row_shape != item_shape and not (item_shape[0] == 1 and file.row_shape == item_shape[1:]):
        raise DataError(
            f"{path} holds an array of shape {(file.rows, *file.row_shape)}; the model takes items of shape "
            f"{item_shape}, so give (N, {', '.join(map(str, item_shape))})"
        )

    def convert(raw: np.ndarray) -> Tensor:
        items = items_of_array(raw, item_shape, value_range, path)
        return items.reshape(len(raw), *item_shape)  # a chunk of one (H, W) item is (1, 1, H, W) too

    return StreamedItems(path, FileItems(file, convert), 4 * math.prod(item_shape))


def image_items(path: Path, item_shape: Sequence[int], value_range: Sequence[float]) -> StreamedItems:
    """The images of a folder, decoded once into their uint8 cache (``streamed_images``; images of another size
    resampled to the model's, as the in-memory path resamples them) and scaled to ``value_range`` as they are
    read; ids are their paths in the folder."""
    from autoencoders.data.inputs import folder_images, is_image_shape, pixels_in_range
    from autoencoders.data.streamed_images import cached_images

    if not is_image_shape(item_shape):
        raise DataError(f"{path}: the model takes items of shape {tuple(item_shape)}, not images; give a .npy array of such items")
    files = folder_images(path)
    channels, height, width = item_shape
    file, resized = cached_images(path, files, "L" if channels == 1 else "RGB", (height, width), resize=True)
    if resized:
        log.info("resized %d of %d images to the model's %dx%d pixels", resized, len(files), width, height)

    def convert(raw: np.ndarray) -> Tensor:
        return torch.from_numpy(pixels_in_range(raw, value_range))

    names = [file.relative_to(path).as_posix() for file in files]

    def ids(size: int) -> Iterator[list[str]]:
        return (names[start : start + size] for start in range(0, len(names), size))

    return StreamedItems(path, FileItems(file, convert), 4 * math.prod(item_shape), None, ids)


@dataclass
class StreamedScores:
    frame: Any  # the flagged items' lines, with ``attrs`` left to the caller
    summary: dict[str, Any]  # data, score, threshold, threshold_from, items, outliers (and flagged_features)
    worst: np.ndarray  # the positions of the ``WORST_ITEMS`` highest scores, highest first
    worst_ids: list
    worst_scores: list[float]


def score_streamed(detector, streamed: StreamedItems, threshold_of: Callable[[np.ndarray], tuple[float, str]],
                   targets: Sequence[Path], score: str) -> StreamedScores:
    """Score every item of ``streamed`` with ``detector``, set the threshold with ``threshold_of(scores)`` ->
    (threshold, how it was set), and write every item's line to each of ``targets`` (see the module's docstring)."""
    import pandas as pd

    from autoencoders.uses.detect import SUMMARY_FEATURES, WORST_ITEMS, _top_features

    items, count, step = streamed.items, len(streamed.items), streamed.chunk_rows()
    starts = range(0, count, step)
    scores = np.empty(count, dtype=np.float64)
    for start in track(starts, len(starts), f"scoring {count} items of {streamed.source.name}"):
        chunk = items[start : start + step]
        scores[start : start + len(chunk)] = detector.anomaly_score(chunk)
    threshold, source = threshold_of(scores)
    worst = np.argsort(-scores, kind="stable")[:WORST_ITEMS]

    columns = streamed.columns if streamed.columns is not None and hasattr(detector, "explain") else None
    flagged_shares = np.zeros(len(columns)) if columns is not None else None
    flagged_blocks, worst_ids = [], {}
    ids = streamed.id_chunks(step) if streamed.id_chunks is not None else (np.arange(start, min(start + step, count)) for start in starts)
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(table_writer(target)) for target in targets]
        for start, chunk_ids in zip(track(starts, len(starts), f"writing the scores of {count} items"), ids):
            stop = min(start + step, count)
            outlier = scores[start:stop] > threshold
            block: dict[str, Any] = {"id": np.asarray(chunk_ids), "anomaly_score": scores[start:stop], "outlier": outlier.astype(np.int64)}
            if columns is not None:
                shares = np.asarray(detector.explain(items[start:stop]))
                block.update(_top_features(shares, columns))
                flagged_shares += shares[outlier].sum(0)
            for writer in writers:
                writer.write(block)
            if outlier.any():
                flagged_blocks.append({key: np.asarray(values)[outlier] for key, values in block.items()})
            here = worst[(worst >= start) & (worst < stop)]
            worst_ids.update(zip(here.tolist(), block["id"][here - start].tolist()))

    frame = pd.concat([pd.DataFrame(part) for part in flagged_blocks], ignore_index=True) if flagged_blocks else pd.DataFrame(
        columns=list(block))
    summary: dict[str, Any] = {
        "data": str(streamed.source), "score": score, "threshold": float(threshold), "threshold_from": source,
        "items": count, "outliers": len(frame),
    }
    if columns is not None and len(frame):
        mean = flagged_shares / len(frame)
        order = np.argsort(-mean, kind="stable")[:SUMMARY_FEATURES]
        summary["flagged_features"] = [{"feature": columns[i], "mean_share": round(float(mean[i]), 4)} for i in order]
    return StreamedScores(frame, summary, worst, [worst_ids[position] for position in worst.tolist()], scores[worst].tolist())
