"""Outputs written piece by piece, for inputs larger than memory: tables (CSV blocks or Parquet row groups)
and ``.npy`` arrays (``np.lib.format.open_memmap``). Each is written to a temporary file beside its path and
renamed over it when complete, as ``files.atomic_writer`` does: a reader never sees half an output."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from autoencoders.errors import InputError
from autoencoders.files import atomic_writer

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


class TableWriter:
    """Appends pandas/dict columns as one CSV block or one Parquet row group per ``write``."""

    def __init__(self, handle, suffix: str):
        self.handle = handle
        self.suffix = suffix
        self.writer = None
        self.schema = None

    def write(self, columns: dict[str, np.ndarray | list]) -> None:
        import pyarrow as pa

        batch = pa.table(columns)
        if self.writer is None:
            self.schema = batch.schema  # the first block's column types are every block's
            if self.suffix in (".parquet", ".pq"):
                import pyarrow.parquet as pq

                self.writer = pq.ParquetWriter(self.handle, batch.schema)
            else:
                from pyarrow import csv

                self.writer = csv.CSVWriter(self.handle, batch.schema)
        self.writer.write_table(batch.cast(self.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@contextlib.contextmanager
def table_writer(path: str | Path) -> Iterator[TableWriter]:
    """A ``TableWriter`` on ``path`` (.csv or .parquet), renamed into place when the block ends without error."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"a table is written as .csv or .parquet (.pq); got {path}")
    with atomic_writer(path) as handle:
        writer = TableWriter(handle, suffix)
        yield writer
        writer.close()


@contextlib.contextmanager
def npy_writer(path: str | Path, shape: tuple[int, ...], dtype=np.float32) -> Iterator[np.ndarray]:
    """A ``.npy`` file of ``shape`` mapped for writing (fill it slice by slice), renamed into place at the end."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    try:
        array = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
        yield array
        array.flush()
        del array
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
