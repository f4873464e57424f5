"""Compression to a file: exact round trips, the header, refusing foreign or damaged files, the CLI."""

from __future__ import annotations

import math
import shutil
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from typer.testing import CliRunner

import autoencoders
from autoencoders.cli import app
from autoencoders.io import load, load_run_data, save_model
from autoencoders.models.compressive_ae import CompressiveAE, CompressiveAEConfig
from autoencoders.uses.compress import (
    CHECKSUM_BYTES,
    Codec,
    CompressionError,
    Header,
    Tables,
    _varint,
    bytes_to_words,
    compress_files,
    decode_symbols,
    decompress_file,
    encode_symbols,
    model_fingerprint,
    words_to_bytes,
)

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _train(out, model: str, seed: int, **settings):
    return autoencoders.train(
        model, "digits", out, hidden=(32,), latent_dim=8, max_steps=60, batch_size=64, seed=seed,
        progress=False, settings={"recon_loss": "mse", **settings},
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compress")
    cae = _train(root / "cae", "compressive-ae", seed=0, rate_weight=0.01)
    # the same run with one weight changed: another model that a file must not be decoded with
    other = root / "other"
    shutil.copytree(cae, other)
    model = load(other)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 0.5
    save_model(model, other)
    return {"cae": cae, "other": other, "ae": _train(root / "ae", "ae", seed=0)}


@pytest.fixture(scope="module")
def test_items(runs):
    return load_run_data(runs["cae"]).test[:40]


def test_round_trip_gives_exactly_the_decoded_rounded_codes(runs, test_items):
    codec = Codec.from_run(runs["cae"])
    assert codec.step == 1.0  # what a compressive-ae was trained for
    decoded = codec.decompress(codec.compress(test_items))
    model = load(runs["cae"])
    with torch.no_grad():
        expected = model.decode(torch.round(model.encode(test_items)))
    assert torch.equal(decoded, expected)


def test_any_model_round_trips_at_a_chosen_step(runs, test_items):
    codec = Codec.from_run(runs["ae"], step=0.125)
    decoded = codec.decompress(codec.compress(test_items))
    model = load(runs["ae"])
    with torch.no_grad():
        expected = model.decode(torch.round(model.encode(test_items) / 0.125) * 0.125)
    assert torch.equal(decoded, expected)
    coarse = Codec.from_run(runs["ae"], step=0.5)
    assert len(coarse.compress(test_items)) < len(codec.compress(test_items))  # coarser codes, fewer bytes


def test_integer_codes_of_a_vq_model_round_trip_exactly():
    from autoencoders.models import MODELS

    if "vqvae" not in MODELS:
        pytest.skip("no VQ model in this version")
    cls = MODELS["vqvae"]
    torch.manual_seed(0)
    model = cls(cls.config_class(input_shape=(1, 8, 8), arch="conv", hidden=(16,), latent_dim=4, codebook_size=32)).eval()
    codec = Codec.fit(model, torch.rand(300, 1, 8, 8))
    items = torch.rand(12, 1, 8, 8)
    with torch.no_grad():
        codes = model.encode(items)
        assert not torch.is_floating_point(codes)
        expected = model.decode(codes)
    data = codec.compress(items)
    assert codec.integer_codes and Header.parse(data)[0].kind == 1
    assert torch.equal(codec.decompress(data), expected)


def test_tables_are_kept_in_the_run_and_reused(runs, tmp_path):
    first = Codec.from_run(runs["cae"])
    assert (runs["cae"] / "compression" / "step-1.0.safetensors").exists()
    again = Codec.from_run(runs["cae"])
    assert again.model_id == first.model_id
    assert np.array_equal(again.tables.counts, first.tables.counts)
    # tables saved for other weights (a run trained further) are refitted, not trusted
    changed = tmp_path / "changed"
    shutil.copytree(runs["cae"], changed)
    model = load(changed)
    with torch.no_grad():
        model.encoder[-1].bias += 3.0  # moves the codes: the old tables no longer fit them
    save_model(model, changed)
    refitted = Codec.from_run(changed)
    assert refitted.tables.offsets.sum() != first.tables.offsets.sum()
    assert np.array_equal(load_file(changed / "compression" / "step-1.0.safetensors")["model"],
                          np.frombuffer(model_fingerprint(load(changed)), dtype=np.uint8))


def test_file_size_is_close_to_the_information_content(runs, test_items):
    codec = Codec.from_run(runs["cae"])
    symbols = codec.symbols_of_codes(codec.model.encode(test_items))
    probabilities = codec.tables.probabilities()
    index = symbols - codec.tables.offsets
    width = codec.tables.counts.shape[1] - 1
    assert ((index >= 0) & (index < width)).all()
    information_bits = -np.log2(probabilities[np.arange(symbols.shape[1]), index]).sum()
    header = Header(0, codec.model_id, 1.0, len(test_items)).to_bytes()
    assert len(header) == 9  # magic, version, flags, model id, count: no step, since it is 1
    payload = len(codec.compress(test_items)) - len(header) - CHECKSUM_BYTES
    assert information_bits / 8 <= payload <= information_bits / 8 + 12


def test_values_outside_the_tables_take_the_escape_path():
    generator = np.random.default_rng(0)
    training = generator.integers(-3, 4, size=(500, 5))
    tables = Tables.fit(training)
    symbols = generator.integers(-3, 4, size=(30, 5))
    symbols[3, 1], symbols[7, 4], symbols[29, 0] = 40, -70_000, 2**31 - 1
    words = encode_symbols(symbols, tables)
    assert np.array_equal(decode_symbols(words, tables, len(symbols), "test"), symbols)


@pytest.mark.parametrize("kind, step", [(0, 0.25), (0, 1.0), (1, 1.0)])
def test_header_round_trip(kind, step):
    header = Header(kind=kind, model_id=bytes(range(4)), step=step, count=300)
    body = header.to_bytes() + b"\x00\x01\x02\x03"
    data = body + struct.pack(">I", zlib.crc32(body))
    parsed, start = Header.parse(data)
    assert parsed == header
    assert data[start:-CHECKSUM_BYTES] == b"\x00\x01\x02\x03"
    assert len(header.to_bytes()) == (14 if step != 1.0 else 10)  # the step is written only when it is not 1


def test_a_header_with_names_round_trips_and_format_2_files_are_still_read(runs, test_items):
    header = Header(kind=0, model_id=bytes(range(4)), step=0.25, count=3, names=("a.png", "sub/b.png", "ü.png"))
    body = header.to_bytes() + b"\x00\x01\x02\x03"
    parsed, start = Header.parse(body + struct.pack(">I", zlib.crc32(body)))
    assert parsed == header and parsed.version == 3 and body[start:] == b"\x00\x01\x02\x03"
    assert len(header.to_bytes()) == 13 + 3 + len("a.png") + len("sub/b.png") + len("ü.png".encode())

    codec = Codec.from_run(runs["cae"])
    current = codec.compress(test_items)
    version_2 = current[:2] + bytes([2]) + current[3:-CHECKSUM_BYTES]  # the same bytes: no names, no new flag
    assert torch.equal(codec.decompress(version_2 + struct.pack(">I", zlib.crc32(version_2))), codec.decompress(current))
    named = codec.compress(test_items[:1], ["a.png"])
    named_2 = named[:2] + bytes([2]) + named[3:-CHECKSUM_BYTES]
    with pytest.raises(CompressionError, match="unknown flags 0x04"):  # version 2 had no names
        codec.decompress(named_2 + struct.pack(">I", zlib.crc32(named_2)))


@pytest.mark.parametrize("words", [[1, 2, 3], [7, 0x01000000], [5, 0], [0, 0], [0x12345600], []])
def test_payload_drops_trailing_zero_bytes_and_gets_the_same_words_back(words):
    words = np.array(words, dtype=np.uint32)
    payload = words_to_bytes(words)
    assert len(payload) <= 4 * len(words) and (len(words) == 0 or len(payload) > 4 * (len(words) - 1))
    assert np.array_equal(bytes_to_words(payload), words)


def test_a_file_from_another_model_is_refused(runs, test_items):
    data = Codec.from_run(runs["cae"]).compress(test_items)
    with pytest.raises(CompressionError, match="another model"):
        Codec.from_run(runs["other"]).decompress(data)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[:-6], "damaged or truncated"),
        (lambda data: data[:10], "truncated"),
        (lambda data: data[:12] + bytes([data[12] ^ 0x40]) + data[13:], "damaged"),
        (lambda data: b"\x89PNG\r\n\x1a\n" + data[8:], "not an autoencoders compressed file"),
        (lambda data: b"", "not an autoencoders compressed file"),
        (lambda data: data[:2] + bytes([99]) + data[3:], "format version 99"),
        (lambda data: b"AEC\x1a\x01" + data[5:], "format version 1, which this autoencoders no longer reads"),
    ],
)
def test_damaged_truncated_or_foreign_files_are_refused(runs, test_items, damage, message):
    codec = Codec.from_run(runs["cae"])
    with pytest.raises(CompressionError, match=message):
        codec.decompress(damage(codec.compress(test_items)))


def _recrafted(data: bytes, payload: bytes | None = None, **header_fields) -> bytes:
    """``data`` with header fields (count, step, kind) or its payload replaced, under a correct checksum: what
    a crafted file looks like, past the checks that catch accidental damage."""
    header, start = Header.parse(data)
    fields = {"kind": header.kind, "model_id": header.model_id, "step": header.step, "count": header.count}
    body = Header(**{**fields, **header_fields}).to_bytes()
    body += data[start:-CHECKSUM_BYTES] if payload is None else payload
    return body + struct.pack(">I", zlib.crc32(body))


def test_a_huge_item_count_is_refused_before_anything_is_allocated(runs, test_items):
    codec = Codec.from_run(runs["cae"])
    crafted = _recrafted(codec.compress(test_items), count=2**60)
    tracemalloc.start()
    try:
        with pytest.raises(CompressionError, match="claims 1152921504606846976 items"):
            codec.decompress(crafted)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def _listing(folder) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder`` with its size and modification time."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns) for path in folder.rglob("*")}


def test_decompressing_a_file_of_another_step_writes_nothing_into_the_run(runs, test_items, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["cae"], run)
    file = tmp_path / "crafted.aec"
    file.write_bytes(_recrafted(Codec.from_run(run).compress(test_items), step=0.5))
    before = _listing(run)
    with pytest.raises(CompressionError, match="another model"):
        decompress_file(run, file, tmp_path / "out.npy")
    assert _listing(run) == before
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"count": 0}, "holds no items"),
        ({"count": 2**64}, "runs past 64 bits"),
        ({"step": math.nan}, "invalid quantization step nan"),
        ({"step": math.inf}, "invalid quantization step inf"),
        ({"step": 0.0}, "invalid quantization step 0"),
        ({"step": -0.25}, "invalid quantization step -0.25"),
        ({"kind": 1, "step": 0.25}, "integer codes with a quantization step"),
    ],
)
def test_crafted_header_fields_are_refused(runs, test_items, fields, message):
    codec = Codec.from_run(runs["cae"])
    with pytest.raises(CompressionError, match=message):
        codec.decompress(_recrafted(codec.compress(test_items), **fields))


@pytest.mark.parametrize("payload", [b"", b"\x00" * 3, b"\xff" * 8])
def test_a_crafted_payload_too_short_for_its_items_is_refused(runs, test_items, payload):
    codec = Codec.from_run(runs["cae"])
    assert codec.tables.most_items(2) < 4000  # what 8 bytes of payload can hold
    with pytest.raises(CompressionError, match="hold at most"):
        codec.decompress(_recrafted(codec.compress(test_items), payload=payload, count=4000))


def test_a_payload_longer_than_its_items_is_refused(runs, test_items):
    codec = Codec.from_run(runs["cae"])
    data = codec.compress(test_items)
    with pytest.raises(CompressionError, match="payload left over after its 20 items"):
        codec.decompress(_recrafted(data, count=20))
    header, start = Header.parse(data)
    with pytest.raises(CompressionError, match="payload left over after its 40 items"):
        codec.decompress(_recrafted(data, payload=data[start:-CHECKSUM_BYTES] + b"\x5a" * 8))


def test_codebook_indices_outside_the_codebook_are_refused():
    from autoencoders.models import MODELS

    cls = MODELS["vqvae"]
    torch.manual_seed(0)
    model = cls(cls.config_class(input_shape=(1, 8, 8), arch="conv", hidden=(16,), latent_dim=4, codebook_size=32)).eval()
    codec = Codec.fit(model, torch.rand(300, 1, 8, 8))
    symbols = codec.symbols_of_codes(model.encode(torch.rand(2, 1, 8, 8)))
    symbols[1, 0] = 32 + 7  # past the codebook: written raw, after the escape symbol
    valid = codec.compress(torch.rand(2, 1, 8, 8))
    crafted = _recrafted(valid, payload=words_to_bytes(encode_symbols(symbols, codec.tables)))
    with pytest.raises(CompressionError, match="codebook indices must lie in 0..31"):
        codec.decompress(crafted)


def test_edited_tables_in_the_run_are_refitted_not_trusted(runs, test_items, tmp_path):
    from safetensors.numpy import save_file

    run = tmp_path / "run"
    shutil.copytree(runs["cae"], run)
    codec = Codec.from_run(run)
    file = tmp_path / "items.aec"
    file.write_bytes(codec.compress(test_items))
    cached = run / "compression" / "step-1.0.safetensors"
    saved = load_file(cached)
    save_file({**saved, "counts": np.zeros_like(saved["counts"])}, cached)  # the model's digest, no counts
    decompress_file(run, file, tmp_path / "out.npy")
    assert np.array_equal(np.load(tmp_path / "out.npy"), codec.decompress(file.read_bytes()).numpy())


def test_a_folder_given_as_the_compressed_file_is_refused(runs, tmp_path):
    with pytest.raises(CompressionError, match="is a folder"):
        decompress_file(runs["cae"], tmp_path, tmp_path / "out.npy")


def test_an_empty_array_is_refused_naming_the_file(runs, tmp_path):
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 1, 8, 8), dtype=np.float32))
    result = runner.invoke(app, ["compress", str(runs["cae"]), str(empty), "-o", str(tmp_path / "empty.aec")])
    assert result.exit_code == 2, result.output
    assert "empty.npy" in result.output and "no items" in result.output
    assert not (tmp_path / "empty.aec").exists()


def test_entropy_model_is_a_distribution_over_integers():
    model = CompressiveAE(CompressiveAEConfig(latent_dim=3, mixture_components=2))
    with torch.no_grad():
        model.density.means.copy_(torch.tensor([[0.0, 3.0], [-2.0, 5.0], [0.3, 0.3]]))
        model.density.log_scales.copy_(torch.tensor([[0.0, 1.0], [-1.0, 0.5], [2.0, -3.0]]))
    integers = torch.arange(-200, 201, dtype=torch.float32).unsqueeze(1).repeat(1, 3)
    total = model.density.likelihood(integers).sum(dim=0)
    assert torch.allclose(total, torch.ones(3), atol=1e-4)
    # the rate term trains the density: its gradient reaches the mixture's parameters
    model.train()
    model.loss(torch.rand(4, 1, 28, 28))["bits"].backward()
    assert model.density.means.grad.abs().sum() > 0


def test_rate_weight_trades_bits_for_distortion(test_items):
    from autoencoders.data import load_dataset

    training = load_dataset("digits").train
    bits, distortion = {}, {}
    for rate_weight in (0.0, 5.0):
        torch.manual_seed(0)
        model = CompressiveAE(CompressiveAEConfig(input_shape=(1, 8, 8), hidden=(32,), latent_dim=8, rate_weight=rate_weight, recon_loss="mse"))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for start in range(0, 64 * 80, 64):
            batch = training[start % (len(training) - 64) :][:64]
            optimizer.zero_grad()
            model.loss(batch)["loss"].backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            terms = model.loss(test_items)
        bits[rate_weight], distortion[rate_weight] = terms["bits"], terms["recon"]
    assert bits[5.0] < 0.8 * bits[0.0]
    assert distortion[5.0] > distortion[0.0]


def test_cli_round_trip_on_images_and_arrays(runs, test_items, tmp_path):
    array = tmp_path / "items.npy"
    np.save(array, test_items.numpy())
    file = tmp_path / "items.aec"
    result = runner.invoke(app, ["compress", str(runs["cae"]), str(array), "-o", str(file)])
    assert result.exit_code == 0, result.output
    assert "40 items" in result.output
    out = tmp_path / "decoded.npy"
    result = runner.invoke(app, ["decompress", str(runs["cae"]), str(file), "-o", str(out)])
    assert result.exit_code == 0, result.output
    expected = Codec.from_run(runs["cae"]).decompress(file.read_bytes())
    assert np.array_equal(np.load(out), expected.numpy())

    folder = tmp_path / "pngs"
    result = runner.invoke(app, ["decompress", str(runs["cae"]), str(file), "-o", str(folder)])
    assert result.exit_code == 0, result.output
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 40
    # PNGs go back in: a folder of images compresses like the array it came from (up to 8-bit rounding)
    again = tmp_path / "again.aec"
    result = runner.invoke(app, ["compress", str(runs["cae"]), str(folder), "-o", str(again)])
    assert result.exit_code == 0, result.output
    names = sum(1 + len(path.name) for path in pngs)  # images' names are stored, each after its length
    assert math.isclose(len(again.read_bytes()) - names, len(file.read_bytes()), rel_tol=0.25)

    result = runner.invoke(app, ["decompress", str(runs["other"]), str(file), "-o", str(tmp_path / "x.npy")])
    assert result.exit_code == 2
    assert "another model" in result.output
    result = runner.invoke(app, ["decompress", str(runs["cae"]), str(array), "-o", str(tmp_path / "x.npy")])
    assert result.exit_code == 2
    assert "not an autoencoders compressed file" in result.output


def test_rate_distortion_picture_and_report_section(tmp_path):
    from autoencoders import plots
    from autoencoders.report import PictureWriter, _rate_distortion_section

    curves = {
        "WebP": [{"setting": "quality 10", "bytes_per_item": 145.0, "psnr": 29.5, "ssim": 0.93},
                 {"setting": "quality 50", "bytes_per_item": 200.0, "psnr": 36.8, "ssim": 0.98}],
        "PNG (lossless)": [{"setting": "lossless", "bytes_per_item": 268.0}],
        "compressive-ae": [{"setting": "step 1", "bytes_per_item": 60.0, "psnr": 24.0, "ssim": 0.9}],
    }
    figure = plots.rate_distortion_curves({"MNIST": curves, "Fashion-MNIST": curves})
    assert len([axes for axes in figure.axes if axes.get_visible()]) == 4
    section = _rate_distortion_section({"dataset": "MNIST", "items": 2, "curves": curves}, PictureWriter(tmp_path))
    assert section.body.count("<tr>") == 5  # header + four points
    assert "data:image/png;base64," in section.body and (tmp_path / "rate_distortion.png").exists()
    with pytest.raises(ValueError, match="at least one curve"):
        plots.rate_distortion_curves({})


def test_spatial_arch_codes_are_feature_maps_and_sizes_are_checked():
    model = CompressiveAE(CompressiveAEConfig(input_shape=(1, 28, 28), arch="spatial", hidden=(8, 8), latent_dim=4 * 7 * 7))
    x = torch.rand(3, 1, 28, 28)
    code = model.encode(x)
    assert code.shape == (3, 196)
    assert model.decode(code).shape == x.shape
    # each code number sees a neighbourhood: changing one corner of the image leaves the far corner's codes alone
    changed = x.clone()
    changed[:, :, :4, :4] = 1.0
    maps, changed_maps = code.view(3, 4, 7, 7), model.encode(changed).view(3, 4, 7, 7)
    assert torch.equal(maps[:, :, 4:, 4:], changed_maps[:, :, 4:, 4:])
    assert not torch.equal(maps[:, :, :2, :2], changed_maps[:, :, :2, :2])
    with pytest.raises(ValueError, match="multiple of 49"):
        CompressiveAE(CompressiveAEConfig(input_shape=(1, 28, 28), arch="spatial", hidden=(8, 8), latent_dim=64))


def test_decompressing_into_a_folder_keeps_the_names_of_the_compressed_images(runs, test_items, tmp_path):
    from autoencoders.data.inputs import read_items, write_items

    names = ["cat.png", "dog.jpg", "sub/bird.png", "ü ber.png"]
    inputs = tmp_path / "in"
    for name, item in zip(names, test_items):
        write_items(item[None], inputs / name, (0.0, 1.0))
    file, out = tmp_path / "images.aec", tmp_path / "out"
    assert runner.invoke(app, ["compress", str(runs["cae"]), str(inputs), "-o", str(file)]).exit_code == 0
    assert Header.parse(file.read_bytes())[0].names == ("cat.png", "dog.jpg", "sub/bird.png", "ü ber.png")
    result = runner.invoke(app, ["decompress", str(runs["cae"]), str(file), "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert written == ["cat.png", "dog.png", "sub/bird.png", "ü ber.png"]  # decoded items are PNGs
    decoded = Codec.from_run(runs["cae"]).decompress(file.read_bytes())
    shape, value_range = tuple(test_items.shape[1:]), (0.0, 1.0)
    assert torch.allclose(read_items(out / "sub" / "bird.png", shape, value_range).values[0], decoded[2].clamp(0, 1), atol=1 / 255)

    array = tmp_path / "items.npy"  # an array's items have no names: none are stored
    np.save(array, test_items[:3].numpy())
    assert compress_files(runs["cae"], [array], tmp_path / "array.aec")[0] == 3
    assert Header.parse((tmp_path / "array.aec").read_bytes())[0].names == ()
    written = decompress_file(runs["cae"], tmp_path / "array.aec", tmp_path / "generic")
    assert [path.name for path in written] == ["000000.png", "000001.png", "000002.png"]


@pytest.mark.parametrize(
    "name", ["../evil.png", "/abs.png", "sub/../../evil.png", "./evil.png", "sub//evil.png", "sub/", "..",
             "a\\..\\..\\evil.png", "C:evil.png", "evil\x00.png", ""],
)
def test_a_crafted_item_name_outside_the_output_folder_is_refused_and_nothing_is_written(runs, test_items, tmp_path, name):
    codec = Codec.from_run(runs["cae"])
    file = tmp_path / "files" / "crafted.aec"
    file.parent.mkdir()
    file.write_bytes(_recrafted(codec.compress(test_items[:1]), count=1, names=(name,)))
    out = tmp_path / "work" / "out"
    with pytest.raises(CompressionError, match="item name"):
        decompress_file(runs["cae"], file, out)
    assert not (tmp_path / "work").exists() and not Path("/abs.png").exists()
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["crafted.aec", "files"]
    with pytest.raises(CompressionError, match="cannot be named in a compressed file|names were given"):
        codec.compress(test_items[:1], [name])  # compress refuses to write such a name too


def test_a_crafted_count_of_names_is_refused_before_they_are_read(runs, test_items):
    codec = Codec.from_run(runs["cae"])
    body = Header(0, codec.model_id, 1.0, 10**6, names=("a.png",)).to_bytes()  # one name of the million claimed
    with pytest.raises(CompressionError, match="claims 1000000 item names"):
        codec.decompress(body + struct.pack(">I", zlib.crc32(body)))
    long_name = "x" * 2000
    body = Header(0, codec.model_id, 1.0, 1).to_bytes()
    body = body[:3] + bytes([body[3] | 4]) + body[4:] + _varint(len(long_name)) + long_name.encode() + b"\x00" * 8
    with pytest.raises(CompressionError, match="an item name of 2000 bytes"):
        codec.decompress(body + struct.pack(">I", zlib.crc32(body)))
