"""``detect`` and ``evaluate`` on data larger than memory (the size thresholds lowered here): a saved detector
on a table, a run on a .npy array and on a folder of images, ids from a table's column, all give the in-memory
path's scores, flags and lines, written chunk by chunk; ``evaluate`` streams and gives the in-memory numbers."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.io import loadmat
from typer.testing import CliRunner

import autoencoders
from autoencoders.data import streaming
from autoencoders.uses.anomaly import AnomalyDetector
from autoencoders.uses.detect import detect

DATA = Path("/work/shared/data")
SETTINGS = dict(hidden=(16,), latent_dim=4, batch_size=64, progress=False, seed=1)


@pytest.fixture(scope="module")
def cardio(tmp_path_factory) -> Path:
    """The first 600 rows of ODDS cardio, with a string id column."""
    X = loadmat(DATA / "odds" / "cardio.mat")["X"][:600]
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])
    frame.insert(0, "id", [f"row-{i:04d}" for i in range(len(frame))])
    path = tmp_path_factory.mktemp("cardio") / "cardio.parquet"
    frame.to_parquet(path, row_group_size=250)
    return path


@pytest.fixture(scope="module")
def detector_folder(cardio, tmp_path_factory) -> Path:
    """The default detector (bagged-ae, isolation score), fitted on named columns and saved: it scales them itself."""
    frame = pd.read_parquet(cardio).drop(columns="id")
    folder = tmp_path_factory.mktemp("detector") / "detector"
    AnomalyDetector(max_steps=30, contamination=0.05).fit(frame.iloc[:400]).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """300 MNIST test digits as a uint8 .npy (N, 1, 28, 28)."""
    with gzip.open(DATA / "mnist" / "t10k-images-idx3-ubyte.gz") as handle:
        images = np.frombuffer(handle.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)[:300]
    path = tmp_path_factory.mktemp("digits") / "digits.npy"
    np.save(path, images)
    return path


@pytest.fixture(scope="module")
def digits_run(digits, tmp_path_factory) -> Path:
    return autoencoders.train("ae", str(digits), tmp_path_factory.mktemp("runs") / "ae", max_steps=5, **SETTINGS)


def streamed(monkeypatch, chunk: int = 128) -> None:
    """Every table, array and image folder is now "larger than memory", scored ``chunk`` items at a time."""
    import autoencoders.uses.streamed_detect as streamed_detect

    monkeypatch.setattr(streaming, "STREAM_TABLE_ABOVE_BYTES", 1000)
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", 1000)
    monkeypatch.setattr(streamed_detect, "CHUNK_ROWS", chunk)


def same_lines(written: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(written.columns) == list(expected.columns) and len(written) == len(expected)
    for column in written.columns:
        if column == "anomaly_score" or column.startswith("top_share"):
            np.testing.assert_allclose(written[column], expected[column], rtol=1e-6, atol=1e-4 if column != "anomaly_score" else 0)
        elif column.startswith("top_feature"):
            assert (written[column] == expected[column]).mean() > 0.98  # near-ties may swap between batchings
        else:
            assert written[column].tolist() == expected[column].tolist(), column


@pytest.mark.parametrize("setting", [{}, {"contamination": 0.1}, {"top": 0.07}])
def test_a_saved_detector_streams_a_large_table_with_the_in_memory_lines(cardio, detector_folder, tmp_path, monkeypatch, setting):
    whole = detect(detector_folder, cardio, id_column="id", output=tmp_path / "whole.parquet", **setting)
    streamed(monkeypatch)
    flagged = detect(detector_folder, cardio, id_column="id", output=tmp_path / "streamed.parquet", **setting)
    written = pd.read_parquet(tmp_path / "streamed.parquet")
    same_lines(written, pd.read_parquet(tmp_path / "whole.parquet"))
    assert written["id"].iloc[0] == "row-0000" and flagged["id"].tolist() == whole["id"][whole["outlier"] == 1].tolist()
    summaries = [json.loads((tmp_path / f"{name}.summary.json").read_text()) for name in ("whole", "streamed")]
    for key in ("threshold", "threshold_from", "items", "outliers", "detector"):
        assert summaries[0][key] == summaries[1][key], key
    assert summaries[1]["outliers"] > 0 and summaries[1]["flagged_features"][0] == summaries[0]["flagged_features"][0]


def test_a_streamed_csv_table_written_as_csv_reads_back_as_the_in_memory_csv(cardio, detector_folder, tmp_path, monkeypatch):
    table = tmp_path / "cardio.csv"
    pd.read_parquet(cardio).to_csv(table, index=False)
    detect(detector_folder, table, id_column="id", output=tmp_path / "whole.csv")
    streamed(monkeypatch, chunk=200)
    flagged = detect(detector_folder, table, id_column="id", output=tmp_path / "streamed.csv")
    assert len(flagged) == flagged.attrs["summary"]["outliers"] < 600  # streamed: the flagged rows only come back
    written = pd.read_csv(tmp_path / "streamed.csv")
    same_lines(written, pd.read_csv(tmp_path / "whole.csv"))
    assert written["id"].iloc[-1] == "row-0599"
    assert not list(tmp_path.glob(".*.tmp"))  # written through temporary files, renamed into place


def test_a_run_streams_a_large_npy_with_the_in_memory_scores(digits_run, digits, tmp_path, monkeypatch):
    whole = detect(digits_run, digits, contamination=0.05, output=tmp_path / "whole.csv")
    whole_worst = np.load(digits_run / "anomaly" / "worst.npy")
    streamed(monkeypatch, chunk=64)
    flagged = detect(digits_run, digits, contamination=0.05, output=tmp_path / "streamed.csv")
    same_lines(pd.read_csv(tmp_path / "streamed.csv"), pd.read_csv(tmp_path / "whole.csv"))
    same_lines(pd.read_csv(digits_run / "anomaly" / "scores.csv"), whole)
    assert flagged["id"].tolist() == whole["id"][whole["outlier"] == 1].tolist()
    summary = json.loads((digits_run / "anomaly" / "summary.json").read_text())
    assert summary["worst_ids"] == whole.attrs["summary"]["worst_ids"] and summary["items"] == 300
    np.testing.assert_allclose(np.load(digits_run / "anomaly" / "worst.npy"), whole_worst)


def test_a_run_streams_a_large_image_folder_with_the_in_memory_scores(digits_run, digits, tmp_path, monkeypatch):
    folder = tmp_path / "images"
    for index, image in enumerate(np.load(digits)[:90, 0]):
        (folder / f"part{index % 2}").mkdir(parents=True, exist_ok=True)
        size = (28, 28) if index % 10 else (32, 30)  # a few of another size: resampled, as in memory
        Image.fromarray(image).resize(size).save(folder / f"part{index % 2}" / f"{index:03d}.png")
    whole = detect(digits_run, folder, top=0.1, output=tmp_path / "whole.parquet")
    streamed(monkeypatch, chunk=32)
    flagged = detect(digits_run, folder, top=0.1, output=tmp_path / "streamed.parquet")
    written = pd.read_parquet(tmp_path / "streamed.parquet")
    same_lines(written, pd.read_parquet(tmp_path / "whole.parquet"))
    assert written["id"].iloc[0] == "part0/000.png" and len(flagged) == whole["outlier"].sum() == 9


def test_a_bad_id_column_of_a_streamed_table_is_one_line(cardio, detector_folder, tmp_path, monkeypatch):
    from autoencoders.cli import app

    streamed(monkeypatch)
    result = CliRunner().invoke(app, ["detect", str(detector_folder), "--data", str(cardio), "--id-column", "name",
                                      "-o", str(tmp_path / "scores.csv")])
    assert result.exit_code == 2, result.output
    assert "has no id column 'name'; its columns: id, c0, c1" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "scores.csv").exists()


def test_evaluate_streams_a_large_npy_with_the_in_memory_numbers(digits_run, digits, monkeypatch):
    from autoencoders.data import load_dataset
    from autoencoders.metrics import evaluate

    whole = evaluate(digits_run, data=str(digits), save=False)
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", 1000)
    assert load_dataset(str(digits)).streamed
    numbers = evaluate(digits_run, data=str(digits), save=False)
    assert numbers.keys() == whole.keys() and "ssim" in numbers
    for name, value in whole.items():
        assert numbers[name] == pytest.approx(value, rel=1e-5), name
