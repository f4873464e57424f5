"""Dataset loading: the registry, real MNIST/Fashion-MNIST files, corrupt and missing files, the official formats
of CIFAR-10 and SVHN (on tiny files made here), image folders, arrays and tables."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import re
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

import autoencoders.data
from autoencoders.data import DATASETS, DataError, Dataset, dataset_status, load_dataset
from autoencoders.data import files as data_files
from autoencoders.data import registry
from autoencoders.data.images import read_idx
from autoencoders.data.tables import inverse

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
needs_shared_data = pytest.mark.skipif(
    not all((SHARED_DATA / name / file).is_file() for name, files in MNIST_MD5.items() for file in files),
    reason=f"MNIST/Fashion-MNIST files not found under {SHARED_DATA}",
)


@pytest.fixture(autouse=True)
def offline_and_isolated(monkeypatch, tmp_path_factory):
    """No test touches the network, the user's cache or a data folder set outside the test."""
    attempts: list[str] = []

    def refuse(url, *args, **kwargs):
        attempts.append(url)
        raise URLError("network disabled in tests")

    monkeypatch.setattr(data_files, "urlopen", refuse)
    monkeypatch.setenv("AUTOENCODERS_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("AUTOENCODERS_DATA", raising=False)
    return attempts


@pytest.fixture(scope="module")
def mnist_sets(tmp_path_factory):
    """MNIST and Fashion-MNIST loaded once through $AUTOENCODERS_DATA."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"no {SHARED_DATA}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTOENCODERS_DATA", str(SHARED_DATA))
        patch.setenv("AUTOENCODERS_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield {name: load_dataset(name) for name in ("mnist", "fashion-mnist")}


def test_registry_imports_without_torch():
    code = "import sys, autoencoders.data.registry as r; r.dataset_status('mnist'); assert 'torch' not in sys.modules"
    package_root = Path(autoencoders.data.__file__).resolve().parents[2]  # src/, or site-packages when installed
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_dataset_table_is_complete():
    assert set(DATASETS) == {"digits", "mnist", "mnist-binary", "fashion-mnist", "cifar10", "svhn", "lines", "sprites", "sine",
                             "text", "moving-digits"}
    for spec in DATASETS.values():
        assert spec.kind in ("built-in", "download") and spec.description and spec.shape
        if spec.kind == "download":
            assert spec.files and spec.mirrors and all(len(md5) == 32 for md5 in spec.checksums.values())
        else:
            assert spec.files == []
    assert DATASETS["mnist"].checksums == MNIST_MD5["mnist"]
    assert DATASETS["fashion-mnist"].checksums == MNIST_MD5["fashion-mnist"]


@needs_shared_data
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_shared_files_are_the_published_ones(name):
    for file, md5 in MNIST_MD5[name].items():
        assert hashlib.md5((SHARED_DATA / name / file).read_bytes()).hexdigest() == md5


@needs_shared_data
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_files_parse(mnist_sets, name):
    data = mnist_sets[name]
    assert data.item_shape == (1, 28, 28) and data.value_range == (0.0, 1.0) and data.num_classes == 10
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 10000)
    for split in ("train", "val", "test"):
        items, labels = data.split(split), data.labels(split)
        assert items.dtype == torch.float32 and items.is_contiguous()
        assert 0.0 <= items.min() and items.max() == 1.0
        assert labels.dtype == torch.int64 and set(labels.unique().tolist()) == set(range(10))
    # train and val together are exactly the official 60,000 training images, with their labels
    official = read_idx(SHARED_DATA / name / "train-images-idx3-ubyte.gz")
    official_labels = read_idx(SHARED_DATA / name / "train-labels-idx1-ubyte.gz")
    assert official.shape == (60000, 28, 28)
    image_sums = torch.cat([data.train, data.val]).mul(255).round().long().sum((1, 2, 3)).sort().values
    assert torch.equal(image_sums, torch.from_numpy(official.astype(np.int64).sum((1, 2))).sort().values)
    assert torch.equal(torch.cat([data.train_labels, data.val_labels]).bincount(), torch.from_numpy(official_labels.astype(np.int64)).bincount())
    assert torch.equal(data.test, torch.from_numpy(read_idx(SHARED_DATA / name / "t10k-images-idx3-ubyte.gz")).float().div(255).unsqueeze(1))
    if name == "fashion-mnist":  # Fashion-MNIST is balanced: 6,000 of each class in training
        assert torch.cat([data.train_labels, data.val_labels]).bincount().tolist() == [6000] * 10
        assert data.class_names[0] == "T-shirt/top"


@needs_shared_data
def test_validation_split_follows_the_seed(monkeypatch):
    monkeypatch.setenv("AUTOENCODERS_DATA", str(SHARED_DATA))
    first, again, other = (load_dataset("fashion-mnist", seed=seed, val_size=100) for seed in (0, 0, 1))
    assert len(first.val) == 100 and len(first.train) == 59900
    assert torch.equal(first.val, again.val) and torch.equal(first.train_labels, again.train_labels)
    assert not torch.equal(first.val, other.val)
    assert torch.equal(first.test, other.test)


@needs_shared_data
def test_mnist_binary(monkeypatch):
    monkeypatch.setenv("AUTOENCODERS_DATA", str(SHARED_DATA))
    first = load_dataset("mnist-binary", seed=3)
    again, grey = load_dataset("mnist-binary", seed=3, limit=2000), load_dataset("mnist", seed=3, limit=2000)
    assert first.binary and first.binarize_train
    for split in ("val", "test"):
        assert set(first.split(split).unique().tolist()) == {0.0, 1.0}
        assert torch.equal(first.split(split)[:2000], again.split(split))
        assert torch.equal(first.labels(split)[:2000], grey.labels(split))
        # a Bernoulli draw keeps the mean intensity
        assert abs(first.split(split)[:2000].mean() - grey.split(split).mean()) < 0.005
    assert torch.equal(first.train[:2000], grey.train)  # stochastic: grey levels, binarized per batch
    fixed = load_dataset("mnist-binary", seed=3, binarization="fixed", limit=500)
    assert not fixed.binarize_train and set(fixed.train.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(fixed.test, first.test[:500])
    with pytest.raises(DataError, match="binarization must be 'stochastic' or 'fixed'"):
        load_dataset("mnist-binary", binarization="dynamic")


@needs_shared_data
def test_status_reports_found_files(monkeypatch):
    assert dataset_status("mnist") == "missing"
    monkeypatch.setenv("AUTOENCODERS_DATA", str(SHARED_DATA))
    assert [dataset_status(name) for name in ("mnist", "mnist-binary", "fashion-mnist", "cifar10", "digits", "lines")] == [
        "cached", "cached", "cached", "missing", "built-in", "built-in"
    ]
    assert dataset_status("mnist", data_dir=SHARED_DATA) == "cached"


@needs_shared_data
def test_truncated_file_is_reported(tmp_path):
    (tmp_path / "mnist").mkdir()
    original = (SHARED_DATA / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    broken = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    broken.write_bytes(original[: len(original) // 2])
    with pytest.raises(DataError) as error:
        load_dataset("mnist", data_dir=tmp_path)
    message = str(error.value)
    assert str(broken) in message and "damaged or incomplete" in message and "Delete it" in message
    assert "ec29112dd5afa0611ce80d1b7f02629c" in message and hashlib.md5(original[: len(original) // 2]).hexdigest() in message
    assert dataset_status("mnist", data_dir=tmp_path) == "corrupt"
    # read directly, the truncated gzip stream and a truncated raw IDX file are caught too
    with pytest.raises(DataError, match="damaged or incomplete"):
        read_idx(broken)
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress(original)[:-10])
    with pytest.raises(DataError, match="header promises 10000 bytes of data, it holds 9990"):
        read_idx(raw)


def test_wrong_md5_is_reported(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(b"not mnist at all")
    with pytest.raises(DataError) as error:
        load_dataset("mnist", data_dir=tmp_path)
    message = str(error.value)
    assert str(bad) in message and "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message
    assert hashlib.md5(b"not mnist at all").hexdigest() in message and "download a fresh copy" in message


def test_missing_files_offline_name_files_and_folders(tmp_path, monkeypatch, offline_and_isolated):
    given, from_env = tmp_path / "given", tmp_path / "env"
    monkeypatch.setenv("AUTOENCODERS_DATA", str(from_env))
    with pytest.raises(DataError) as error:
        load_dataset("fashion-mnist", data_dir=given)
    message = str(error.value)
    for expected in [*MNIST_MD5["fashion-mnist"], str(given / "fashion-mnist"), str(given), str(from_env), "AUTOENCODERS_DATA", "--data-dir", "internet"]:
        assert expected in message
    assert os.environ["AUTOENCODERS_CACHE"] in message
    assert offline_and_isolated == ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz"]
    offline_and_isolated.clear()
    with pytest.raises(DataError):
        load_dataset("mnist", data_dir=given)
    assert [url.rsplit("/", 2)[-2] for url in offline_and_isolated] == ["mnist", "mnist"]  # both mirrors, in order
    assert offline_and_isolated[0].startswith("https://ossci-datasets.s3.amazonaws.com/")


def test_download_verifies_and_renames_atomically(tmp_path, monkeypatch):
    content = b"pretend dataset file" * 1000
    served = []

    def serve(url, timeout):
        served.append(url)
        if "mirror-a" in url:
            raise URLError("mirror down")
        return io.BytesIO(content if "mirror-b" in url else b"truncated")

    monkeypatch.setattr(data_files, "urlopen", serve)
    target = tmp_path / "sub" / "file.bin"
    data_files.download(["http://mirror-a/file.bin", "http://mirror-b/file.bin"], target, hashlib.md5(content).hexdigest())
    assert target.read_bytes() == content and served == ["http://mirror-a/file.bin", "http://mirror-b/file.bin"]
    assert sorted(path.name for path in target.parent.iterdir()) == ["file.bin"]  # no temporary files left
    other = tmp_path / "other.bin"
    with pytest.raises(data_files.DownloadFailed, match="expected"):
        data_files.download(["http://mirror-c/other.bin"], other, hashlib.md5(content).hexdigest())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sub"]


def _pickled_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """A CIFAR-10 batch as in the original files: a Python 2 pickle of a dict with bytes keys."""
    return pickle.dumps({b"batch_label": b"tiny", b"labels": labels, b"data": images.reshape(len(images), -1)}, protocol=2)


@pytest.fixture
def tiny_cifar(tmp_path):
    """A cifar-10-python.tar.gz of 5 x 4 training and 3 test images; red-only pixels, label = image index % 10."""
    batches = {}
    for index in range(1, 6):
        images = np.zeros((4, 3, 32, 32), np.uint8)
        images[:, 0] = 255
        batches[f"data_batch_{index}"] = _pickled_batch(images, [(4 * index + item) % 10 for item in range(4)])
    test = np.zeros((3, 3, 32, 32), np.uint8)
    test[:, 2, 5, 7] = [10, 20, 30]
    batches["test_batch"] = _pickled_batch(test, [7, 8, 9])
    batches["batches.meta"] = pickle.dumps({b"label_names": [b"airplane"]}, protocol=2)
    archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for name, payload in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return archive


def _with_checksums(monkeypatch, name: str, paths: list[Path]) -> None:
    """Register the md5s of tiny stand-in files, as if they were the published ones."""
    checksums = {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in paths}
    monkeypatch.setitem(registry.DATASETS, name, dataclasses.replace(registry.DATASETS[name], checksums=checksums))


def test_cifar10_archive_and_extracted_folder(tiny_cifar, tmp_path, monkeypatch):
    with pytest.raises(DataError, match="c58f30108f718f92721af3b95e74349a"):  # the stand-in is not the real archive
        load_dataset("cifar10", data_dir=tmp_path)
    _with_checksums(monkeypatch, "cifar10", [tiny_cifar])
    data = load_dataset("cifar10", data_dir=tmp_path)
    assert data.item_shape == (3, 32, 32) and (len(data.train), len(data.val), len(data.test)) == (18, 2, 3)
    assert torch.all(data.train[:, 0] == 1.0) and torch.all(data.train[:, 1:] == 0.0)  # channels first, red plane first
    assert sorted(torch.cat([data.train_labels, data.val_labels]).tolist()) == sorted(item % 10 for item in range(4, 24))
    assert data.test_labels.tolist() == [7, 8, 9]
    assert torch.allclose(data.test[:, 2, 5, 7], torch.tensor([10, 20, 30]) / 255.0)
    assert data.class_names[0] == "airplane" and data.num_classes == 10

    extracted = tmp_path / "elsewhere"
    with tarfile.open(tiny_cifar) as tar:
        tar.extractall(extracted, filter="data")
    from_folder = load_dataset("cifar10", data_dir=extracted)
    assert dataset_status("cifar10", data_dir=extracted) == "cached"
    assert torch.equal(from_folder.test, data.test) and torch.equal(from_folder.train, data.train)


def test_svhn_mat_files(tmp_path, monkeypatch):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    for split, count in (("train", 10), ("test", 5)):
        pixels = rng.integers(0, 256, (32, 32, 3, count), dtype=np.uint8)
        labels = np.arange(1, count + 1).reshape(-1, 1) % 10 + 1  # 1..10, with 10 for the digit 0
        savemat(tmp_path / f"{split}_32x32.mat", {"X": pixels, "y": labels})
    _with_checksums(monkeypatch, "svhn", [tmp_path / "train_32x32.mat", tmp_path / "test_32x32.mat"])
    data = load_dataset("svhn", data_dir=tmp_path, val_size=2)
    assert data.item_shape == (3, 32, 32) and (len(data.train), len(data.val), len(data.test)) == (8, 2, 5)
    assert data.test_labels.tolist() == [2, 3, 4, 5, 6]
    assert sorted(torch.cat([data.train_labels, data.val_labels]).tolist()) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    from scipy.io import loadmat

    pixels = loadmat(tmp_path / "test_32x32.mat")["X"]
    assert data.test[3, 1, 4, 9] == pixels[4, 9, 1, 3] / 255.0  # X[row, column, channel, item]


def _png(path: Path, size: tuple[int, int], mode: str, value: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 0)).save(path)


def test_image_folder_with_classes(tmp_path):
    _png(tmp_path / "cat" / "a.png", (12, 10), "L", 255)
    _png(tmp_path / "cat" / "b.png", (12, 10), "L", 255)
    _png(tmp_path / "dog" / "a.png", (12, 10), "RGB", 51)  # made grey like the first image
    for index in range(7):
        _png(tmp_path / "dog" / f"more{index}.bmp", (12, 10), "L", 0)
    data = load_dataset(tmp_path, test_size=2, val_size=1)
    assert data.item_shape == (1, 10, 12) and data.value_range == (0.0, 1.0)
    assert data.class_names == ["cat", "dog"] and data.num_classes == 2
    assert (len(data.train), len(data.val), len(data.test)) == (7, 1, 2)
    items = torch.cat([data.train, data.val, data.test])
    labels = torch.cat([data.train_labels, data.val_labels, data.test_labels])
    assert torch.all(items[labels == 0] == 1.0)  # the two white cats
    assert int((labels == 0).sum()) == 2 and int((labels == 1).sum()) == 8
    grey_of_red = 51 * 299 / 1000 / 255  # Pillow's RGB -> L weights
    assert any(torch.allclose(item, torch.full_like(item, grey_of_red), atol=1 / 255) for item in items)

    resized = load_dataset(tmp_path, image_size=[8, 6])
    assert resized.item_shape == (1, 8, 6)
    again = load_dataset(tmp_path / "dog", preprocessing=resized.preprocessing)  # a model's input size and classes
    assert again.item_shape == (1, 8, 6)
    json.dumps(resized.preprocessing)

    _png(tmp_path / "loose.png", (12, 10), "L", 0)
    with pytest.raises(DataError, match="mixes loose images with class sub-folders"):
        load_dataset(tmp_path)


def test_an_image_folder_of_mixed_sizes_is_refused_naming_two_files_or_resized_to_the_size_asked_for(tmp_path, caplog):
    from typer.testing import CliRunner

    import autoencoders
    from autoencoders.cli import app
    from autoencoders.io import load_run_data, read_config

    folder = tmp_path / "photos"
    for index in range(5):
        _png(folder / f"a{index}.png", (12, 10), "L", 255)
    _png(folder / "b.png", (16, 16), "L", 0)
    with pytest.raises(DataError) as refused:
        load_dataset(folder)
    message = str(refused.value)
    assert "\n" not in message and "2 sizes (5 of 12x10, 1 of 16x16)" in message
    assert "a0.png is 12x10 pixels and b.png is 16x16" in message and "--set 'data.image_size=[10, 12]'" in message
    result = CliRunner().invoke(app, ["train", "ae", "--data", str(folder), "--out", str(tmp_path / "refused")])
    assert result.exit_code == 2 and "b.png is 16x16" in result.output

    with caplog.at_level("INFO", logger="autoencoders"):
        data = load_dataset(folder, image_size=[10, 12], val_size=1, test_size=1)
    assert data.item_shape == (1, 10, 12) and "resized 1 of 6 images" in caplog.text
    assert torch.all(torch.cat([data.train, data.val, data.test]).flatten(1).std(1) == 0)  # one value per image

    # the option is the run's: reloading its data resizes the same way, and says so
    run = autoencoders.train(
        "ae", str(folder), tmp_path / "run", hidden=(8,), latent_dim=2, max_steps=1, batch_size=2, progress=False,
        settings={"data.image_size": [10, 12], "data.test_size": 1, "data.val_size": 1},
    )
    assert read_config(run)["data"]["options"]["image_size"] == [10, 12]
    caplog.clear()
    with caplog.at_level("INFO", logger="autoencoders"):
        assert load_run_data(run).item_shape == (1, 10, 12)
    assert "resized 1 of 6 images" in caplog.text and "the size the model was trained on" in caplog.text


def test_image_folder_rgb(tmp_path):
    for index in range(5):
        _png(tmp_path / f"{index}.png", (9, 7), "RGB", 255)
    data = load_dataset(tmp_path)
    assert data.item_shape == (3, 7, 9) and data.train_labels is None and data.num_classes == 0
    assert torch.all(data.train[:, 0] == 1.0) and torch.all(data.train[:, 1:] == 0.0)


def test_npy_arrays(tmp_path):
    pixels = np.arange(20 * 6, dtype=np.uint8).reshape(20, 2, 3)
    np.save(tmp_path / "pixels.npy", pixels)
    data = load_dataset(tmp_path / "pixels.npy")
    assert data.item_shape == (2, 3) and data.value_range == (0.0, 1.0)
    everything = torch.cat([data.train, data.val, data.test]).mul(255).round()
    assert sorted(everything.flatten().tolist()) == list(range(120))
    np.save(tmp_path / "signal.npy", np.linspace(-3, 5, 40).reshape(10, 4))
    signal = load_dataset(tmp_path / "signal.npy")
    assert signal.value_range == (-3.0, 5.0) and not signal.binary


def _table(path: Path, rows: int = 50) -> "object":
    import pandas as pd

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({
        "id": [f"row{index}" for index in range(rows)],
        "height": rng.normal(170, 10, rows),
        "weight": rng.normal(70, 15, rows),
        "flag": rng.integers(0, 2, rows),
        "species": rng.choice(["b", "a", "c"], rows),
    })
    frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path)
    return frame


def test_table_with_text_column_fails_clearly(tmp_path):
    _table(tmp_path / "people.csv")
    with pytest.raises(DataError) as error:
        load_dataset(tmp_path / "people.csv")
    message = str(error.value)
    assert "id, species are not numeric" in message and "--set data.columns=height,weight,flag" in message


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_scaling_round_trips(tmp_path, suffix):
    frame = _table(tmp_path / f"people{suffix}")
    data = load_dataset(tmp_path / f"people{suffix}", label_column="species", id_column="id", columns="height,weight,flag")
    assert data.item_shape == (3,) and data.class_names == ["a", "b", "c"] and data.num_classes == 3
    assert torch.allclose(data.train.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(data.train.std(0, unbiased=False), torch.ones(3), atol=1e-5)
    assert data.value_range == (float(torch.cat([data.train, data.val, data.test]).min()), float(torch.cat([data.train, data.val, data.test]).max()))
    # rows map back to the table through the ids, and inverse() restores their units
    by_id = frame.set_index("id")
    original = torch.tensor(by_id.loc[data.ids["test"], ["height", "weight", "flag"]].to_numpy(), dtype=torch.float32)
    assert torch.allclose(inverse(data.test, data.preprocessing), original, atol=1e-3)
    assert [["a", "b", "c"][label] for label in data.test_labels] == by_id.loc[data.ids["test"], "species"].tolist()

    # a new table scaled with the first one's stored (JSON) parameters
    stored = json.loads(json.dumps(data.preprocessing))
    new = frame.iloc[:10].copy()
    new["height"] += 100
    new.to_csv(tmp_path / "new.csv", index=False)
    again = load_dataset(tmp_path / "new.csv", preprocessing=stored, label_column="species", id_column="id", val_size=1, test_size=1)
    rows = torch.cat([again.train, again.val, again.test])
    ids = again.ids["train"] + again.ids["val"] + again.ids["test"]
    expected = torch.tensor(new.set_index("id").loc[ids, ["height", "weight", "flag"]].to_numpy(), dtype=torch.float32)
    assert torch.allclose(inverse(rows, stored), expected, atol=1e-3)
    assert rows[:, 0].mean() > 5  # +100 cm is about ten of the first table's standard deviations


def _numbers_table(path: Path, cells: dict[tuple[int, str], str], rows: int = 20) -> Path:
    """A CSV of columns id, time (descending), a and b with ``cells`` ((row, column) -> text) written over."""
    lines = ["id,time,a,b"]
    for row in range(rows):
        values = {"id": f"r{row}", "time": str(rows - row), "a": str(row), "b": str(2 * row % 7)}
        values.update({column: text for (at, column), text in cells.items() if at == row})
        lines.append(",".join(values[column] for column in ("id", "time", "a", "b")))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_table_with_non_finite_values_is_refused_by_row_and_column_or_those_rows_are_dropped(tmp_path, caplog):
    table = _numbers_table(tmp_path / "t.csv", {(3, "b"): "inf", (11, "a"): "", (15, "a"): "-inf", (15, "b"): "nan"})
    with pytest.raises(DataError) as error:
        load_dataset(table, id_column="id", columns="a,b")
    message = str(error.value)
    assert "\n" not in message and "3 rows" in message and "--set data.drop_nonfinite=true" in message
    assert "row 4 (b=inf)" in message and "row 12 (a=nan)" in message and "row 16 (a=-inf, b=nan)" in message
    with pytest.raises(DataError, match=r"row 4 \(b=inf\)"):  # rows are counted in the file, before sorting by time
        load_dataset(table, columns="a,b", time_column="time", window=2)

    with caplog.at_level("WARNING", logger="autoencoders"):
        data = load_dataset(table, id_column="id", columns="a,b", drop_nonfinite=True)
    assert re.search(r"dropped 3 rows .*NaN or infinite", caplog.text)
    kept = data.ids["train"] + data.ids["val"] + data.ids["test"]
    assert sorted(kept) == sorted(f"r{row}" for row in range(20) if row not in (3, 11, 15))
    assert all(torch.isfinite(data.split(split)).all() for split in ("train", "val", "test"))
    assert data.preprocessing["dropped_rows"] == 3
    json.dumps(data.preprocessing, allow_nan=False)
    caplog.clear()
    with caplog.at_level("WARNING", logger="autoencoders"):
        windows = load_dataset(table, columns="a,b", time_column="time", window=2, drop_nonfinite=True)
    assert "dropped 3 rows" in caplog.text
    assert all(torch.isfinite(windows.split(split)).all() for split in ("train", "val", "test"))


def test_table_whose_scaling_overflows_is_refused_by_column(tmp_path):
    huge = _numbers_table(tmp_path / "huge.csv", {(row, "b"): "1e200" if row % 2 else "-1e200" for row in range(20)})
    with pytest.raises(DataError, match=r"huge\.csv: column b's standard deviation overflows") as error:
        load_dataset(huge, id_column="id", columns="a,b")
    assert "\n" not in str(error.value)
    sums_to_infinity = _numbers_table(tmp_path / "sum.csv", {(row, "a"): "1.5e308" for row in range(20)})
    with pytest.raises(DataError, match=r"column a's mean overflows"):
        load_dataset(sums_to_infinity, id_column="id", columns="a,b")

    # scaling saved by a run: an older version could save Infinity; a tiny std can push new rows past float32
    saved = {"kind": "standardize", "columns": ["a", "b"], "mean": [0.0, float("inf")], "std": [1.0, 1.0], "label_classes": None}
    table = _numbers_table(tmp_path / "t.csv", {})
    with pytest.raises(DataError, match=r"saved scaling of column b is not finite"):
        load_dataset(table, id_column="id", preprocessing=saved)
    saved.update(mean=[0.0, 0.0], std=[1e-38, 1.0])
    with pytest.raises(DataError, match=r"column a .*beyond float32"):
        load_dataset(table, id_column="id", preprocessing=saved)


def test_unknown_names_options_and_paths():
    with pytest.raises(DataError) as error:
        load_dataset("mnsit")
    message = str(error.value)
    assert "Did you mean 'mnist'?" in message and "fashion-mnist" in message and ".csv" in message and ".npy" in message
    with pytest.raises(DataError, match="unknown option.*blur.*accepts train_size, test_size"):
        load_dataset("lines", blur=2)
    with pytest.raises(DataError, match="accepts no options"):
        load_dataset("digits", image_size=8)
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset("nowhere/table.csv")
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("digits").split("validation")


def test_digits_splits_and_limit():
    data = load_dataset("digits")
    assert isinstance(data, Dataset) and data.item_shape == (1, 8, 8) and data.num_classes == 10
    assert len(data.train) + len(data.val) + len(data.test) == 1797 and len(data.test) == 359 and len(data.val) == 180
    assert data.train.min() == 0.0 and data.train.max() == 1.0
    other = load_dataset("digits", seed=1)
    assert torch.equal(data.test, other.test) and not torch.equal(data.val, other.val)
    small = load_dataset("digits", limit=10)
    assert [len(small.split(split)) for split in ("train", "val", "test")] == [10, 10, 10]
    assert torch.equal(small.train, data.train[:10]) and torch.equal(small.test_labels, data.test_labels[:10])


def test_dataset_batches_defaults():
    data = load_dataset("digits", limit=100)
    train = list(data.batches("train", batch_size=32))
    val = list(data.batches("val", batch_size=32))
    assert len(train) == 4 and not torch.equal(torch.cat([x for x, _ in train]), data.train)
    assert torch.equal(torch.cat([x for x, _ in val]), data.val) and torch.equal(torch.cat([y for _, y in val]), data.val_labels)
