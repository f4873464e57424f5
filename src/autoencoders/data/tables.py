"""The user's table (CSV or Parquet): numeric columns, standardized with the training split's mean and std.

``Dataset.preprocessing`` records the columns, means, stds and label classes, so a later load of the same
or a new table (``preprocessing=``) is scaled exactly as the model saw its training data; ``inverse`` maps
model outputs back to the table's units.

With a ``time_column`` and a ``window`` the table is a time series: rows are sorted by time, split in time
(train the earliest rows, then val, test the latest, so no window straddles two splits) and each split is cut
into windows of ``window`` consecutive rows every ``stride`` rows: items (window, n_columns) for sequence
models. ``Dataset.ids`` then lists, per window, the ids of its rows (the ``id_column``, else the times).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from autoencoders.data.errors import DataError
from autoencoders.data.registry import Dataset, Request
from autoencoders.data.splits import three_way_split

PREPROCESSING_KIND = "standardize"


def _read_table(path: Path):
    import pandas as pd

    try:
        return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:  # pyarrow's errors are ValueErrors
        raise DataError(f"{path} cannot be read as a {path.suffix} table ({error})") from error


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
) -> Dataset:
    """Rows of a table as float32 (n_columns,) items, standardized; ``label_column`` gives class labels.

    With ``time_column`` and ``window``: windows of consecutive rows, (window, n_columns) items (see above).
    """
    import pandas as pd

    path = Path(request.name).expanduser()
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
            f"{path} has no column(s) {', '.join(map(str, absent))}; its columns: {', '.join(map(str, frame.columns))}"
        )
    if not features:
        raise DataError(f"{path} has no feature columns besides the label/id columns")
    non_numeric = [name for name in features if not pd.api.types.is_numeric_dtype(frame[name])]
    if non_numeric:
        numeric = [name for name in features if name not in non_numeric]
        raise DataError(
            f"{path}: column(s) {', '.join(map(str, non_numeric))} are not numeric. Choose numeric columns with "
            f"--set data.columns={','.join(map(str, numeric)) or 'a,b,c'} (columns=[...] in Python), make one the "
            "label with --set data.label_column=NAME, or drop them from the table"
        )
    with_gaps = [name for name in [*features, *special] if frame[name].isna().any()]
    if with_gaps:
        raise DataError(f"{path}: column(s) {', '.join(map(str, with_gaps))} have missing values; fill or drop those rows")

    values = frame[features].to_numpy(dtype=np.float64)
    if window is not None:
        train, val, test = _time_split(len(frame), request.val_size, test_size, int(window))
    else:
        train, val, test = three_way_split(len(frame), request.seed, request.val_size, test_size)
    if previous:
        mean, std = np.asarray(previous["mean"]), np.asarray(previous["std"])
    else:
        mean, std = values[train.numpy()].mean(0), values[train.numpy()].std(0)
        std[std == 0] = 1.0  # a constant column stays constant (0) instead of dividing by zero
    scaled = torch.from_numpy((values - mean) / std).float()

    labels, classes = None, None
    if label_column is not None:
        classes = (previous or {}).get("label_classes") or frame[label_column].drop_duplicates().sort_values().tolist()
        codes = pd.Categorical(frame[label_column], categories=classes).codes
        if (codes < 0).any():
            unknown = sorted(set(frame[label_column][codes < 0].astype(str)))
            raise DataError(f"{path}: labels {', '.join(unknown[:10])} are not among the model's classes {classes}")
        labels = torch.from_numpy(codes.astype(np.int64))
    row_ids = frame[id_column].to_numpy() if id_column is not None else None
    splits = {"train": train, "val": val, "test": test}
    if window is not None:
        return _windowed(
            request.name, path, scaled, {split: index.numpy() for split, index in splits.items()}, int(window),
            int(stride or window), frame[id_column if id_column is not None else time_column].to_numpy(),
            preprocessing={
                "kind": PREPROCESSING_KIND, "columns": [str(name) for name in features],
                "mean": mean.tolist(), "std": std.tolist(), "label_classes": None,
            },
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
        description=f"{len(frame)} rows x {len(features)} numeric columns from {path}, standardized",
        preprocessing={
            "kind": PREPROCESSING_KIND, "columns": [str(name) for name in features],
            "mean": mean.tolist(), "std": std.tolist(), "label_classes": classes,
        },
        class_names=None if classes is None else [str(name) for name in classes],
        ids=None if row_ids is None else {split: row_ids[index.numpy()].tolist() for split, index in splits.items()},
    )


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
        raise DataError(f"{path} has no column {time_column!r}; its columns: {', '.join(map(str, frame.columns))}")
    if int(window) < 1:
        raise DataError(f"window must be a positive number of rows; got {window}")
    times = frame[time_column]
    if not pd.api.types.is_numeric_dtype(times) and not pd.api.types.is_datetime64_any_dtype(times):
        try:
            times = pd.to_datetime(times)
        except (ValueError, TypeError) as error:
            raise DataError(f"{path}: time column {time_column!r} is neither numbers nor dates ({error})") from error
    order = np.argsort(times.to_numpy(), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


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
    row_ids: np.ndarray, preprocessing: dict[str, Any],
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
            f"as windows of {window} rows every {stride}"
        ),
        preprocessing=preprocessing,
        ids=ids,
    )
