"""The user's table (CSV or Parquet): numeric columns, standardized with the training split's mean and std.

``Dataset.preprocessing`` records the columns, means, stds and label classes (and, with ``drop_nonfinite``, how
many rows were dropped), so a later load of the same or a new table (``preprocessing=``) is scaled exactly as
the model saw its training data; ``inverse`` maps model outputs back to the table's units.

With a ``time_column`` and a ``window`` the table is a time series: rows are sorted by time, split in time
(train the earliest rows, then val, test the latest, so no window straddles two splits) and each split is cut
into windows of ``window`` consecutive rows every ``stride`` rows: items (window, n_columns) for sequence
models. ``Dataset.ids`` then lists, per window, the ids of its rows (the ``id_column``, else the times).

Every feature value must be a finite number: a row with an empty, NaN or infinite cell is refused by its row
number (or dropped, with ``drop_nonfinite``; a window then joins the rows on either side of a dropped one), and
so is a column whose mean or std overflows or whose scaled values leave float32's range, so the scaling saved
with a run and every item a model sees are finite.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from autoencoders.data.errors import DataError
from autoencoders.data.registry import Dataset, Request
from autoencoders.data.splits import three_way_split
from autoencoders.data.streaming import should_stream

log = logging.getLogger("autoencoders")

PREPROCESSING_KIND = "standardize"
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_SHOWN_ROWS = 3  # rows named in an error: enough to find the pattern, short enough for one line


def _read_table(path: Path):
    import pandas as pd

    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    # pyarrow's errors subclass these builtins; a Parquet file's damaged pandas metadata raises KeyError or TypeError
    except (OSError, ValueError, KeyError, TypeError, IndexError, NotImplementedError, pd.errors.ParserError) as error:
        raise DataError(f"{path} cannot be read as a {path.suffix} table ({_one_line(error)}); fix the file") from error
    if frame.empty:
        raise DataError(f"{path} holds no rows of data (a header at most); give a table with a row per item")
    return frame.reset_index(drop=True)  # the index is the row number in the file (Parquet may store another)


def _one_line(error: Exception) -> str:
    """An error's message on one line (pandas' messages may span several, or quote a cell with a line break)."""
    return " ".join(str(error).split())


def _name(value: Any) -> str:
    """A column name or label as text on one line: quoted where it holds line breaks or other unprintables."""
    text = str(value)
    return text if text.isprintable() else repr(text)


def _names(values) -> str:
    return ", ".join(map(_name, values))


def _column_list(columns: str | Sequence[str] | None) -> list[str] | None:
    """Columns from a list or a comma-separated string (as ``--set data.columns=a,b,c`` gives)."""
    if columns is None:
        return None
    return [name.strip() for name in columns.split(",") if name.strip()] if isinstance(columns, str) else list(columns)


def inverse(x: torch.Tensor, preprocessing: dict[str, Any]) -> torch.Tensor:
    """Standardized rows (..., n_columns) back in the table's units."""
    mean = torch.tensor(preprocessing["mean"], dtype=x.dtype, device=x.device)
    std = torch.tensor(preprocessing["std"], dtype=x.dtype, device=x.device)
    return x * std + mean


def load_table(
    request: Request,
    columns: str | Sequence[str] | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    test_size: int | float | None = None,
    time_column: str | None = None,
    window: int | None = None,
    stride: int | None = None,
    drop_nonfinite: bool = False,
    stream: bool | None = None,
) -> Dataset:
    """Rows of a table as float32 (n_columns,) items, standardized; ``label_column`` gives class labels.

    With ``time_column`` and ``window``: windows of consecutive rows, (window, n_columns) items (see above).
    ``drop_nonfinite`` drops the rows with empty, NaN or infinite feature values (with a warning that counts
    them) instead of refusing the table. A large table (see ``streaming``; ``stream`` overrides the choice) is
    read in chunks into a cache and streamed from it (``streamed_tables``).
    """
    import pandas as pd

    path = Path(request.name).expanduser()
    if not isinstance(drop_nonfinite, bool):
        raise DataError(f"drop_nonfinite must be true or false; got {drop_nonfinite!r}")
    size = sum(file.stat().st_size for file in path.glob("*.parquet")) if path.is_dir() else path.stat().st_size
    if should_stream(stream, size, table=True):
        return _streamed(request, path, columns, label_column, id_column, test_size, time_column, window, stride, drop_nonfinite)
    frame = _read_table(path)
    if window is not None or time_column is not None:
        frame = _sorted_by_time(frame, path, time_column, window, label_column)
    # an earlier load's scaling (a run's data may have been of another kind: then it does not apply)
    previous = request.preprocessing if (request.preprocessing or {}).get("kind") == PREPROCESSING_KIND else None
    special = [name for name in (label_column, id_column, time_column) if name is not None]
    features = previous["columns"] if previous else _column_list(columns) or [c for c in frame.columns if c not in special]
    absent = [name for name in [*features, *special] if name not in frame.columns]
    if absent:
        raise DataError(
            f"{path} has no column(s) {_names(absent)}; its columns: {_names(frame.columns)}"
        )
    if not features:
        raise DataError(f"{path} has no feature columns besides the label/id columns")
    non_numeric = [name for name in features if not pd.api.types.is_numeric_dtype(frame[name])]
    if non_numeric:
        numeric = [name for name in features if name not in non_numeric]
        raise DataError(
            f"{path}: column(s) {_names(non_numeric)} are not numeric. Choose numeric columns with "
            f"--set data.columns={','.join(map(_name, numeric)) or 'a,b,c'} (columns=[...] in Python), make one the "
            "label with --set data.label_column=NAME, or drop them from the table"
        )
    with_gaps = [name for name in special if frame[name].isna().any() or _has_infinity(frame[name])]
    if with_gaps:
        raise DataError(
            f"{path}: column(s) {_names(with_gaps)} have missing or infinite values; fill or drop those rows"
        )
    frame, values, dropped = _finite_rows(frame, features, path, drop_nonfinite)

    if window is not None:
        train, val, test = _time_split(len(frame), request.val_size, test_size, int(window))
    else:
        train, val, test = three_way_split(len(frame), request.seed, request.val_size, test_size)
    if previous:
        mean, std = np.asarray(previous["mean"], dtype=np.float64), np.asarray(previous["std"], dtype=np.float64)
        _check_saved_scaling(features, mean, std)
    else:
        mean, std = _column_statistics(values[train.numpy()], features, path)
    scaled = torch.from_numpy(_standardized(values, mean, std, features, path)).float()
    preprocessing = {
        "kind": PREPROCESSING_KIND, "columns": [str(name) for name in features],
        "mean": mean.tolist(), "std": std.tolist(), "label_classes": None,
    }
    if drop_nonfinite:
        preprocessing["dropped_rows"] = dropped

    labels, classes = None, None
    if label_column is not None:
        classes = (previous or {}).get("label_classes") or frame[label_column].drop_duplicates().sort_values().tolist()
        codes = pd.Categorical(frame[label_column], categories=classes).codes
        if (codes < 0).any():
            unknown = sorted(set(frame[label_column][codes < 0].astype(str)))
            raise DataError(f"{path}: labels {_names(unknown[:10])} are not among the model's classes {classes}")
        labels = torch.from_numpy(codes.astype(np.int64))
    row_ids = frame[id_column].to_numpy() if id_column is not None else None
    splits = {"train": train, "val": val, "test": test}
    if window is not None:
        return _windowed(
            request.name, path, scaled, {split: index.numpy() for split, index in splits.items()}, int(window),
            int(stride or window), frame[id_column if id_column is not None else time_column].to_numpy(),
            preprocessing=preprocessing, dropped=dropped,
        )
    return Dataset(
        name=request.name,
        train=scaled[train], val=scaled[val], test=scaled[test],
        train_labels=None if labels is None else labels[train],
        val_labels=None if labels is None else labels[val],
        test_labels=None if labels is None else labels[test],
        item_shape=(len(features),),
        value_range=(float(scaled.min()), float(scaled.max())),
        num_classes=len(classes) if classes is not None else 0,
        description=f"{len(frame)} rows x {len(features)} numeric columns from {path}, standardized{_dropped_note(dropped)}",
        preprocessing={**preprocessing, "label_classes": classes},
        class_names=None if classes is None else [str(name) for name in classes],
        ids=None if row_ids is None else {split: row_ids[index.numpy()].tolist() for split, index in splits.items()},
    )


def _streamed(request: Request, path: Path, columns, label_column, id_column, test_size, time_column, window, stride, drop_nonfinite) -> Dataset:
    from autoencoders.data.streamed_tables import load_streamed_table

    previous = request.preprocessing if (request.preprocessing or {}).get("kind") == PREPROCESSING_KIND else None
    if previous:
        _check_saved_scaling(previous["columns"], np.asarray(previous["mean"]), np.asarray(previous["std"]))
    special = {"label_column": label_column, "id_column": id_column, "time_column": time_column, "window": window, "stride": stride}
    return load_streamed_table(
        request, path, _column_list(columns), special, test_size, drop_nonfinite, previous, PREPROCESSING_KIND,
    )


def _finite_rows(frame, features: list, path: Path, drop: bool):
    """(frame, its feature values as float64, rows dropped): rows with an empty, NaN or infinite feature value
    are dropped with ``drop``, else refused with an error that names the first few by their row in the file."""
    values = frame[features].to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    bad_rows = np.flatnonzero(bad.any(axis=1))
    if len(bad_rows) == 0:
        return frame, values, 0
    if not drop:
        bad_rows = bad_rows[np.argsort(frame.index[bad_rows], kind="stable")]  # file order, also after sorting by time
        shown = ", ".join(
            f"row {frame.index[row] + 1} ("
            + ", ".join(f"{_name(features[column])}={values[row, column]}" for column in np.flatnonzero(bad[row])) + ")"
            for row in bad_rows[:_SHOWN_ROWS]
        )
        more = ", ..." if len(bad_rows) > _SHOWN_ROWS else ""
        raise DataError(
            f"{path} has {_rows(len(bad_rows))} with empty, NaN or infinite values: {shown}{more} (rows counted from 1 "
            "below the header); fix those cells, or drop such rows with --set data.drop_nonfinite=true "
            "(drop_nonfinite=True in Python)"
        )
    keep = ~bad.any(axis=1)
    if not keep.any():
        raise DataError(f"{path}: every row has empty, NaN or infinite values, so dropping them leaves nothing; fix the table")
    log.warning(
        "%s: dropped %s with empty, NaN or infinite values (data.drop_nonfinite); %s remain",
        path, _rows(len(bad_rows)), _rows(int(keep.sum())),
    )
    return frame[keep], values[keep], len(bad_rows)


def _has_infinity(column) -> bool:
    """Whether a label, id or time column holds ±inf (a class, id or time no one can mean; JSON cannot save it)."""
    import pandas as pd

    return pd.api.types.is_float_dtype(column) and bool(np.isinf(column.to_numpy(dtype=np.float64)).any())


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _dropped_note(dropped: int) -> str:
    return f", {_rows(dropped)} with empty, NaN or infinite values dropped" if dropped else ""


def _column_statistics(values: np.ndarray, features: list, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std of the training rows; a column whose mean or std overflows float64 is refused
    (it would be saved as Infinity and its values scaled to 0 or NaN)."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked below, by column
        mean, std = values.mean(axis=0), values.std(axis=0)
    for name, column_mean, column_std, column in zip(features, mean, std, values.T):
        statistic = "mean" if not np.isfinite(column_mean) else "standard deviation" if not np.isfinite(column_std) else None
        if statistic:
            raise DataError(
                f"{path}: column {_name(name)}'s {statistic} overflows (its values reach {np.abs(column).max():.3g}); divide "
                "the column by a power of ten, or leave it out with --set data.columns=..."
            )
    std[std == 0] = 1.0  # a constant column stays constant (0) instead of dividing by zero
    return mean, std


def _check_saved_scaling(features: list, mean: np.ndarray, std: np.ndarray) -> None:
    """A run's saved scaling must be finite with positive stds (an older version could save Infinity)."""
    for name, column_mean, column_std in zip(features, mean, std):
        if not (np.isfinite(column_mean) and np.isfinite(column_std) and column_std > 0):
            raise DataError(
                f"the saved scaling of column {_name(name)} is not finite (mean {column_mean}, std {column_std}), so its "
                "values would be lost; train the model again to save a usable scaling"
            )


def _standardized(values: np.ndarray, mean: np.ndarray, std: np.ndarray, features: list, path: Path) -> np.ndarray:
    """(values - mean) / std, refused by column where a value leaves float32's range (a tiny std, or rows far
    from the training rows)."""
    with np.errstate(over="ignore"):  # checked below, by column
        scaled = (values - mean) / std
    too_large = ~(np.abs(scaled) <= _FLOAT32_MAX)
    if too_large.any():
        column = int(np.flatnonzero(too_large.any(axis=0))[0])
        raise DataError(
            f"{path}: column {_name(features[column])} lies beyond float32's range once standardized (mean "
            f"{mean[column]:.3g}, std {std[column]:.3g}, value {values[too_large[:, column], column][0]:.3g}); "
            "rescale the column, or leave it out with --set data.columns=..."
        )
    return scaled


def _sorted_by_time(frame, path: Path, time_column: str | None, window: int | None, label_column: str | None):
    """The table's rows in time order, after checking the windowing options."""
    import pandas as pd

    if time_column is None or window is None:
        raise DataError(
            "a time series needs both its time column and a window length: "
            "--set data.time_column=NAME --set data.window=LENGTH (time_column=..., window=... in Python)"
        )
    if label_column is not None:
        raise DataError("windows of a time series carry no class labels; drop data.label_column or data.window")
    if time_column not in frame.columns:
        raise DataError(f"{path} has no column {time_column!r}; its columns: {_names(frame.columns)}")
    if int(window) < 1:
        raise DataError(f"window must be a positive number of rows; got {window}")
    times = frame[time_column]
    if not pd.api.types.is_numeric_dtype(times) and not pd.api.types.is_datetime64_any_dtype(times):
        try:
            times = pd.to_datetime(times)
        except (ValueError, TypeError) as error:
            raise DataError(f"{path}: time column {time_column!r} is neither numbers nor dates ({_one_line(error)})") from error
    order = np.argsort(times.to_numpy(), kind="stable")
    return frame.iloc[order]  # the index keeps each row's number in the file, for error messages


def _time_split(
    total: int, val_size: int | float | None, test_size: int | float | None, window: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train, val, test) row indices of a time-sorted table: consecutive blocks, the latest rows for test.

    Sizes are counts or fractions of the rows (default 10% each); each block must hold one window.
    """
    from autoencoders.data.splits import resolve_size

    test = resolve_size(test_size, total, 0.1, "test_size")
    val = resolve_size(val_size, total, 0.1, "val_size")
    train = total - val - test
    short = [name for name, rows in (("train", train), ("val", val), ("test", test)) if rows < window]
    if short:
        raise DataError(
            f"{total} rows split in time into train {train}, val {val} and test {test} rows leave {', '.join(short)} "
            f"shorter than one window of {window}; use a shorter data.window or other val_size/test_size"
        )
    rows = torch.arange(total)
    return rows[:train], rows[train : train + val], rows[train + val :]


def _windowed(
    name: str, path: Path, scaled: torch.Tensor, splits: dict[str, np.ndarray], window: int, stride: int,
    row_ids: np.ndarray, preprocessing: dict[str, Any], dropped: int,
) -> Dataset:
    """Every split cut into windows (N, window, n_columns) every ``stride`` rows; ids: each window's row ids."""
    if stride < 1:
        raise DataError(f"stride must be a positive number of rows; got {stride}")
    items, ids = {}, {}
    for split, rows in splits.items():
        starts = np.arange(0, len(rows) - window + 1, stride)
        index = rows[starts[:, None] + np.arange(window)[None, :]]  # (windows, window) row numbers
        items[split] = scaled[torch.from_numpy(index)]
        ids[split] = row_ids[index].tolist()
    return Dataset(
        name=name,
        train=items["train"], val=items["val"], test=items["test"],
        train_labels=None, val_labels=None, test_labels=None,
        item_shape=(window, scaled.shape[1]),
        value_range=(float(scaled.min()), float(scaled.max())),
        num_classes=0,
        description=(
            f"{len(scaled)} rows x {scaled.shape[1]} numeric columns from {path}, standardized, in time order, "
            f"as windows of {window} rows every {stride}{_dropped_note(dropped)}"
        ),
        preprocessing=preprocessing,
        ids=ids,
    )
