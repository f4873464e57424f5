"""Fuzzing the table reader (data/tables.py through load_dataset): random bytes, CSVs with cells replaced by
inf, NaN, huge or tiny numbers, empty cells or text, ragged rows, a header alone, duplicate column names and
very long lines, and Parquet files of such tables, whole or with bytes changed, each loaded with and without
the table options. Every input either loads as a dataset whose
items and saved scaling are finite, or is refused with a DataError; nothing else escapes, nothing hangs.

The examples are derandomized (the same inputs on every run); ``AUTOENCODERS_FUZZ_EXAMPLES`` sets how many
each test draws (the default keeps the file well under 30 seconds).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from datetime import timedelta

import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from autoencoders.data import DataError, load_dataset

EXAMPLES = int(os.environ.get("AUTOENCODERS_FUZZ_EXAMPLES", "150"))
fuzz = settings(
    max_examples=EXAMPLES, derandomize=True, database=None, deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

NAMES = st.sampled_from(["a", "b", "c", "id", "t", "label", "a.1", " a", "", "1", "é"])
FINITE = st.one_of(st.floats(-1e6, 1e6).map(repr), st.integers(-1000, 1000).map(str))
SCALES = st.sampled_from([*[1.0] * 8, 1e-300, 1e-38, 1e38, 1e150, 1e200, 1e300, 1e308])  # per column
ODD_CELLS = st.one_of(
    st.floats().map(repr),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from([
        "", "inf", "-inf", "Infinity", "-Infinity", "nan", "NaN", "NA", "null", "1e308", "-1e308", "1.7976931348623157e308",
        "1e400", "-1e400", "1e-320", "5e-324", "0", "-0", "1e38", "3.5e38", "x", "a b", '"1,2"', '"', "true",
        "2024-01-01", "0x10", "1_000", "  7 ", "\t", "9" * 400,
    ]),
)


@st.composite
def csv_texts(draw) -> str:
    """A CSV text: a header of 1-5 names (duplicates allowed) and 0-30 rows of numbers, each column at its own
    scale (up to overflowing sums and squares), with up to 3 cells replaced by odd ones and sometimes a ragged
    row (a cell more or less)."""
    header = draw(st.lists(NAMES, min_size=1, max_size=5))
    scales = draw(st.lists(SCALES, min_size=len(header), max_size=len(header)))
    count = draw(st.integers(0, 30))  # uniform: hypothesis' lists favour very short ones
    rows = draw(st.lists(st.lists(FINITE, min_size=len(header), max_size=len(header)), min_size=count, max_size=count))
    rows = [[repr(float(cell) * scale) if scale != 1.0 else cell for cell, scale in zip(row, scales)] for row in rows]
    for _ in range(draw(st.integers(0, 3)) if rows else 0):
        row, column = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(header) - 1))
        rows[row][column] = draw(ODD_CELLS)
    if rows and draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(rows) - 1))
        rows[at] = rows[at][:-1] if draw(st.booleans()) else [*rows[at], draw(FINITE)]
    return "\n".join(",".join(line) for line in [header, *rows]) + draw(st.sampled_from(["\n", "", "\r\n"]))


def _numbers(rows: int, columns: int = 3) -> str:
    """A CSV of ``rows`` rows of small numbers in columns a, b, c."""
    return "\n".join([",".join("abc"[:columns]), *(",".join(str(row * column + 1) for column in range(columns)) for row in range(rows))])


@st.composite
def parquet_files(draw) -> bytes:
    """A Parquet file of a CSV text's table (its cells as pandas reads them), or, where pandas cannot read that
    text or Parquet cannot hold its cells (integers over 64 bits), of 3-30 rows of numbers."""
    buffer = io.BytesIO()
    try:
        pd.read_csv(io.StringIO(draw(csv_texts()))).to_parquet(buffer)
    except (ValueError, TypeError, OverflowError):  # pandas' and pyarrow's errors subclass these
        buffer = io.BytesIO()
        pd.read_csv(io.StringIO(_numbers(draw(st.integers(3, 30))))).to_parquet(buffer)
    return buffer.getvalue()


@st.composite
def mutated(draw, contents) -> bytes:
    """Bytes (or a text's bytes) with a few bytes replaced, inserted or deleted."""
    content = draw(contents)
    data = bytearray(content.encode() if isinstance(content, str) else content)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.sampled_from(b',\n\r"-.e019 ') | st.integers(0, 255))  # mostly the bytes CSV parsing turns on
        if kind == "insert" or at == len(data):
            data.insert(at, byte)
        elif kind == "replace":
            data[at] = byte
        else:
            del data[at]
    return bytes(data)


@st.composite
def options(draw) -> dict:
    """Table options as a user might set them, pointing at columns that may or may not exist."""
    chosen = {"drop_nonfinite": True} if draw(st.integers(0, 2)) == 0 else {}
    for option in draw(st.sampled_from([(), (), (), ("label_column",), ("id_column",), ("time_column",), ("id_column", "time_column")])):
        chosen[option] = draw(NAMES)
    if "time_column" in chosen:
        chosen["window"] = draw(st.integers(1, 4))
    return chosen


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture
def table_path(folder):
    return folder / "table.csv"


def _loads_finite_or_refuses(path, content: bytes, chosen: dict) -> None:
    path.write_bytes(content)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dropped rows and pandas' mixed-type notices
            data = load_dataset(path, **chosen)
    except DataError as error:
        assert "\n" not in str(error)  # one line
        return
    for split in ("train", "val", "test"):
        assert torch.isfinite(data.split(split)).all(), split
    assert all(map(torch.isfinite, torch.tensor(data.value_range)))
    json.dumps(data.preprocessing, allow_nan=False)  # what config.json saves: no NaN or Infinity


@fuzz
@given(content=st.binary(max_size=400))
@example(content=b"")
@example(content=b"a,b\n")  # a header alone
@example(content=b"\xff\xfe,\x00\n1,2\n")
def test_random_bytes(table_path, content):
    _loads_finite_or_refuses(table_path, content, {})


@fuzz
@given(text=csv_texts(), chosen=options())
@example(text="a,b\n1,inf\n2,3\n4,5\n6,7\n", chosen={})
@example(text="a,b\n1e308,1\n-1e308,2\n1e308,3\n-1e308,4\n1e308,5\n", chosen={})
@example(text="a,a\n1,2\n3,4\n5,6\n", chosen={})  # duplicate names: pandas renames the second a.1
@example(text="a,b\n" + "9" * 5000 + ",1\n2,3\n4,5\n", chosen={})
@example(text="a,b\nnan,nan\ninf,1\n", chosen={"drop_nonfinite": True})
def test_csv_cells(table_path, text, chosen):
    _loads_finite_or_refuses(table_path, text.encode(), chosen)


@fuzz
@given(content=mutated(csv_texts() | st.integers(0, 40).map(_numbers)), chosen=options())
def test_mutated_csv(table_path, content, chosen):
    _loads_finite_or_refuses(table_path, content, chosen)


@fuzz
@given(content=parquet_files() | mutated(parquet_files()) | st.binary(max_size=400), chosen=options())
def test_parquet(folder, content, chosen):
    _loads_finite_or_refuses(folder / "table.parquet", content, chosen)
