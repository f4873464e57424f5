"""Untrusted files in a data folder or given as inputs: none runs code, none allocates more than it holds, and
each one that cannot be used ends in a DataError that names it, never in a traceback.

CIFAR-10 batches are pickles, so they are read with an unpickler that allows only the few globals the original
files reference; images larger than Pillow's decompression-bomb limit and unusable ``.npy`` files are refused.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import io
import os
import pickle
import struct
import tarfile
import zlib
from datetime import timedelta
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autoencoders.data import DataError, load_dataset
from autoencoders.data import files as data_files
from autoencoders.data import registry
from autoencoders.data.inputs import read_items

CIFAR_BATCHES = [*(f"data_batch_{index}" for index in range(1, 6)), "test_batch"]


@pytest.fixture(autouse=True)
def offline_and_isolated(monkeypatch, tmp_path_factory):
    """No test touches the network, the user's cache or a data folder set outside the test."""

    def refuse(url, *args, **kwargs):
        raise URLError("network disabled in tests")

    monkeypatch.setattr(data_files, "urlopen", refuse)
    monkeypatch.setenv("AUTOENCODERS_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("AUTOENCODERS_DATA", raising=False)


class _Python2Pickler(pickle._Pickler):
    """Writes bytes and str with Python 2's str opcodes, as the original CIFAR-10 files hold them (Python 3 would
    write bytes as calls of ``_codecs.encode``, and numpy's dtype arguments as unicode)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_str(self, text: bytes | str) -> None:
        raw = text.encode("latin1") if isinstance(text, str) else text
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(text)

    dispatch[bytes] = save_python2_str
    dispatch[str] = save_python2_str


def _original_format_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """A CIFAR-10 batch pickled as the published files are: Python 2 strings, numpy.core's _reconstruct (numpy 1's
    name for it)."""
    buffer = io.BytesIO()
    batch = {
        b"batch_label": b"training batch 1 of 5", b"labels": labels,
        b"data": images.reshape(len(images), -1), b"filenames": [b"tiny_%d.png" % index for index in range(len(images))],
    }
    _Python2Pickler(buffer, protocol=2).dump(batch)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _python3_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """The same batch pickled by Python 3 with protocol 2 (bytes become ``_codecs.encode`` calls)."""
    return pickle.dumps({b"batch_label": b"tiny", b"labels": labels, b"data": images.reshape(len(images), -1)}, protocol=2)


def _cifar_folder(root: Path, pickled) -> Path:
    """An extracted ``cifar-10-batches-py`` folder of 4 images per batch; image i is grey level i."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in CIFAR_BATCHES:
        images = np.broadcast_to(np.arange(4, dtype=np.uint8)[:, None, None, None], (4, 3, 32, 32))
        (folder / name).write_bytes(pickled(images, [0, 1, 2, 3]))
    return folder


class _WritesMarker:
    """Unpickling it calls a function that creates ``marker``: what a planted pickle would do."""

    def __init__(self, call: str, marker: Path):
        self.call, self.marker = call, marker

    def __reduce__(self):
        if self.call == "os.system":
            return os.system, (f"touch {self.marker}",)
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("pickled", [_original_format_batch, _python3_batch])
def test_cifar10_batches_in_the_published_format_load(tmp_path, pickled):
    _cifar_folder(tmp_path, pickled)
    data = load_dataset("cifar10", data_dir=tmp_path, val_size=2)
    assert (len(data.train), len(data.val), len(data.test)) == (18, 2, 4)
    assert torch.allclose(data.test[:, 1, 7, 3], torch.arange(4) / 255.0) and data.test_labels.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("call, refused", [("os.system", "system"), ("exec", "exec")])
@pytest.mark.parametrize("where", ["folder", "archive"])
def test_a_planted_cifar10_batch_runs_no_code(tmp_path, monkeypatch, call, refused, where):
    marker = tmp_path / "code-ran"
    folder = _cifar_folder(tmp_path / "data", _python3_batch)
    planted = {b"data": _WritesMarker(call, marker), b"labels": [0]}
    (folder / "data_batch_1").write_bytes(pickle.dumps(planted, protocol=2))
    if where == "archive":  # an archive whose md5 is the registered one (as if the registry were wrong)
        archive = tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz"
        archive.parent.mkdir()
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(folder, arcname="cifar-10-batches-py")
        for path in sorted(folder.iterdir()):
            path.unlink()
        folder.rmdir()
        checksums = {archive.name: hashlib.md5(archive.read_bytes()).hexdigest()}
        monkeypatch.setitem(registry.DATASETS, "cifar10", dataclasses.replace(registry.DATASETS["cifar10"], checksums=checksums))
    with pytest.raises(DataError, match=rf"data_batch_1.*{refused}") as error:
        load_dataset("cifar10", data_dir=tmp_path / "data")
    assert not marker.exists()
    assert "\n" not in str(error.value)


class _HugeArray:
    """Unpickling it asks numpy for a 100 GB array, through ``_reconstruct`` or ``ndarray`` itself, which the
    real batches never do (they ask ``_reconstruct`` for an empty array and fill it from the file's bytes)."""

    def __init__(self, through: str):
        self.through = through

    def __reduce__(self):
        if self.through == "_reconstruct":
            return np.zeros(0).__reduce__()[0], (np.ndarray, (10**11,), np.dtype(np.uint8))
        return np.ndarray, ((10**11,), np.dtype(np.uint8))


@pytest.mark.parametrize("through", ["_reconstruct", "ndarray"])
def test_a_cifar10_batch_cannot_allocate_more_than_it_holds(tmp_path, through):
    folder = _cifar_folder(tmp_path, _python3_batch)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _HugeArray(through), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match=r"test_batch holds a CIFAR-10 batch that cannot be read"):
        load_dataset("cifar10", data_dir=tmp_path)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    """An extracted CIFAR-10 folder whose data_batch_1 each example overwrites."""
    root = tmp_path_factory.mktemp("cifar")
    _cifar_folder(root, _python3_batch)
    return root


@settings(
    max_examples=int(os.environ.get("AUTOENCODERS_FUZZ_EXAMPLES", "150")), derandomize=True, database=None,
    deadline=timedelta(seconds=5),
)
@given(
    pickled=st.sampled_from([_original_format_batch, _python3_batch]),
    changes=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_a_damaged_cifar10_batch_is_a_data_error(cifar_root, pickled, changes):
    """Bytes changed in a batch (mostly in its first 300, where the structure is) give a DataError or a batch,
    never another exception: found this way, memo indices that grow the unpickler's memo to gigabytes and
    array states that numpy's own unpickling code fails on."""
    raw = bytearray(pickled(np.zeros((4, 3, 32, 32), np.uint8), [0, 1, 2, 3]))
    for position, byte in changes:
        raw[position % 300 if position % 5 else position % len(raw)] = byte
    (cifar_root / "cifar-10-batches-py" / "data_batch_1").write_bytes(bytes(raw))
    try:
        data = load_dataset("cifar10", data_dir=cifar_root, val_size=1)
    except DataError as error:
        assert "\n" not in str(error)
    else:
        assert data.item_shape == (3, 32, 32)


def _png(path: Path, width: int, height: int) -> Path:
    """A real 1-bit PNG of black pixels, written row by row: 20000x20000 takes 400 million pixels but only
    about 60 kB of disk and of memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte, then the packed bits
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit per pixel, greyscale
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


def test_an_image_over_the_decompression_bomb_limit_is_refused(tmp_path):
    bomb = _png(tmp_path / "inputs" / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(DataError, match=r"bomb\.png.*400,000,000 pixels.*limit of [\d,]+ pixels") as error:
        read_items(bomb, (1, 28, 28), (0.0, 1.0), resize=True)  # as compress, denoise and detect read inputs
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match=r"bomb\.png.*400,000,000 pixels"):
        read_items(tmp_path / "inputs", (1, 28, 28), (0.0, 1.0), resize=True)
    _png(tmp_path / "folder" / "a.png", 28, 28)
    _png(tmp_path / "folder" / "b.png", 20000, 20000)
    with pytest.raises(DataError, match=r"b\.png.*400,000,000 pixels"):  # an image folder to train on
        load_dataset(tmp_path / "folder")


def test_an_image_between_the_warning_and_the_error_limit_is_refused_too(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow warns above this and raises above twice this
    _png(tmp_path / "small.png", 8, 8)
    _png(tmp_path / "large.png", 12, 12)
    assert read_items(tmp_path / "small.png", (1, 8, 8), (0.0, 1.0)).values.shape == (1, 1, 8, 8)
    with pytest.raises(DataError, match=r"large\.png.*144 pixels.*limit of 100 pixels"):
        read_items(tmp_path / "large.png", (1, 12, 12), (0.0, 1.0))
    with pytest.raises(DataError, match=r"large\.png.*144 pixels"):
        load_dataset(tmp_path)


def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return header.getvalue()


_NPY_CASES = {
    "empty": (lambda path: np.save(path, np.zeros((0, 4), np.float32)), "no items"),
    "truncated": (lambda path: path.write_bytes(_npy_header((100, 4)) + bytes(300)), "cut short"),
    "huge header": (lambda path: path.write_bytes(_npy_header((10**6, 10**5)) + bytes(64)), "cut short"),
    "empty file": (lambda path: path.write_bytes(b""), "cannot be read as a .npy array"),
    "object": (lambda path: np.save(path, np.array([[1, "a"]] * 3, dtype=object), allow_pickle=True), "numbers"),
    "text": (lambda path: np.save(path, np.array([["a", "b", "c", "d"]] * 3)), "<U1 values.*numbers"),
    "complex": (lambda path: np.save(path, np.ones((3, 4), np.complex64)), "complex64 values.*numbers"),
    "npz": (lambda path: path.write_bytes(_npz_bytes()), "npz archive"),
    "nan": (lambda path: np.save(path, np.array([[0.0, 1.0, np.nan, 2.0]] * 3)), r"NaN or infinite.*index \(0, 2\)"),
    "too large for float32": (lambda path: np.save(path, np.full((3, 4), 1e300)), r"NaN or infinite.*float32"),
}


def _npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, items=np.ones((3, 4)))
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(_NPY_CASES))
def test_an_unusable_npy_file_is_refused_by_name(tmp_path, case):
    make, message = _NPY_CASES[case]
    path = tmp_path / "items.npy"
    make(path)
    with pytest.raises(DataError, match=rf"items\.npy.*{message}") as error:
        read_items(path, (4,), (0.0, 1.0))  # a trained model's inputs
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match=rf"items\.npy.*{message}"):
        load_dataset(path)  # training data


_NPY_BYTES_MESSAGES = {"truncated": "bytes follow it", "huge header": "bytes follow it", "npz": "cannot be read as a .npy"}


@pytest.mark.parametrize("case", list(_NPY_CASES))
def test_unusable_npy_bytes_are_refused_before_allocation(tmp_path, case):
    """The same files as the bytes of a request (``autoencoders serve``): read from memory, never mapped, so the
    header is checked against the bytes that follow it before anything is allocated."""
    from autoencoders.data.images import read_npy_bytes
    from autoencoders.data.inputs import items_of_array

    make, message = _NPY_CASES[case]
    make(tmp_path / "items.npy")
    with pytest.raises(DataError, match=_NPY_BYTES_MESSAGES.get(case, message)) as error:
        items_of_array(read_npy_bytes((tmp_path / "items.npy").read_bytes(), "the body"), (4,), (0.0, 1.0), "the body")
    assert "\n" not in str(error.value) and "the body" in str(error.value)


@settings(max_examples=int(os.environ.get("AUTOENCODERS_FUZZ_EXAMPLES", "150")), derandomize=True, database=None)
@given(changes=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1, max_size=4),
       cut=st.integers(0, 200))
def test_damaged_npy_bytes_are_a_data_error_or_an_array_they_hold(changes, cut):
    from autoencoders.data.images import read_npy_bytes

    buffer = io.BytesIO()
    np.save(buffer, np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    raw = bytearray(buffer.getvalue())
    for position, byte in changes:
        raw[position % 128 if position % 3 else position % len(raw)] = byte  # mostly the header
    raw = bytes(raw[: len(raw) - cut])
    try:
        array = read_npy_bytes(raw)
    except DataError as error:
        assert "\n" not in str(error)
    else:
        assert array.nbytes <= len(raw)
