"""What ``autoencoders detect`` does: score the rows or images of a file or folder, flag the outliers and say
which features make each row unusual.

``RUN_OR_DETECTOR`` is either a run folder (``autoencoders train``) or a folder written by
``AnomalyDetector.save_pretrained`` (or ``AnomalyEnsemble.save_pretrained``); which one is read off what its
config.json declares (an ``"anomaly_detector"`` or ``"anomaly_ensemble"`` section), not guessed from file names.

- A run folder: a new ``AnomalyDetector`` is fitted on normal items (``--reference``, else the run's training
  split) in the run's model space, and the scores, the worst items and ``summary.json`` (the threshold and how
  it was set, the features the flagged rows owe their error to) are kept in ``RUN/anomaly/`` for the report.
- A saved detector: it scores as it was saved, with its own score, scaling (a table's raw columns go in, it
  scales them) and threshold (the share ``contamination`` of the items it was fitted on); only an explicit
  threshold or a share of the scored items replace it. Nothing is written into the detector's folder: the
  summary goes beside the scores (``scores.csv`` -> ``scores.summary.json``).

Tables gain, per row, the three columns that contribute most to its reconstruction error
(``AnomalyDetector.explain``): ``top_feature_1``/``top_share_1`` ... ``top_feature_3``/``top_share_3``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from autoencoders.errors import InputError
from autoencoders.files import atomic_write_bytes, atomic_write_json

DETECTION_FOLDER = "anomaly"  # inside the run folder: the last detection, which the report shows
WORST_ITEMS = 16
TOP_FEATURES = 3  # per row of a table, in the scores: the columns contributing most to its reconstruction error
SUMMARY_FEATURES = 5  # in the summary: the columns contributing most on average to the flagged rows
MAX_CONFIG_BYTES = 1 << 20


def saved_detector_class(folder: str | Path):
    """``AnomalyDetector`` or ``AnomalyEnsemble`` when ``folder`` is one that ``save_pretrained`` wrote (its
    config.json declares the ``"anomaly_detector"`` or ``"anomaly_ensemble"`` section), else None (a run)."""
    from autoencoders.uses.anomaly import DETECTOR_SECTION, ENSEMBLE_SECTION, AnomalyDetector, AnomalyEnsemble

    path = Path(folder) / "config.json"
    try:
        with path.open("rb") as handle:
            config = json.loads(handle.read(MAX_CONFIG_BYTES + 1))
    except (OSError, ValueError, RecursionError):
        return None  # no readable config: the run's reader says what is wrong
    if not isinstance(config, dict):
        return None
    for section, cls in ((DETECTOR_SECTION, AnomalyDetector), (ENSEMBLE_SECTION, AnomalyEnsemble)):
        if isinstance(config.get(section), dict) and config[section].get("class") == cls.__name__:
            return cls
    return None


def read_items(path: str | Path, run_config: dict[str, Any], id_column: str | None = None) -> tuple[Tensor, list]:
    """The items of a file or folder in the model's space, with one id each.

    A .csv/.parquet table gives rows scaled as the run's training table was, ids from ``id_column`` (or the
    run's id column) else the row number; images (a file or a folder) are read by
    ``autoencoders.data.inputs``, resampled to the model's size (a note says how many were), with their paths
    relative to the folder as ids; a .npy array gives its items with their index as id.
    """
    items, ids, _ = _read_run_items(path, run_config, id_column)
    return items, ids


def _is_table(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".csv", ".parquet", ".pq")


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; --data takes a .csv/.parquet table, a folder of images or a .npy array")
    return path


def _read_images(path: Path, model_config: dict[str, Any]) -> tuple[Tensor, list]:
    from autoencoders.data.inputs import read_items as read_inputs

    items = read_inputs(path, model_config["input_shape"], model_config.get("value_range", (0.0, 1.0)), resize=True)
    return items.values, list(range(len(items.values))) if items.kind == "array" else items.names


def _read_run_items(path: str | Path, run_config: dict[str, Any], id_column: str | None) -> tuple[Tensor, list, list | None]:
    """``read_items`` with the names of a table's columns (None for images and arrays)."""
    path = _existing(path)
    if _is_table(path):
        return _read_table_rows(path, run_config, id_column)
    return (*_read_images(path, run_config["model"]["config"]), None)


def _read_frame(path: Path, id_column: str | None):
    import pandas as pd

    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ValueError(f"{path} cannot be read as a {path.suffix} table ({error})") from error
    if id_column is not None and id_column not in frame.columns:
        raise ValueError(f"{path} has no id column {id_column!r}; its columns: {', '.join(map(str, frame.columns))}")
    return frame


def _check_columns(frame, path: Path, columns: list) -> None:
    import pandas as pd

    absent = [name for name in columns if name not in frame.columns]
    if absent:
        raise ValueError(f"{path} lacks the model's column(s) {', '.join(map(str, absent))}; the model reads {', '.join(map(str, columns))}")
    non_numeric = [name for name in columns if not pd.api.types.is_numeric_dtype(frame[name])]
    if non_numeric:
        raise ValueError(f"{path}: column(s) {', '.join(map(str, non_numeric))} are not numeric; name the id column with --id-column")


def _read_table_rows(path: Path, run_config: dict[str, Any], id_column: str | None) -> tuple[Tensor, list, list]:
    data = run_config.get("data") or {}
    id_column = id_column or (data.get("options") or {}).get("id_column")
    frame = _read_frame(path, id_column)
    preprocessing = data.get("preprocessing") or {}
    label_column = (data.get("options") or {}).get("label_column")
    if preprocessing.get("kind") == "standardize":
        columns = preprocessing["columns"]
    else:
        columns = [name for name in frame.columns if name not in (id_column, label_column)]
    _check_columns(frame, path, columns)
    from autoencoders.uses.anomaly import _standardize, as_items

    items = as_items(frame[columns].to_numpy(dtype=np.float64))
    if preprocessing.get("kind") == "standardize":
        items = _standardize(items, preprocessing)
    ids = frame[id_column].tolist() if id_column is not None else list(range(len(frame)))
    return items, ids, [str(name) for name in columns]


def _detector_model_config(detector) -> dict[str, Any]:
    """The config of the model of a saved detector (of its first member for an ensemble)."""
    return getattr(detector, "detectors_", [detector])[0].model_.config.to_dict()


def _detector_columns(path: Path, detector, available: list, id_column: str | None) -> tuple[list, bool]:
    """The columns of ``path`` a saved ``detector`` scores, and whether it knows them by name: the columns it was
    fitted on, else every column but the id column, as many as it was fitted on."""
    names = getattr(getattr(detector, "detectors_", [detector])[0], "feature_names_in_", None)
    if names is not None:
        return [str(name) for name in names], True
    columns = [name for name in available if name != id_column]
    if len(columns) != detector.n_features_in_:
        raise InputError(
            f"{path} has {len(columns)} column(s) besides the id column ({', '.join(map(str, columns))}), but the "
            f"detector was fitted on {detector.n_features_in_} unnamed ones; name the id column with --id-column"
        )
    return columns, False


def _read_detector_items(path: Path, detector, id_column: str | None) -> tuple[Any, list, list | None]:
    """The items of ``path`` as the saved ``detector`` takes them: a table's raw columns (it scales them itself),
    as a DataFrame of the columns it was fitted on when it knows their names; images in its model's size."""
    if not _is_table(path):
        return (*_read_images(path, _detector_model_config(detector)), None)
    frame = _read_frame(path, id_column)
    columns, named = _detector_columns(path, detector, list(frame.columns), id_column)
    _check_columns(frame, path, columns)
    ids = frame[id_column].tolist() if id_column is not None else list(range(len(frame)))
    values = frame[columns].astype(np.float64)
    return (values if named else values.to_numpy()), ids, [str(name) for name in columns]


def _streamed_detector_items(path: Path, detector, id_column: str | None):
    """``_read_detector_items`` for data larger than memory: the items read chunk by chunk (``streamed_detect``)."""
    from autoencoders.uses.streamed_detect import model_items, table_items

    if _is_table(path):
        from autoencoders.data.streamed_tables import table_columns

        return table_items(path, _detector_columns(path, detector, table_columns(path), id_column)[0], id_column)
    return model_items(path, _detector_model_config(detector))


def _streamed_run_items(path: Path, run_config: dict[str, Any], id_column: str | None):
    """``_read_run_items`` for data larger than memory: the items read chunk by chunk (``streamed_detect``), a
    table's rows scaled as the run's training table was."""
    from autoencoders.uses.streamed_detect import model_items, table_items

    if _is_table(path):
        data = run_config.get("data") or {}
        preprocessing = data.get("preprocessing") or {}
        if preprocessing.get("kind") != "standardize":
            raise InputError(f"{path} is a table, but the run was not trained on one; it cannot score its rows")
        return table_items(path, preprocessing["columns"], id_column or (data.get("options") or {}).get("id_column"),
                           shift=np.asarray(preprocessing["mean"], dtype=np.float32),
                           scale=np.asarray(preprocessing["std"], dtype=np.float32))
    return model_items(path, run_config["model"]["config"])


def _top_features(shares: np.ndarray, columns: list) -> dict[str, list]:
    """Per row, the ``TOP_FEATURES`` columns with the largest shares, largest first: the scores' extra columns."""
    order = np.argsort(-shares, axis=1, kind="stable")[:, :TOP_FEATURES]
    extra: dict[str, list] = {}
    for rank in range(order.shape[1]):
        extra[f"top_feature_{rank + 1}"] = [columns[index] for index in order[:, rank]]
        extra[f"top_share_{rank + 1}"] = np.round(np.take_along_axis(shares, order[:, rank:rank + 1], 1)[:, 0], 4).tolist()
    return extra


def _flagged_features(shares: np.ndarray, columns: list, flagged: np.ndarray) -> list[dict[str, Any]]:
    """The ``SUMMARY_FEATURES`` columns with the largest mean share of the flagged rows' reconstruction error."""
    if not flagged.any():
        return []
    mean = shares[flagged].mean(0)
    order = np.argsort(-mean, kind="stable")[:SUMMARY_FEATURES]
    return [{"feature": columns[index], "mean_share": round(float(mean[index]), 4)} for index in order]


def detect(
    run: str | Path,
    data: str | Path,
    score: str | None = None,
    threshold: float | None = None,
    contamination: float | None = None,
    top: float | None = None,
    id_column: str | None = None,
    reference: str | Path | None = None,
    reference_items: int = 10000,
    data_dir: str | Path | None = None,
    output: str | Path | None = None,
    **detector_options: Any,
):
    """Score every row or image of ``data``; returns a DataFrame (id, anomaly_score, outlier, and for tables
    top_feature_1/top_share_1 ... top_feature_3/top_share_3, the columns contributing most to the row's
    reconstruction error, from ``AnomalyDetector.explain``), written to ``output`` (.csv) when given. Its
    ``attrs["summary"]`` holds the threshold, how it was set and, for tables, the columns the flagged rows owe
    their error to on average. ``output`` may also be a .parquet file.

    Data larger than memory (a table over ``streaming.STREAM_TABLE_ABOVE_BYTES``, a ``.npy`` array or a folder of
    images whose float32 items would pass ``streaming.STREAM_ABOVE_BYTES``) is scored in chunks and its scores
    written as they go (``streamed_detect``), with the same scores, threshold and lines: the DataFrame then
    holds the flagged rows only.

    ``run`` is a run folder or a folder written by ``AnomalyDetector.save_pretrained`` (or
    ``AnomalyEnsemble.save_pretrained``), told apart by what its config.json declares.

    ``contamination`` has scikit-learn's and PyOD's meaning, as in ``AnomalyDetector``: the share of outliers
    expected among the items the detector was fitted on, so the threshold is the ``1 - contamination`` quantile
    of their anomaly scores. ``threshold`` (on the anomaly score) or ``top`` (flag that share of the scored
    items, whatever their scores) replace it.

    With a run, a detector scoring ``score`` (default "recon"; ``detector_options`` are its further parameters)
    is fitted on ``reference`` (a file or folder like ``data``) or else on the first ``reference_items`` items
    of the run's training split, with ``contamination`` (default 0.01). The scores, the worst items and
    summary.json are kept in ``run/anomaly/`` for the report.

    With a saved detector, it scores as saved: its score, its scaling and its threshold (from the contamination
    it was fitted with, unless ``contamination`` is given: then from the same fitted scores, which it keeps);
    the options that fit a detector are refused. The summary is written beside ``output``
    (``scores.csv`` -> ``scores.summary.json``), not into the detector's folder.
    """
    if sum(value is not None for value in (threshold, contamination, top)) > 1:
        raise InputError("give one of a threshold, a contamination or a top share, not several")
    if contamination is not None and not 0.0 < contamination <= 0.5:
        raise InputError(f"contamination is the share of outliers expected among the fitted items, in (0, 0.5]; got {contamination}")
    if top is not None and not 0.0 < top < 1.0:
        raise InputError(f"top is the share of the scored items to flag, in (0, 1); got {top}")
    if output is not None and Path(output).suffix.lower() not in (".csv", ".parquet"):
        raise InputError(f"the scores are written as CSV or Parquet; output must be a .csv or .parquet file, got {output}")
    run = Path(run)
    detector_options = {name: value for name, value in detector_options.items() if value is not None}
    saved = saved_detector_class(run)
    if saved is not None:
        fitting = {"score": score, "reference": reference, **detector_options}
        given = [name for name, value in fitting.items() if value is not None]
        if given:
            raise InputError(
                f"{run} holds a saved {saved.__name__}, which scores with its own score, scaling and threshold; the "
                f"option(s) {', '.join(given)} fit a new detector on a run folder. Only a threshold, a contamination "
                "or a top share replace its threshold"
            )
        return _detect_with_saved(saved.from_pretrained(run), run, data, threshold, contamination, top, id_column, output)
    return _detect_with_run(run, data, score or "recon", threshold, contamination, top,
                            id_column, reference, reference_items, data_dir, output, detector_options)


def _threshold(scores: np.ndarray, fitted_scores: np.ndarray, threshold: float | None, contamination: float | None,
               top: float | None, fitted_what: str) -> tuple[float, str]:
    """The anomaly-score threshold and how it was set: given, the top share of the scored items, or from the
    contamination of the fitted items (their ``1 - contamination`` quantile)."""
    if threshold is not None:
        return float(threshold), "given"
    if top is not None:
        return float(np.quantile(scores, 1.0 - top)), f"top {top:g} of the {len(scores)} scored items"
    return (float(np.quantile(fitted_scores, 1.0 - contamination)),
            f"contamination {contamination:g}, the {1 - contamination:g} quantile of the {len(fitted_scores)} {fitted_what}' anomaly scores")


def _frame(ids: list, scores: np.ndarray, threshold: float, shares: np.ndarray | None, columns: list | None):
    import pandas as pd

    frame = pd.DataFrame({"id": ids, "anomaly_score": scores, "outlier": (scores > threshold).astype(int)})
    if shares is not None and columns is not None:
        for name, values in _top_features(shares, columns).items():
            frame[name] = values
    return frame


def _summary(frame, data, score: str, threshold: float, source: str, shares, columns) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "data": str(data), "score": score, "threshold": float(threshold), "threshold_from": source,
        "items": len(frame), "outliers": int(frame["outlier"].sum()),
    }
    if shares is not None and columns is not None:
        top = _flagged_features(shares, columns, frame["outlier"].to_numpy() == 1)
        if top:
            summary["flagged_features"] = top  # the columns the flagged rows owe their reconstruction error to
    return summary


def _write_scores(frame, output: str | Path | None) -> None:
    if output is not None:
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.suffix.lower() == ".parquet":
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            atomic_write_bytes(output, buffer.getvalue())
        else:
            atomic_write_bytes(output, frame.to_csv(index=False).encode())


def summary_path(output: str | Path) -> Path:
    """Where ``detect`` with a saved detector writes its summary: beside the scores, scores.csv -> scores.summary.json."""
    output = Path(output)
    return output.with_name(output.stem + ".summary.json")


def _saved_threshold(detector, scores: np.ndarray, threshold, contamination, top) -> tuple[float, str]:
    """A saved detector's threshold, unless a threshold, a contamination or a top share is given (``_threshold``)."""
    if threshold is None and contamination is None and top is None:
        share = detector._contamination()
        return float(detector.threshold_), (f"the saved detector's: contamination {share:g}, the {1 - share:g} quantile "
                                            f"of the {len(detector.fit_anomaly_scores_)} fitted items' anomaly scores")
    return _threshold(scores, detector.fit_anomaly_scores_, threshold, contamination, top, "fitted items")


def _detect_with_saved(detector, folder: Path, data, threshold, contamination, top, id_column, output):
    from autoencoders.uses.streamed_detect import is_large, score_streamed

    path = _existing(data)
    score = getattr(detector, "scores", "ensemble")
    if is_large(path, _detector_model_config(detector)["input_shape"]):
        streamed = score_streamed(
            detector, _streamed_detector_items(path, detector, id_column),
            lambda scores: _saved_threshold(detector, scores, threshold, contamination, top),
            [Path(output)] if output is not None else [], score,
        )
        frame, summary = streamed.frame, {**streamed.summary, "detector": str(folder)}
    else:
        X, ids, columns = _read_detector_items(path, detector, id_column)
        scores = detector.anomaly_score(X)
        flag_above, source = _saved_threshold(detector, scores, threshold, contamination, top)
        shares = None
        if columns is not None and hasattr(detector, "explain"):
            shares = detector.explain(X)
            shares = shares.to_numpy() if hasattr(shares, "to_numpy") else shares
        frame = _frame(ids, scores, flag_above, shares, columns)
        summary = {**_summary(frame, data, score, flag_above, source, shares, columns), "detector": str(folder)}
        _write_scores(frame, output)
    if output is not None:
        summary["scores"] = str(output)
        atomic_write_json(summary_path(output), summary)
    frame.attrs["summary"] = {**summary, "summary_file": str(summary_path(output)) if output is not None else None}
    return frame


def _detect_with_run(run: Path, data, score, threshold, contamination, top, id_column, reference, reference_items,
                     data_dir, output, detector_options):
    from autoencoders.io import load, load_run_data, read_config
    from autoencoders.uses.anomaly import AnomalyDetector
    from autoencoders.uses.streamed_detect import is_large, score_streamed

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
    detector = AnomalyDetector(model=load(run), scores=score, contamination=contamination, **detector_options).fit(reference_set)
    path, folder = _existing(data), run / DETECTION_FOLDER

    def threshold_of(scores: np.ndarray) -> tuple[float, str]:
        return _threshold(scores, detector.fit_anomaly_scores_, threshold, detector._contamination(), top, "reference items")

    if is_large(path, config["model"]["config"]["input_shape"]):
        items = _streamed_run_items(path, config, id_column)
        streamed = score_streamed(detector, items, threshold_of,
                                  [folder / "scores.csv"] + ([Path(output)] if output is not None else []), score)
        frame, worst_items = streamed.frame, items.items[streamed.worst]
        summary = {**streamed.summary, "worst_ids": streamed.worst_ids, "worst_scores": streamed.worst_scores}
    else:
        items, ids, columns = _read_run_items(path, config, id_column)
        scores = detector.anomaly_score(items)
        flag_above, source = threshold_of(scores)
        shares = detector.explain(items) if columns is not None else None
        frame = _frame(ids, scores, flag_above, shares, columns)
        worst = np.argsort(-scores, kind="stable")[:WORST_ITEMS]
        atomic_write_bytes(folder / "scores.csv", frame.to_csv(index=False).encode())
        _write_scores(frame, output)
        worst_items = items[torch.from_numpy(worst.copy())]
        summary = {
            **_summary(frame, data, score, flag_above, source, shares, columns),
            "worst_ids": frame["id"].iloc[worst].tolist(),
            "worst_scores": scores[worst].tolist(),
        }
    buffer = io.BytesIO()
    np.save(buffer, worst_items.numpy())
    atomic_write_bytes(folder / "worst.npy", buffer.getvalue())
    atomic_write_json(folder / "summary.json", summary)
    frame.attrs["summary"] = {**summary, "summary_file": str(folder / "summary.json")}
    return frame
