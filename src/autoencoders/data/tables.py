"""The user's table (CSV or Parquet): numeric columns, standardized with the training split's mean and std.

``Dataset.preprocessing`` records the columns, means, stds and label classes, so a later load of the same
or a new table (``preprocessing=``) is scaled exactly as the model saw its training data; ``inverse`` maps
model outputs back to the table's units.
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
) -> Dataset:
    """Rows of a table as float32 (n_columns,) items, standardized; ``label_column`` gives class labels."""
    import pandas as pd

    path = Path(request.name).expanduser()
    frame = _read_table(path)
    # an earlier load's scaling (a run's data may have been of another kind: then it does not apply)
    previous = request.preprocessing if (request.preprocessing or {}).get("kind") == PREPROCESSING_KIND else None
    special = [name for name in (label_column, id_column) if name is not None]
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
