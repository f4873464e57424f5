"""What ``autoencoders detect`` does: read the items of a file or folder in a run's model space and score them
with an ``AnomalyDetector`` fitted on normal items, keeping the scores and the worst items in ``RUN/anomaly/``
for the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from autoencoders.files import atomic_write_bytes, atomic_write_json

DETECTION_FOLDER = "anomaly"  # inside the run folder: the last detection, which the report shows
WORST_ITEMS = 16


def read_items(path: str | Path, run_config: dict[str, Any], id_column: str | None = None) -> tuple[Tensor, list]:
    """The items of a file or folder in the model's space, with one id each.

    A .csv/.parquet table gives rows scaled as the run's training table was, ids from ``id_column`` (or the
    run's id column) else the row number; images (a file or a folder) are read by
    ``autoencoders.data.inputs``, resampled to the model's size (a note says how many were), with their paths
    relative to the folder as ids; a .npy array gives its items with their index as id.
    """
    from autoencoders.data.inputs import read_items as read_inputs

    path = Path(path).expanduser()
    model_config = run_config["model"]["config"]
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; --data takes a .csv/.parquet table, a folder of images or a .npy array")
    if path.is_file() and path.suffix.lower() in (".csv", ".parquet", ".pq"):
        return _read_table_rows(path, run_config, id_column)
    items = read_inputs(path, model_config["input_shape"], model_config.get("value_range", (0.0, 1.0)), resize=True)
    return items.values, list(range(len(items.values))) if items.kind == "array" else items.names


def _read_table_rows(path: Path, run_config: dict[str, Any], id_column: str | None) -> tuple[Tensor, list]:
    import pandas as pd

    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ValueError(f"{path} cannot be read as a {path.suffix} table ({error})") from error
    data = run_config.get("data") or {}
    id_column = id_column or (data.get("options") or {}).get("id_column")
    if id_column is not None and id_column not in frame.columns:
        raise ValueError(f"{path} has no id column {id_column!r}; its columns: {', '.join(map(str, frame.columns))}")
    preprocessing = data.get("preprocessing") or {}
    label_column = (data.get("options") or {}).get("label_column")
    if preprocessing.get("kind") == "standardize":
        columns = preprocessing["columns"]
    else:
        columns = [name for name in frame.columns if name not in (id_column, label_column)]
    absent = [name for name in columns if name not in frame.columns]
    if absent:
        raise ValueError(f"{path} lacks the model's column(s) {', '.join(map(str, absent))}; the model reads {', '.join(map(str, columns))}")
    non_numeric = [name for name in columns if not pd.api.types.is_numeric_dtype(frame[name])]
    if non_numeric:
        raise ValueError(f"{path}: column(s) {', '.join(map(str, non_numeric))} are not numeric; name the id column with --id-column")
    from autoencoders.uses.anomaly import _standardize, as_items

    items = as_items(frame[columns].to_numpy(dtype=np.float64))
    if preprocessing.get("kind") == "standardize":
        items = _standardize(items, preprocessing)
    ids = frame[id_column].tolist() if id_column is not None else list(range(len(frame)))
    return items, ids


def detect(
    run: str | Path,
    data: str | Path,
    score: str = "recon",
    threshold: float | None = None,
    contamination: float | None = None,
    quantile: float = 0.99,
    id_column: str | None = None,
    reference: str | Path | None = None,
    reference_items: int = 10000,
    data_dir: str | Path | None = None,
    **detector_options: Any,
):
    """Score every row or image of ``data`` with the model of ``run``; returns a DataFrame (id, anomaly_score,
    outlier) and keeps it, with the worst items, in ``run/anomaly/`` for the report.

    The detector is fitted on ``reference`` (a file or folder like ``data``) or else on the first
    ``reference_items`` items of the run's training split. The threshold is ``threshold`` (on the anomaly
    score), else the one flagging the top ``contamination`` fraction of ``data``, else the ``quantile`` of the
    reference's scores.
    """
    import io

    import pandas as pd

    from autoencoders.io import load, load_run_data, read_config
    from autoencoders.uses.anomaly import AnomalyDetector

    if threshold is not None and contamination is not None:
        raise ValueError("give either a threshold or a contamination, not both")
    if contamination is not None and not 0.0 < contamination < 1.0:
        raise ValueError(f"contamination is the fraction of items to flag, in (0, 1); got {contamination}")
    run = Path(run)
    config = read_config(run)
    if reference is not None:
        reference_set, _ = read_items(reference, config, id_column)
    else:
        try:
            reference_set = load_run_data(run, data_dir=data_dir).split("train")
        except Exception as error:  # any failure to rebuild the training data: the user can name other normal data
            raise ValueError(
                f"the run's training data cannot be loaded to fit the detector ({error}); pass normal data with --reference"
            ) from error
    reference_set = reference_set[:reference_items]
    # the model itself, not the run's path: the items here are in the model's space already (a table is
    # standardized by read_items and load_run_data), so the detector must not scale them again
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), e.g. 0.99 flags the top 1% of the reference items; got {quantile!r}")
    detector = AnomalyDetector(model=load(run), scores=score, **detector_options).fit(reference_set)
    items, ids = read_items(data, config, id_column)
    scores = detector.anomaly_score(items)
    if threshold is not None:
        source = "given"
    elif contamination is not None:
        threshold, source = float(np.quantile(scores, 1.0 - contamination)), f"top {contamination:g} of the scored items"
    else:
        threshold = float(np.quantile(detector.fit_anomaly_scores_, quantile))
        source = f"quantile {quantile:g} of {len(reference_set)} reference items' scores"
    frame = pd.DataFrame({"id": ids, "anomaly_score": scores, "outlier": (scores > threshold).astype(int)})

    folder = run / DETECTION_FOLDER
    worst = np.argsort(-scores, kind="stable")[:WORST_ITEMS]
    atomic_write_bytes(folder / "scores.csv", frame.to_csv(index=False).encode())
    buffer = io.BytesIO()
    np.save(buffer, items[torch.from_numpy(worst.copy())].numpy())
    atomic_write_bytes(folder / "worst.npy", buffer.getvalue())
    atomic_write_json(folder / "summary.json", {
        "data": str(data), "score": score, "threshold": float(threshold), "threshold_from": source,
        "items": len(frame), "outliers": int(frame["outlier"].sum()),
        "worst_ids": frame["id"].iloc[worst].tolist(),
        "worst_scores": scores[worst].tolist(),
    })
    return frame
