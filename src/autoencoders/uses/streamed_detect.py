"""``detect`` on a table larger than memory: rows scored chunk by chunk, scores written as they go.

The table is read through its float32 cache (``data.streamed_tables``) in chunks of ``CHUNK_ROWS`` rows. The
first pass keeps, per row, only its anomaly score and its three top features (index and share): 26 bytes a
row. The threshold then follows as for a table in memory; the second pass writes every row's line (id = row
number, anomaly_score, outlier, top_feature_k, top_share_k) to ``RUN/anomaly/scores.csv`` and to ``output``
(.csv or .parquet) block by block, and explains the flagged rows again for the summary's features.

What is returned is a DataFrame of the flagged rows only (every row's line is in the files), with the same
``attrs["summary"]``; ``summary["items"]`` counts the rows scored.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from autoencoders.files import atomic_write_bytes, atomic_write_json
from autoencoders.progress import track
from autoencoders.uses.outputs import table_writer

CHUNK_ROWS = 16384


def detect_streamed_table(detector, run: Path, path: Path, config: dict[str, Any], threshold_setting, contamination: float,
                          top_share: float | None, output, score: str):
    from autoencoders.data.streamed_tables import scaled_table_rows
    from autoencoders.uses.detect import (
        DETECTION_FOLDER, SUMMARY_FEATURES, TOP_FEATURES, WORST_ITEMS, _threshold,
    )

    preprocessing = (config.get("data") or {}).get("preprocessing") or {}
    if preprocessing.get("kind") != "standardize":
        raise ValueError(f"{path} is a table, but the run was not trained on one; it cannot score its rows")
    rows = scaled_table_rows(path, preprocessing)
    columns = [str(name) for name in preprocessing["columns"]]
    starts = range(0, len(rows), CHUNK_ROWS)
    scores = np.empty(len(rows), dtype=np.float64)
    top = np.empty((len(rows), TOP_FEATURES), dtype=np.int32)
    top_shares = np.empty((len(rows), TOP_FEATURES), dtype=np.float32)
    for start in track(starts, len(starts), f"scoring {len(rows)} rows of {path.name}"):
        items = rows[start : start + CHUNK_ROWS]
        stop = start + len(items)
        scores[start:stop] = detector.anomaly_score(items)
        shares = np.asarray(detector.explain(items))
        order = np.argsort(-shares, axis=1, kind="stable")[:, :TOP_FEATURES]
        top[start:stop], top_shares[start:stop] = order, np.take_along_axis(shares, order, 1)

    threshold, source = _threshold(scores, detector.fit_anomaly_scores_, threshold_setting, contamination, top_share,
                                   "reference items")
    flagged_share_sum, flagged_frames = np.zeros(len(columns)), []
    names = np.asarray(columns, dtype=object)
    folder = run / DETECTION_FOLDER
    targets = [folder / "scores.csv"] + ([Path(output)] if output is not None else [])
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(table_writer(target)) for target in targets]
        for start in track(starts, len(starts), f"writing the scores of {len(rows)} rows"):
            stop = min(start + CHUNK_ROWS, len(rows))
            outlier = scores[start:stop] > threshold
            block = {"id": np.arange(start, stop), "anomaly_score": scores[start:stop], "outlier": outlier.astype(np.int64)}
            for rank in range(TOP_FEATURES):
                block[f"top_feature_{rank + 1}"] = names[top[start:stop, rank]].tolist()
                block[f"top_share_{rank + 1}"] = np.round(top_shares[start:stop, rank].astype(np.float64), 4)
            for writer in writers:
                writer.write(block)
            if outlier.any():
                flagged = np.flatnonzero(outlier) + start
                flagged_share_sum += np.asarray(detector.explain(rows[flagged])).sum(0)
                flagged_frames.append({key: np.asarray(values)[outlier] for key, values in block.items()})

    import pandas as pd

    frame = pd.concat([pd.DataFrame(part) for part in flagged_frames], ignore_index=True) if flagged_frames else pd.DataFrame(
        columns=list(block))
    outliers = len(frame)
    worst = np.argsort(-scores, kind="stable")[:WORST_ITEMS]
    buffer = io.BytesIO()
    np.save(buffer, rows[worst].numpy())
    atomic_write_bytes(folder / "worst.npy", buffer.getvalue())
    summary: dict[str, Any] = {
        "data": str(path), "score": score, "threshold": float(threshold), "threshold_from": source,
        "items": len(rows), "outliers": outliers,
    }
    if outliers:
        mean = flagged_share_sum / outliers
        order = np.argsort(-mean, kind="stable")[:SUMMARY_FEATURES]
        summary["flagged_features"] = [{"feature": columns[i], "mean_share": round(float(mean[i]), 4)} for i in order]
    summary.update(worst_ids=[int(i) for i in worst], worst_scores=scores[worst].tolist())
    atomic_write_json(folder / "summary.json", summary)
    frame.attrs["summary"] = {**summary, "summary_file": str(folder / "summary.json")}
    return frame
