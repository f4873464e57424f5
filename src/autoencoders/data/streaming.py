"""Items read from a file batch by batch, for data larger than memory.

A ``RowFile`` is a file of fixed-size rows (a ``.npy`` array, or the float32 cache a streamed table or image
folder is turned into): a read maps the file, copies a few rows and unmaps it, so a process's resident memory
holds one batch, never the file. ``Rows`` is a split of it (an index of rows) with the scaling its
items get as they are read; ``TensorBatches`` takes it in place of a tensor (it asks only ``len``, slices and
``index_select``), so shuffling, sharding over DDP processes and exact resume are the in-memory path's.

Every read first checks that the files it depends on still have the size and modification time they had when
they were opened: a file rewritten during training is a ``DataError`` naming it, not silently mixed data.

Data is streamed when ``data.stream=true``, or, by default, when its float32 items would take more than
``STREAM_ABOVE_BYTES`` (1 GiB), or a table's file more than ``STREAM_TABLE_ABOVE_BYTES`` (256 MiB: read whole,
pandas and the float64 copies of its values take several times the file's size; a 300 MB Parquet file took 1.9 GB).
Smaller data is loaded into memory, the fastest path; ``data.stream=false`` forces it.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from autoencoders.data.errors import DataError

STREAM_ABOVE_BYTES = 1 << 30
STREAM_TABLE_ABOVE_BYTES = 256 << 20
CHUNK_BYTES = 64 << 20
MAPPED_ROWS = 16  # rows read through one mapping: at most 16 folios (32 MB) of the file resident at once
NUMBER_KINDS = "biuf"  # bool, signed and unsigned integers, floats: the dtypes an array of items may have  # one read of a pass over a whole file (statistics, checks, caches)


def should_stream(stream: bool | str | None, size_bytes: int, table: bool = False) -> bool:
    """``data.stream`` as given (true/false), else whether ``size_bytes`` (of float32 items, or of a table's
    file) is over the threshold."""
    if stream is None:
        return size_bytes > (STREAM_TABLE_ABOVE_BYTES if table else STREAM_ABOVE_BYTES)
    if isinstance(stream, str) and stream.lower() in ("true", "false"):
        return stream.lower() == "true"
    if not isinstance(stream, bool):
        raise DataError(f"stream must be true or false; got {stream!r}")
    return stream


@dataclass(frozen=True)
class Watched:
    """A file with the size and modification time it had when it was opened."""

    path: Path
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Watched:
        status = os.stat(path)
        return cls(path, status.st_size, status.st_mtime_ns)

    def check(self) -> None:
        try:
            status = os.stat(self.path)
        except OSError as error:
            raise DataError(f"{self.path} disappeared while it was being read ({error}); put it back and resume") from error
        if (status.st_size, status.st_mtime_ns) != (self.size, self.mtime_ns):
            raise DataError(
                f"{self.path} changed while it was being read (size {self.size} -> {status.st_size} bytes, or its "
                "modification time); training on a mix of two versions would be wrong: restore the file, or start "
                "again on the new one"
            )


class RowFile:
    """Rows of ``row_shape`` values of ``dtype`` stored one after another from byte ``offset`` of ``path``."""

    def __init__(self, path: Path, offset: int, dtype: np.dtype, row_shape: tuple[int, ...], rows: int, watch=()):
        self.path = Path(path)
        self.offset = offset
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.rows = rows
        self.row_bytes = self.dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
        self.watched = [Watched.of(self.path), *watch]
        expected = offset + rows * self.row_bytes
        if self.watched[0].size < expected:
            raise DataError(
                f"{self.path} is cut short: its header promises {rows} rows of {self.row_bytes} bytes ({expected} bytes "
                f"in all) but the file holds {self.watched[0].size}; write the file again"
            )
        self._descriptor: int | None = None

    def _fd(self) -> int:
        # opened per process (a DDP worker or a forked reader gets its own descriptor)
        if self._descriptor is None or self._pid != os.getpid():
            self._descriptor, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._descriptor

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_descriptor": None}

    def __del__(self) -> None:
        if getattr(self, "_descriptor", None) is not None and self._pid == os.getpid():
            os.close(self._descriptor)

    def read(self, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` (any order, repeats allowed) as an array (len(index), *row_shape) of the file's dtype.

        Consecutive rows (a pass in order) are one ``preadv`` into the result. Others are copied through a
        mapping of the file made for every ``MAPPED_ROWS`` rows and unmapped after them: pages a mapping touched
        leave the process's resident memory with it, and the kernel maps a whole folio of the file (up to 2 MB)
        around each row touched, so the rows a mapping serves bound what it adds; the copy is one numpy call per
        mapping, where ``preadv`` would be a call per row."""
        for watched in self.watched:
            watched.check()
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((len(index), *self.row_shape), dtype=self.dtype)
        if len(index) and bool((np.diff(index) == 1).all()):
            view = memoryview(out.reshape(-1).view(np.uint8))
            if os.preadv(self._fd(), [view], self.offset + int(index[0]) * self.row_bytes) != len(view):
                raise DataError(f"{self.path} ended early: rows from {int(index[0])} could not be read; write the file again")
            return out
        for start in range(0, len(index), MAPPED_ROWS):
            mapping = mmap.mmap(self._fd(), 0, access=mmap.ACCESS_READ)
            try:
                rows = np.frombuffer(mapping, self.dtype, self.rows * self.row_bytes // self.dtype.itemsize, self.offset)
                out[start : start + MAPPED_ROWS] = rows.reshape(self.rows, *self.row_shape)[index[start : start + MAPPED_ROWS]]
                del rows
            finally:
                mapping.close()
        return out

    def chunks(self, rows_per_chunk: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) over the whole file in order, ``CHUNK_BYTES`` at a time."""
        step = rows_per_chunk or max(1, CHUNK_BYTES // max(self.row_bytes, 1))
        for start in range(0, self.rows, step):
            yield start, self.read(np.arange(start, min(start + step, self.rows)))


class Rows:
    """A split of a ``RowFile``: the rows ``index`` as float32 items, ``(raw - shift) / scale`` (per value or
    broadcast; a table's standardization, an image array's division by 255).

    Indexing with an int, a slice or ``index_select(0, index)`` reads those items and returns a tensor."""

    def __init__(self, file: RowFile, index: np.ndarray, shift=0.0, scale=1.0):
        self.file = file
        self.index = np.asarray(index, dtype=np.int64)
        self.shift = np.asarray(shift, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.file.row_shape)

    def __len__(self) -> int:
        return len(self.index)

    def _items(self, positions: np.ndarray) -> torch.Tensor:
        raw = self.file.read(self.index[positions]).astype(np.float32, copy=False)
        return torch.from_numpy((raw - self.shift) / self.scale if self.shift.any() or (self.scale != 1).any() else raw)

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        if dim != 0:
            raise ValueError("Rows are selected along their first dimension only")
        return self._items(np.asarray(index, dtype=np.int64))

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, slice):
            return self._items(np.arange(len(self.index))[key])
        if isinstance(key, (int, np.integer)):
            return self._items(np.array([key]))[0]
        return self._items(np.asarray(key, dtype=np.int64))

    def head(self, limit: int) -> Rows:
        return Rows(self.file, self.index[:limit], self.shift, self.scale)

    def chunks(self, rows_per_chunk: int = 4096) -> Iterator[torch.Tensor]:
        """The items in order, ``rows_per_chunk`` at a time (for encoding or scoring a whole split)."""
        for start in range(0, len(self), rows_per_chunk):
            yield self[start : start + rows_per_chunk]

    def __repr__(self) -> str:
        return f"Rows({len(self)} of {self.file.path}, item_shape={self.file.row_shape})"


def cache_folder(source: Path) -> Path:
    """Where the cache of a file or folder that is streamed lives: ``.NAME.autoencoders-cache/`` beside it, or,
    when its folder is read-only, a folder per source path under the download cache."""
    beside = source.parent / f".{source.name}.autoencoders-cache"
    try:
        beside.mkdir(exist_ok=True)
        return beside
    except OSError:
        import hashlib

        from autoencoders.data.files import cache_dir

        folder = cache_dir() / "streamed" / hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def npy_rows(path: Path) -> RowFile:
    """A ``.npy`` file's rows (its first axis) without reading its data. The header is checked as ``read_npy``
    checks it (numbers only, no pickles, at least one item) and against the file's size (a cut-short file)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(4) == b"PK\x03\x04":  # np.load opens .npz archives (zip files) as well
                raise DataError(f"{path} is a .npz archive, not a .npy array; save one array with numpy.save")
            handle.seek(0)
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(handle)
            offset = handle.tell()
    except (OSError, ValueError, EOFError) as error:
        raise DataError(
            f"{path} cannot be read as a .npy array ({error}); it may be cut short or not written by numpy.save: "
            "save the array again with numpy.save (numbers only)"
        ) from error
    if dtype.kind not in NUMBER_KINDS or dtype.hasobject:
        raise DataError(f"{path} holds {dtype} values; save numbers (bool, integer or float) with numpy.save")
    if 0 in shape:
        raise DataError(f"{path} holds no items (its shape is {shape}); save an array of at least one item")
    if len(shape) < 2:
        raise DataError(f"{path} holds an array of shape {shape}; expected items shaped (N, ...)")
    if fortran:
        raise DataError(f"{path} is stored in Fortran order, so its items are not contiguous; save np.ascontiguousarray(array)")
    return RowFile(path, offset, dtype, shape[1:], shape[0])


def finite_float32(array: np.ndarray, path: Path | str) -> np.ndarray:
    """The array as float32; NaN, infinities and values beyond float32's range are refused, with the index of
    the first one."""
    with np.errstate(over="ignore", invalid="ignore"):  # a value too large for float32 becomes inf, refused below
        values = array.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        first = tuple(int(index) for index in np.argwhere(~finite)[0])
        raise DataError(
            f"{path} holds {int((~finite).sum())} NaN or infinite values (or values beyond float32's ±3.4e38), the "
            f"first at index {first}; replace them or remove those items"
        )
    return values


def value_summary(file: RowFile, divisor: float) -> tuple[float, float, bool]:
    """(min, max, whether every value is 0 or 1) of a file's items divided by ``divisor``, in one pass that also
    refuses NaN, infinite and beyond-float32 values by the first item holding one."""
    low, high, binary = np.inf, -np.inf, True
    for start, raw in file.chunks():
        # named with its rows, as a streamed read names them, so that an index in the message can be found in the file
        values = finite_float32(raw, f"{file.path} (rows {start} to {start + len(raw) - 1})") / np.float32(divisor)
        low, high = min(low, float(values.min())), max(high, float(values.max()))
        binary = binary and bool(((values == 0) | (values == 1)).all())
    return low, high, binary
