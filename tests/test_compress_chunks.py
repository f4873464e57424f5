"""Compressed files of several chunks (format 4): written and read chunk by chunk, they decode to what a file of
one chunk decodes to; a damaged, truncated or crafted one is refused with one line and leaves no output."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import autoencoders
from autoencoders.cli import app
from autoencoders.data.errors import DataError
from autoencoders.data.inputs import stream_items, write_items
from autoencoders.io import load_run_data
from autoencoders.uses import compress
from autoencoders.uses.compress import (
    Codec,
    CompressionError,
    Header,
    _names_bytes,
    _varint,
    compress_files,
    decompress_file,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return autoencoders.train(
        "ae", "digits", tmp_path_factory.mktemp("chunks") / "ae", hidden=(32,), latent_dim=8, max_steps=30, batch_size=64,
        seed=0, progress=False, settings={"recon_loss": "mse"},
    )


@pytest.fixture(scope="module")
def items(run):
    return load_run_data(run).test[:40]


def _files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_an_array_in_several_chunks_decodes_to_what_one_chunk_decodes_to(run, items, tmp_path):
    array = tmp_path / "items.npy"
    np.save(array, items.numpy())
    assert compress_files(run, [array], tmp_path / "one.aec")[0] == 40  # fits one chunk: format 3, as before
    one = (tmp_path / "one.aec").read_bytes()
    codec = Codec.from_run(run)
    assert one[2] == 3 and one == codec.compress(items)

    count, size = compress_files(run, [array], tmp_path / "chunks.aec", chunk_items=16)
    data = (tmp_path / "chunks.aec").read_bytes()
    assert (count, size, data[2]) == (40, len(data), 4)
    assert len(data) - len(one) < 3 * 12  # per chunk: its count, payload length and the coder's last word
    decompress_file(run, tmp_path / "chunks.aec", tmp_path / "chunks.npy")
    assert np.array_equal(np.load(tmp_path / "chunks.npy"), codec.decompress(one).numpy())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["chunks.aec", "chunks.npy", "items.npy", "one.aec"]


def test_an_input_refused_in_a_later_chunk_leaves_no_file(run, items, tmp_path):
    array = items.numpy().copy()
    array[35, 0, 1, 1] = np.nan
    np.save(tmp_path / "items.npy", array)
    with pytest.raises(DataError, match=r"rows 32 to 39\) holds 1 NaN"):
        compress_files(run, [tmp_path / "items.npy"], tmp_path / "items.aec", chunk_items=16)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["items.npy"]


def test_images_in_several_chunks_keep_their_names_and_pixels(run, items, tmp_path):
    names = [f"{'sub/' if index % 3 == 0 else ''}digit-{index:02d}.png" for index in range(len(items))]
    for name, item in zip(names, items):
        write_items(item[None], tmp_path / "in" / name, (0.0, 1.0))
    extra = tmp_path / "extra.npy"  # a second source: its items join the chunks, named after the array
    np.save(extra, items[:5].numpy())
    stream = stream_items([tmp_path / "in", extra], tuple(items.shape[1:]), (0.0, 1.0))
    assert stream.count == 45 and stream.kind == "images" and stream.names[-1] == "extra-00004"
    assert [len(chunk) for chunk, _ in stream.chunks(16)] == [16, 16, 13]  # chunks run across sources

    compress_files(run, [tmp_path / "in", extra], tmp_path / "one.aec")
    compress_files(run, [tmp_path / "in", extra], tmp_path / "chunks.aec", chunk_items=16)
    assert (tmp_path / "chunks.aec").read_bytes()[2] == 4
    decompress_file(run, tmp_path / "one.aec", tmp_path / "from-one")
    written = decompress_file(run, tmp_path / "chunks.aec", tmp_path / "from-chunks")
    assert len(written) == 45 and (tmp_path / "from-chunks" / "sub" / "digit-03.png").exists()
    assert _files(tmp_path / "from-chunks") == _files(tmp_path / "from-one")
    assert not list(tmp_path.glob(".from-chunks.*"))  # the temporary folder is gone


def test_the_command_line_streams_inputs_larger_than_a_chunk(run, items, tmp_path, monkeypatch):
    monkeypatch.setattr(compress, "CHUNK_BYTES", 10 * items[0].numel() * 4)  # ten digits a chunk
    array = tmp_path / "items.npy"
    np.save(array, items.numpy())
    result = CliRunner().invoke(app, ["compress", str(run), str(array), "-o", str(tmp_path / "items.aec")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "items.aec").read_bytes()[2] == 4
    result = CliRunner().invoke(app, ["decompress", str(run), str(tmp_path / "items.aec"), "-o", str(tmp_path / "out.npy")])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "out.npy").shape == tuple(items.shape)
    result = CliRunner().invoke(app, ["decompress", str(run), str(tmp_path / "items.aec"), "-o", str(tmp_path / "one.png")])
    assert result.exit_code == 2 and "40 items" in result.output


def _chunked(codec: Codec, chunks: list[tuple[int, bytes]], total: int | None = None, names: list[tuple[str, ...]] | None = None) -> bytes:
    """A format-4 file of ``chunks`` (count, payload) with a correct checksum: what a crafted file looks like."""
    body = Header(0, codec.model_id, codec.step, 0, 4, chunk_names=names is not None).to_bytes()
    for index, (count, payload) in enumerate(chunks):
        body += _varint(count) + (_names_bytes(names[index]) if names else b"") + _varint(len(payload)) + payload
    body += _varint(0) + _varint(sum(count for count, _ in chunks) if total is None else total)
    return body + struct.pack(">I", zlib.crc32(body))


@pytest.fixture(scope="module")
def payloads(run, items):
    codec = Codec.from_run(run)
    return codec, [(16, codec.payload(items[:16])), (16, codec.payload(items[16:32])), (8, codec.payload(items[32:]))]


def test_a_crafted_file_is_the_one_a_compress_writes(run, items, payloads, tmp_path):
    codec, chunks = payloads
    array = tmp_path / "items.npy"
    np.save(array, items.numpy())
    compress_files(run, [array], tmp_path / "items.aec", chunk_items=16)
    assert (tmp_path / "items.aec").read_bytes() == _chunked(codec, chunks)  # so the crafted files below are real ones, altered


def _refused(run, data: bytes, tmp_path: Path, output: str, message: str) -> None:
    """``data`` as a file is refused with ``message``, and nothing is left where its output would be."""
    file = tmp_path / "files" / "crafted.aec"
    file.parent.mkdir(exist_ok=True)
    file.write_bytes(data)
    with pytest.raises(CompressionError, match=message):
        decompress_file(run, file, tmp_path / "work" / output)
    assert not (tmp_path / "work").exists() or not list((tmp_path / "work").iterdir())


@pytest.mark.parametrize("output", ["out.npy", "out"])
@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[: len(data) // 2], "damaged or truncated"),
        (lambda data: data[:-1], "damaged or truncated"),
        (lambda data: data[:200] + bytes([data[200] ^ 0x10]) + data[201:], "damaged or truncated"),
        (lambda data: data[:5], "damaged or truncated"),
    ],
)
def test_a_damaged_or_truncated_file_is_refused_and_writes_nothing(run, payloads, tmp_path, damage, message, output):
    codec, chunks = payloads
    _refused(run, damage(_chunked(codec, chunks)), tmp_path, output, message)


@pytest.mark.parametrize("output", ["out.npy", "out"])
@pytest.mark.parametrize(
    "alter, message",
    [  # past the checksum: each check holds before anything is sized by what it checks
        (lambda chunks: ([(2**40, chunks[0][1])] + chunks[1:], None), r"chunk 1\) claims 1099511627776 items, more than a chunk"),
        (lambda chunks: ([(4000, chunks[0][1])] + chunks[1:], None), r"chunk 1\) claims 4000 items, but its"),
        (lambda chunks: (chunks[:1] + [(16, chunks[1][1] + b"\0" * 2000)] + chunks[2:], None), r"chunk 2\) claims a payload of"),
        (lambda chunks: (chunks[:2] + [(7, chunks[2][1])], None), r"chunk 3\) has payload left over after its 7 items"),
        (lambda chunks: (chunks, 41), "claims 41 items in all; its 3 chunks hold 40"),
        (lambda chunks: ([], None), "holds no items"),
    ],
)
def test_a_crafted_chunk_is_refused_and_writes_nothing(run, payloads, tmp_path, alter, message, output):
    codec, chunks = payloads
    altered, total = alter(list(chunks))
    _refused(run, _chunked(codec, altered, total), tmp_path, output, message)


@pytest.mark.parametrize("name", ["../evil.png", "/abs.png", "a/./b.png"])
def test_a_crafted_name_in_a_chunk_is_refused_before_anything_is_written(run, payloads, tmp_path, name):
    codec, chunks = payloads
    names = [tuple(f"{chunk}-{index}.png" for index in range(count)) for chunk, (count, _) in enumerate(chunks)]
    names[2] = names[2][:5] + (name,) + names[2][6:]
    _refused(run, _chunked(codec, chunks, names=names), tmp_path, "out", "item name")
    assert not Path("/abs.png").exists() and not (tmp_path / "evil.png").exists()


def test_a_file_of_several_chunks_given_as_bytes_is_refused_with_what_to_do(payloads):
    codec, chunks = payloads
    with pytest.raises(CompressionError, match="several chunks .*autoencoders decompress"):
        codec.decompress(_chunked(codec, chunks))


def test_another_models_file_is_refused(run, payloads, tmp_path):
    codec, chunks = payloads
    data = bytearray(_chunked(codec, chunks))
    data[4:8] = bytes(4)  # the model id
    body = bytes(data[:-4])
    _refused(run, body + struct.pack(">I", zlib.crc32(body)), tmp_path, "out.npy", "another model")
