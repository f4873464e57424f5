"""A table larger than memory (CSV or Parquet): read once in chunks into a float32 cache, then streamed.

The first load reads the table with pyarrow, Parquet row group by row group (in batches of ``CHUNK_ROWS`` rows;
a folder of .parquet files is one table, its files in name order) and CSV block by block, and writes its feature columns as float32 rows into a cache next to the table
(``.NAME.autoencoders-cache/``, or under the download cache when the table's folder is read-only). The cache
records the table's sha256: a cache whose checksum does not match its table (the table was edited, or the cache
belongs to another file) is rebuilt, never used. Training then reads rows from the cache batch by batch
(``streaming.Rows``), standardized on the fly with the statistics of the training rows, computed in one pass
over the cache (Chan et al.'s pairwise update of means and variances, in float64) and saved with the run as
the in-memory path saves them, so a later load scales rows the same way.

What the in-memory path refuses is refused here too, by file, row (counted from 1 below the header), Parquet
row group and column: a missing or non-numeric column, an empty, NaN or infinite cell (or such rows dropped
with ``drop_nonfinite``), a value beyond float32's range. Time windows, labels and ids need the whole table in
memory: streaming refuses them with a message that says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from autoencoders.data.errors import DataError
from autoencoders.data.registry import Dataset, Request
from autoencoders.data.splits import three_way_split
from autoencoders.data.streaming import RowFile, Rows, Watched, cache_folder
from autoencoders.files import atomic_write_json, atomic_writer

log = logging.getLogger("autoencoders")

CHUNK_ROWS = 16384
CSV_BLOCK_BYTES = 16 << 20
CACHE_VERSION = 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def load_streamed_table(
    request: Request, path: Path, columns: list | None, special: dict[str, Any], test_size, drop_nonfinite: bool,
    previous: dict | None, kind: str,
) -> Dataset:
    """The table at ``path`` as a ``Dataset`` of ``Rows`` (see the module's docstring)."""
    unsupported = [f"data.{name}" for name, value in special.items() if value is not None]
    if unsupported:
        raise DataError(
            f"{path} is streamed (it is larger than memory allows, or data.stream=true), and {', '.join(unsupported)} "
            "need the whole table in memory; drop them, or load it into memory with --set data.stream=false"
        )
    features = _features(path, previous["columns"] if previous else columns)
    file, dropped = _cached_rows(path, features, drop_nonfinite)
    train, val, test = three_way_split(file.rows, request.seed, request.val_size, test_size)
    mean, std, low, high = _statistics(file, train.numpy())
    if previous:
        mean, std = np.asarray(previous["mean"], dtype=np.float64), np.asarray(previous["std"], dtype=np.float64)
    else:
        std[std == 0] = 1.0  # a constant column stays constant (0) instead of dividing by zero
    scaled_low, scaled_high = (low - mean) / std, (high - mean) / std
    beyond = np.flatnonzero(~((np.abs(scaled_low) <= _FLOAT32_MAX) & (np.abs(scaled_high) <= _FLOAT32_MAX)))
    if len(beyond):
        name = features[beyond[0]]
        raise DataError(
            f"{path}: column {name!r} lies beyond float32's range once standardized (mean {mean[beyond[0]]:.3g}, std "
            f"{std[beyond[0]]:.3g}); rescale the column, or leave it out with --set data.columns=..."
        )
    preprocessing = {"kind": kind, "columns": [str(name) for name in features], "mean": mean.tolist(), "std": std.tolist(), "label_classes": None}
    if drop_nonfinite:
        preprocessing["dropped_rows"] = dropped
    split = {
        name: Rows(file, index.numpy(), shift=mean.astype(np.float32), scale=std.astype(np.float32))
        for name, index in (("train", train), ("val", val), ("test", test))
    }
    return Dataset(
        name=request.name, **split,
        train_labels=None, val_labels=None, test_labels=None,
        item_shape=(len(features),),
        value_range=(float(scaled_low.min()), float(scaled_high.max())),
        num_classes=0,
        description=f"{file.rows} rows x {len(features)} numeric columns from {path}, standardized, read batch by batch",
        preprocessing=preprocessing,
    )


def scaled_table_rows(path: Path, preprocessing: dict) -> Rows:
    """Every row of the table at ``path``, scaled by a run's saved ``preprocessing``, read batch by batch (for
    scoring or encoding a table larger than memory; its cache is the one training made when the table is the same)."""
    mean, std = np.asarray(preprocessing["mean"], dtype=np.float32), np.asarray(preprocessing["std"], dtype=np.float32)
    return table_rows(path, preprocessing["columns"], shift=mean, scale=std)


def table_rows(path: Path, columns: list, shift=0.0, scale=1.0) -> Rows:
    """Every row of ``columns`` of the table at ``path``, in the table's order (no row dropped: row i of the
    cache is row i of the table), as ``(value - shift) / scale``, read batch by batch; unscaled by default (for
    a saved detector, which scales the raw columns itself)."""
    features = _features(path, columns)
    file, _ = _cached_rows(path, features, drop_nonfinite=False)
    return Rows(file, np.arange(file.rows), shift=shift, scale=scale)


def table_columns(path: Path) -> list[str]:
    """The names of the columns of the table at ``path`` (of its first file), read from its header or schema."""
    return [str(name) for name in _schema(table_files(path)[0]).names]


def column_chunks(path: Path, name: str, rows_per_chunk: int) -> Iterator[np.ndarray]:
    """The values of column ``name`` of the table at ``path``, in order, ``rows_per_chunk`` at a time (the last
    chunk shorter), read alone (an id column beside rows read from the cache; callers check the name first, since
    a generator would say it only when the first chunk is asked for)."""
    if path.suffix.lower() == ".csv":
        from pyarrow import csv

        batches = csv.open_csv(path, read_options=csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                               convert_options=csv.ConvertOptions(include_columns=[name]))
    else:
        import pyarrow.parquet as pq

        batches = (batch for file in table_files(path) for batch in pq.ParquetFile(file).iter_batches(batch_size=CHUNK_ROWS, columns=[name]))
    pending: list[np.ndarray] = []
    held = 0
    for batch in _readable(path, batches):
        pending.append(batch.column(0).to_numpy(zero_copy_only=False))
        held += batch.num_rows
        while held >= rows_per_chunk:
            joined = np.concatenate(pending)
            yield joined[:rows_per_chunk]
            pending, held = [joined[rows_per_chunk:]], held - rows_per_chunk
    if held:
        yield np.concatenate(pending)


# -- reading the table -----------------------------------------------------------------------------------------
def table_files(path: Path) -> list[Path]:
    """The files of a table: the file itself, or the .parquet files of a Parquet dataset folder, by name."""
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def _schema(path: Path):
    try:
        if path.suffix.lower() == ".csv":
            from pyarrow import csv

            reader = csv.open_csv(path)
            schema = reader.schema
            reader.close()
            return schema
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).schema_arrow
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid and ArrowIOError subclass these
        raise DataError(f"{path} cannot be read as a {path.suffix} table ({' '.join(str(error).split())}); fix the file") from error


def _features(path: Path, chosen: list | None) -> list:
    """The feature columns (``chosen``, else every column of the first file), checked in every file of the table."""
    files = table_files(path)
    features = chosen or list(_schema(files[0]).names)
    for number, file in enumerate(files):
        _check_columns(file if len(files) == 1 else Path(f"{file} (file {number + 1} of {len(files)} of {path})"), _schema(file), features)
    return features


def _check_columns(path: Path, schema, features: list) -> None:
    import pyarrow as pa

    absent = [name for name in features if name not in schema.names]
    if absent:
        raise DataError(f"{path} has no column(s) {', '.join(map(str, absent))}; its columns: {', '.join(schema.names)}")
    non_numeric = [name for name in features if not _numeric(pa, schema.field(name).type)]
    if non_numeric:
        raise DataError(
            f"{path}: column(s) {', '.join(non_numeric)} are not numeric. Choose numeric columns with "
            "--set data.columns=a,b,c (columns=[...] in Python), or drop them from the table"
        )


def _numeric(pa, kind) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind)


def _chunks(path: Path, features: list) -> tuple[int, Iterator[tuple[int, str, np.ndarray]]]:
    """(how many chunks, about, and an iterator of (first row, where it lies, values as float64 (rows, columns)
    with NaN for empty cells)), chunk by chunk."""
    if path.suffix.lower() == ".csv":
        from pyarrow import csv

        def read_csv() -> Iterator[tuple[int, str, np.ndarray]]:
            reader = csv.open_csv(
                path, read_options=csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                convert_options=csv.ConvertOptions(include_columns=features),
            )
            first = 0
            for batch in reader:
                yield first, "", _values(batch, features, path, "", first)
                first += batch.num_rows

        return -(-path.stat().st_size // CSV_BLOCK_BYTES), _readable(path, read_csv())
    import pyarrow.parquet as pq

    files = [(file, pq.ParquetFile(file)) for file in table_files(path)]
    sizes = [[parquet.metadata.row_group(group).num_rows for group in range(parquet.num_row_groups)] for _, parquet in files]

    def read_parquet() -> Iterator[tuple[int, str, np.ndarray]]:
        first = 0
        for (file, parquet), groups in zip(files, sizes):
            start = first
            for group, size in enumerate(groups):
                name = f"{file.name}, " if path.is_dir() else ""
                where = f" ({name}row group {group}, rows {first - start + 1}-{first - start + size})"
                for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, row_groups=[group], columns=features):
                    yield first, where, _values(batch, features, path, where, first - start)
                    first += batch.num_rows

    return sum(-(-size // CHUNK_ROWS) for groups in sizes for size in groups), _readable(path, read_parquet())


def _readable(path: Path, chunks: Iterator) -> Iterator:
    try:
        yield from chunks
    except (OSError, ValueError) as error:  # a damaged page or block, found only as it is read
        raise DataError(f"{path} cannot be read as a {path.suffix} table ({' '.join(str(error).split())}); fix the file") from error


def _values(batch, features: list, path: Path, where: str, first: int) -> np.ndarray:
    values = np.empty((batch.num_rows, len(features)), dtype=np.float64)
    for position, name in enumerate(features):
        column = batch.column(name)
        if len(column) and column.null_count == len(column):
            raise DataError(
                f"{path}{where}: column {name!r} is missing (empty) in all of rows {first + 1}-{first + len(column)}; "
                "write the column's values there, or leave it out with --set data.columns=..."
            )
        values[:, position] = column.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls become NaN
    return values


# -- the cache --------------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    """The table's sha256 (of a dataset folder: of its files' names and sha256s, in order)."""
    files = table_files(path)
    if len(files) == 1 and not path.is_dir():
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}\0{_sha256(file)}\n".encode())
    return digest.hexdigest()


def _cached_rows(path: Path, features: list, drop_nonfinite: bool) -> tuple[RowFile, int]:
    """The cache of ``features`` of ``path`` (built when missing or not matching the table) as a ``RowFile``, and
    the rows dropped for empty or non-finite values."""
    sources = [Watched.of(file) for file in table_files(path)]
    key = hashlib.sha256(json.dumps([list(map(str, features)), bool(drop_nonfinite), CACHE_VERSION]).encode()).hexdigest()[:16]
    folder = cache_folder(path)
    values, record = folder / f"{key}.f32", folder / f"{key}.json"
    checksum = _sha256(path)
    expected = {"table_sha256": checksum, "columns": list(map(str, features)), "drop_nonfinite": bool(drop_nonfinite)}
    saved = _saved_record(record)
    if saved is not None and all(saved.get(name) == value for name, value in expected.items()) and values.exists() and (
        values.stat().st_size == saved["rows"] * len(features) * 4
    ):
        return RowFile(values, 0, np.float32, (len(features),), saved["rows"], watch=sources), saved["dropped"]
    if saved is not None:
        log.info("the cache of %s does not match the table (its checksum or size differ); rebuilding it", path)
    rows, dropped = _build_cache(path, features, drop_nonfinite, values)
    if [Watched.of(file) for file in table_files(path)] != sources:
        raise DataError(f"{path} changed while it was being read into its cache; load it again once it is written")
    atomic_write_json(record, {**expected, "rows": rows, "dropped": dropped, "version": CACHE_VERSION})
    return RowFile(values, 0, np.float32, (len(features),), rows, watch=sources), dropped


def _saved_record(record: Path) -> dict | None:
    try:
        saved = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    valid = isinstance(saved, dict) and isinstance(saved.get("rows"), int) and isinstance(saved.get("dropped"), int)
    return saved if valid else None


def _build_cache(path: Path, features: list, drop_nonfinite: bool, values_path: Path) -> tuple[int, int]:
    from autoencoders.progress import track

    rows = dropped = 0
    total, chunks = _chunks(path, features)
    with atomic_writer(values_path) as handle:
        for first, where, values in track(chunks, total, f"reading {path.name} into its cache"):
            with np.errstate(over="ignore", invalid="ignore"):
                single = values.astype(np.float32)
            bad = ~np.isfinite(single)
            if bad.any():
                if not drop_nonfinite:
                    row, column = (int(i) for i in np.argwhere(bad)[0])
                    raise DataError(
                        f"{path}{where} has empty, NaN, infinite or beyond-float32 values, the first in row {first + row + 1} "
                        f"(column {features[column]!r} = {values[row, column]}; rows counted from 1 below the header); fix "
                        "those cells, or drop such rows with --set data.drop_nonfinite=true"
                    )
                keep = ~bad.any(axis=1)
                dropped += int((~keep).sum())
                single = single[keep]
            handle.write(np.ascontiguousarray(single).tobytes())
            rows += len(single)
    import pyarrow as pa

    pa.default_memory_pool().release_unused()  # pyarrow's allocator keeps freed chunks; training needs the room
    if rows < 3:
        raise DataError(f"{path} holds {rows} usable rows; a table needs at least 3 for train, val and test splits")
    if dropped:
        log.warning("%s: dropped %d rows with empty, NaN or infinite values (data.drop_nonfinite); %d remain", path, dropped, rows)
    return rows, dropped


# -- statistics -------------------------------------------------------------------------------------------------
def _statistics(file: RowFile, train: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std) of the training rows and (min, max) of all rows, per column, in one pass over the cache
    (means and variances merged chunk by chunk with Chan et al.'s pairwise update, in float64)."""
    in_train = np.zeros(file.rows, dtype=bool)
    in_train[train] = True
    columns = file.row_shape[0]
    count, mean, squares = 0, np.zeros(columns), np.zeros(columns)
    low, high = np.full(columns, np.inf), np.full(columns, -np.inf)
    for start, chunk in file.chunks():
        low, high = np.minimum(low, chunk.min(axis=0)), np.maximum(high, chunk.max(axis=0))
        values = chunk[in_train[start : start + len(chunk)]].astype(np.float64)
        if not len(values):
            continue
        chunk_mean = values.mean(axis=0)
        chunk_squares = ((values - chunk_mean) ** 2).sum(axis=0)
        total = count + len(values)
        delta = chunk_mean - mean
        mean = mean + delta * len(values) / total
        squares = squares + chunk_squares + delta**2 * count * len(values) / total
        count = total
    return mean, np.sqrt(squares / count), low, high
