"""Data larger than memory: .npy arrays and CSV/Parquet tables read batch by batch, the table cache and its
checksum, exact resume inside an epoch, and the errors for files that are cut short or change while training."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import autoencoders
from autoencoders.data import DataError, load_dataset
from autoencoders.data import streaming
from autoencoders.io import load

SETTINGS = dict(hidden=(8,), latent_dim=2, batch_size=64, progress=False, seed=1)


def weights(run) -> dict[str, torch.Tensor]:
    return load(run).state_dict()


def same(a, b) -> bool:
    return all(torch.equal(a[key], b[key]) for key in a)


@pytest.fixture
def array(tmp_path):
    path = tmp_path / "items.npy"
    np.save(path, np.random.default_rng(0).random((900, 12)).astype(np.float32))
    return path


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(1000, 5)) * [1, 2, 3, 4, 5] + [0, 1, 2, 3, 4], columns=list("abcde"))
    path = tmp_path / "table.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=300)
    return path


def test_a_streamed_array_trains_exactly_as_the_array_in_memory(array, tmp_path):
    streamed = autoencoders.train("ae", str(array), tmp_path / "s", epochs=2, settings={"data.stream": True}, **SETTINGS)
    loaded = autoencoders.train("ae", str(array), tmp_path / "m", epochs=2, settings={"data.stream": False}, **SETTINGS)
    assert load_dataset(str(array), stream=True).streamed and not load_dataset(str(array)).streamed
    assert same(weights(streamed), weights(loaded))


def test_the_choice_is_made_by_size(array, monkeypatch):
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", array.stat().st_size - 1000)  # the items' float32 bytes
    assert load_dataset(str(array)).streamed
    assert not load_dataset(str(array), stream=False).streamed
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", array.stat().st_size)
    assert not load_dataset(str(array)).streamed


def test_a_run_resumed_from_a_checkpoint_inside_an_epoch_ends_as_an_uninterrupted_one(array, tmp_path):
    # 720 training items: 12 batches per epoch; the run is cut after 5 batches of its second epoch
    settings = {"data.stream": True, "training.checkpoint_every": 4}
    straight = autoencoders.train("ae", str(array), tmp_path / "straight", max_steps=24, settings=settings, **SETTINGS)
    cut = autoencoders.train("ae", str(array), tmp_path / "cut", max_steps=17, settings=settings, **SETTINGS)
    position = torch.load(cut / "checkpoints" / "last.ckpt", weights_only=True)["autoencoders"]
    assert (position["epoch"], position["epoch_batches"]) == (1, 5)
    resumed = autoencoders.train("ae", str(array), cut, max_steps=24, resume=True, progress=False)
    assert same(weights(straight), weights(resumed))


def test_batches_resumed_inside_an_epoch_are_the_rest_of_that_epoch_with_the_same_draws():
    from autoencoders.data.batches import SemiSupervisedBatches, TensorBatches

    x = torch.rand(300, 4)
    labels = torch.arange(300) % 3
    for make in (
        lambda: TensorBatches(x, labels, batch_size=32, seed=5, binarize=True),
        lambda: SemiSupervisedBatches(x, labels, torch.arange(0, 300, 10), 8, batch_size=32, seed=5, binarize=True),
    ):
        straight, resumed = make(), make()
        straight.set_epoch(2)
        resumed.set_epoch(2)
        resumed.resume_at(4)
        expected, got = list(straight)[4:], list(resumed)
        assert len(got) == len(expected) == 6
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(expected, got))


def test_a_streamed_table_is_scaled_as_in_memory_and_its_cache_follows_the_table(table):
    in_memory, streamed = load_dataset(str(table), seed=1), load_dataset(str(table), seed=1, stream=True)
    assert streamed.streamed
    for key in ("columns", "mean", "std"):
        assert np.allclose(in_memory.preprocessing[key], streamed.preprocessing[key]) if key != "columns" else (
            in_memory.preprocessing[key] == streamed.preprocessing[key]
        )
    items = streamed.train[:]
    assert torch.allclose(in_memory.train, items, atol=1e-5)
    cache = table.parent / f".{table.name}.autoencoders-cache"
    (record,) = cache.glob("*.json")
    # a cache whose checksum does not match its table is rebuilt, never used
    saved = json.loads(record.read_text())
    record.write_text(json.dumps({**saved, "table_sha256": "0" * 64}))
    assert torch.equal(load_dataset(str(table), seed=1, stream=True).train[:], items)
    assert json.loads(record.read_text())["table_sha256"] == saved["table_sha256"]
    frame = pq.read_table(table).to_pandas()
    frame["a"] += 100.0
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), table, row_group_size=300)
    rebuilt = load_dataset(str(table), seed=1, stream=True)
    assert rebuilt.preprocessing["mean"][0] == pytest.approx(streamed.preprocessing["mean"][0] + 100.0)


def test_a_parquet_column_missing_in_one_row_group_is_named(tmp_path):
    path = tmp_path / "holes.parquet"
    values = np.arange(600.0)
    column = pa.array([None if 300 <= row < 600 else value for row, value in enumerate(values)], type=pa.float64())
    pq.write_table(pa.table({"a": values, "b": column}), path, row_group_size=300)
    with pytest.raises(DataError, match=r"holes.parquet \(row group 1, rows 301-600\): column 'b' is missing"):
        load_dataset(str(path), stream=True)


def test_a_cut_short_array_is_refused_by_name(array):
    with open(array, "r+b") as handle:
        handle.truncate(array.stat().st_size - 100)
    with pytest.raises(DataError, match=r"items.npy is cut short: its header promises 900 rows"):
        load_dataset(str(array), stream=True)


def test_a_file_that_changes_while_training_stops_it_with_the_file_named(array, tmp_path):
    data = load_dataset(str(array), stream=True)
    batches = iter(data.batches("train", batch_size=64, seed=0))
    next(batches)
    np.save(array, np.zeros((900, 12), dtype=np.float32))
    os.utime(array, ns=(0, 0))  # the same size: the modification time tells
    with pytest.raises(DataError, match=r"items.npy changed while it was being read"):
        next(batches)


def test_detect_on_a_large_table_scores_in_chunks_and_writes_every_row(table, tmp_path, monkeypatch):
    import autoencoders.uses.streamed_detect as streamed_detect
    from autoencoders.uses.detect import detect

    run = autoencoders.train("ae", str(table), tmp_path / "run", max_steps=10, settings={"data.stream": True}, **SETTINGS)
    in_memory = detect(run, table, contamination=0.05)
    monkeypatch.setattr(streaming, "STREAM_TABLE_ABOVE_BYTES", 1000)  # the table is now "large"
    monkeypatch.setattr(streamed_detect, "CHUNK_ROWS", 128)  # several chunks
    flagged = detect(run, table, contamination=0.05, output=tmp_path / "scores.parquet")
    everything = pd.read_parquet(tmp_path / "scores.parquet")
    assert len(everything) == 1000 and flagged.attrs["summary"]["items"] == 1000
    np.testing.assert_allclose(everything["anomaly_score"], in_memory["anomaly_score"], rtol=1e-5)
    assert (everything["top_feature_1"] == in_memory["top_feature_1"]).mean() > 0.99
    assert flagged["id"].tolist() == in_memory["id"][in_memory["outlier"] == 1].tolist() == everything["id"][everything["outlier"] == 1].tolist()
    assert pd.read_csv(run / "anomaly" / "scores.csv")["anomaly_score"].size == 1000
    assert flagged.attrs["summary"]["flagged_features"][0]["feature"] == in_memory.attrs["summary"]["flagged_features"][0]["feature"]


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_encoding_streamed_data_writes_the_codes_chunk_by_chunk(array, tmp_path, monkeypatch, suffix):
    import autoencoders.uses.codes as codes_module
    from autoencoders.uses.codes import encode_to_file

    run = autoencoders.train("ae", str(array), tmp_path / "run", max_steps=5, settings={"data.stream": True}, **SETTINGS)
    monkeypatch.setattr(codes_module, "ENCODE_CHUNK", 32)  # 90 test items: three chunks
    assert encode_to_file(run, tmp_path / f"codes{suffix}") == (90, 2)
    written = np.load(tmp_path / "codes.npy") if suffix == ".npy" else pd.read_parquet(tmp_path / "codes.parquet").to_numpy()
    expected = load(run).encode_batches(load_dataset(str(array), seed=1).test).numpy()
    np.testing.assert_allclose(written, expected, atol=1e-6)


def test_a_streamed_image_folder_is_decoded_once_into_a_cache_that_follows_the_folder(tmp_path):
    from PIL import Image

    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for index in range(30):
        (root / ("cats" if index % 2 else "dogs")).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (6, 5), dtype=np.uint8)).save(root / ("cats" if index % 2 else "dogs") / f"{index}.png")
    in_memory, streamed = load_dataset(str(root)), load_dataset(str(root), stream=True)
    assert streamed.streamed and streamed.item_shape == in_memory.item_shape == (1, 6, 5)
    assert torch.equal(streamed.train[:], in_memory.train) and torch.equal(streamed.train_labels, in_memory.train_labels)
    Image.fromarray(np.zeros((6, 5), dtype=np.uint8)).save(root / "dogs" / "0.png")  # an image changes: rebuilt
    rebuilt = load_dataset(str(root), stream=True)
    assert torch.equal(rebuilt.train[:], load_dataset(str(root)).train)
    assert not torch.equal(rebuilt.train[:], in_memory.train)
    with pytest.raises(DataError, match="changed while it was being read"):  # the old cache was replaced
        streamed.train[:]
    Image.fromarray(np.zeros((7, 5), dtype=np.uint8)).save(root / "cats" / "3.png")
    with pytest.raises(DataError, match=r"images holds images of several sizes: cats/3.png is 5x7 pixels, cats/1.png 5x6"):
        load_dataset(str(root), stream=True)


def test_a_folder_of_parquet_files_is_one_table_and_a_file_missing_a_column_is_named(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    rng = np.random.default_rng(1)
    parts = [pd.DataFrame(rng.normal(size=(200, 3)), columns=list("abc")) for _ in range(3)]
    for number, part in enumerate(parts):
        part.to_parquet(folder / f"part-{number}.parquet", index=False)
    whole = pd.concat(parts, ignore_index=True)
    whole.to_parquet(tmp_path / "whole.parquet", index=False)
    streamed, single = load_dataset(str(folder), stream=True), load_dataset(str(tmp_path / "whole.parquet"), stream=True)
    assert torch.equal(streamed.train[:], single.train[:]) and streamed.preprocessing["mean"] == single.preprocessing["mean"]
    assert torch.allclose(load_dataset(str(folder)).train, streamed.train[:], atol=1e-5)  # in memory too
    parts[2].drop(columns="b").to_parquet(folder / "part-2.parquet", index=False)
    with pytest.raises(DataError, match=r"part-2.parquet \(file 3 of 3 of .*parts\) has no column\(s\) b"):
        load_dataset(str(folder), stream=True)


def test_a_nan_in_a_streamed_array_is_refused_naming_its_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(streaming, "CHUNK_BYTES", 4 * 8 * 100)  # chunks of 100 rows of 8 numbers
    values = np.zeros((300, 8), dtype=np.float32)
    values[250, 3] = np.nan
    np.save(tmp_path / "a.npy", values)
    with pytest.raises(DataError, match=r"a.npy \(rows 200 to 299\) holds 1 NaN .* first at index \(50, 3\)"):
        load_dataset(str(tmp_path / "a.npy"), stream=True)
