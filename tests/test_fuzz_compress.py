"""Fuzzing the compressed-file reader: whatever the bytes, decompressing either decodes them or raises
``CompressionError``, in bounded time and memory; and no valid file is ever refused.

Each property runs ``AUTOENCODERS_FUZZ_EXAMPLES`` examples (300 by default, about half a minute for the file),
derandomized so that a CI run is reproducible; set it higher for a longer hunt:
``AUTOENCODERS_FUZZ_EXAMPLES=10000 pytest tests/test_fuzz_compress.py``.
"""

from __future__ import annotations

import io
import math
import os
import posixpath
import re
import struct
import tracemalloc
import zlib
from datetime import timedelta

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from autoencoders.data import load_dataset
from autoencoders.models import MODELS
from autoencoders.uses.compress import (
    CHECKSUM_BYTES,
    FORMAT_VERSION,
    MAGIC,
    Codec,
    CompressionError,
    Header,
    Tables,
    _varint,
    bytes_to_words,
    is_safe_name,
    decode_symbols,
    encode_symbols,
    read_chunks,
    words_to_bytes,
    write_chunks,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

EXAMPLES = int(os.environ.get("AUTOENCODERS_FUZZ_EXAMPLES", "300"))
fuzz = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same examples on every run: CI stays reproducible
    database=None,
    deadline=timedelta(seconds=2),  # a hang fails the example instead of stalling the suite
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# decoding a file of a few hundred bytes must stay far below this, whatever its header claims
MEMORY_BOUND = 64 * 2**20


@pytest.fixture(scope="module", params=["real codes", "integer codes"])
def codec(request) -> Codec:
    """An untrained model's codec, fitted on the digits: real codes (an AE at its default step, wide tables) or
    codebook indices (a VQ-VAE whose codes are nearly all alike: tables under which a few bytes can hold many
    items, the hardest case for the memory bound)."""
    torch.manual_seed(0)
    if request.param == "real codes":
        model = MODELS["ae"](MODELS["ae"].config_class(input_shape=(1, 8, 8), hidden=(32,), latent_dim=8))
    else:
        config = MODELS["vqvae"].config_class(input_shape=(1, 8, 8), arch="conv", hidden=(16,), latent_dim=4, codebook_size=32)
        model = MODELS["vqvae"](config)
    return Codec.fit(model.eval(), load_dataset("digits").train[:400])


@pytest.fixture(scope="module")
def valid_file(codec) -> bytes:
    return codec.compress(load_dataset("digits").test[:20])


def _bounded_or_refused(decode, data: bytes):
    """``decode()``'s result, or None when it refuses ``data`` with a one-line CompressionError; any other exception
    fails the test, and so does a peak of Python and numpy allocations above MEMORY_BOUND."""
    tracemalloc.start()
    try:
        try:
            result = decode()
        except CompressionError as error:
            assert "\n" not in str(error)  # one line, as the command line prints it
            # which check refused it, numbers blanked: --hypothesis-show-statistics counts them
            event(re.sub(r"\(.*\)|[-+\w.]*\d[\w.]*", "#", str(error)))
            result = None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"decoding {len(data)} bytes took {peak / 2**20:.0f} MiB"
    if result is not None:
        event("decoded")
    return result


def _decoded_or_refused(codec: Codec, data: bytes) -> torch.Tensor | None:
    """Decompress ``data``: the items, or None when it is refused (``_bounded_or_refused``)."""

    def decode() -> torch.Tensor:
        header, _ = Header.parse(data)
        assert all(_stays_inside(name) for name in header.names)  # what decompress would write to
        return codec.decompress(data)

    items = _bounded_or_refused(decode, data)
    if items is not None:  # torch's own memory is not traced: its size follows from the count's bound
        assert len(items) <= codec.tables.most_items(len(data) // 4 + 1)
    return items


@pytest.fixture(scope="module")
def valid_chunked_file(codec) -> bytes:
    """The items of ``valid_file`` in a file of three chunks (format 4), with names."""
    items, buffer = load_dataset("digits").test[:20], io.BytesIO()
    names = [f"sub/{index}.png" for index in range(20)]
    write_chunks(codec, buffer, [(items[start:stop], names[start:stop]) for start, stop in [(0, 7), (7, 14), (14, 20)]], named=True)
    return buffer.getvalue()


def _chunks_decoded_or_refused(codec: Codec, data: bytes) -> list | None:
    """Read every chunk of ``data`` as a file of several chunks and decode it: the chunks, or None when it is
    refused (``_bounded_or_refused``)."""
    chunks = _bounded_or_refused(lambda: list(read_chunks(io.BytesIO(data), len(data), codec, "the file", decode=True)), data)
    for count, names, items in chunks or ():
        assert len(items) == count <= codec.tables.most_items(len(data) // 4 + 1)
        assert len(names) == count and all(_stays_inside(name) for name in names)
    return chunks


def _stays_inside(name: str) -> bool:
    """Whether a file named ``name`` in the folder /out lands inside it."""
    return posixpath.normpath(posixpath.join("/out", name)).startswith("/out/") and "\\" not in name


def _with_checksum(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


@fuzz
@given(data=st.binary(max_size=400))
def test_random_bytes_are_refused(codec, data):
    assert _decoded_or_refused(codec, data) is None or data[: len(MAGIC)] == MAGIC


@fuzz
@given(version=st.sampled_from([FORMAT_VERSION, 0, 1, 2, 4, 255]), flags=st.integers(0, 255), rest=st.binary(max_size=400))
def test_random_bytes_behind_a_magic_and_a_checksum_are_refused_or_decoded(codec, version, flags, rest):
    _decoded_or_refused(codec, _with_checksum(MAGIC + bytes([version, flags]) + rest))


# a mutation of a valid file's bytes: (what, where, value)
byte_mutations = st.one_of(
    st.tuples(st.just("flip bit"), st.integers(0, 2**16), st.integers(0, 7)),
    st.tuples(st.just("replace byte"), st.integers(0, 2**16), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 2**16), st.none()),
    st.tuples(st.just("insert"), st.integers(0, 2**16), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), st.integers(0, 2**16), st.integers(1, 16)),
)
huge_counts = st.sampled_from([0, 1, 2**31, 2**32, 2**40, 2**60, 2**63, 2**64 - 1, 2**64, 2**70])
odd_steps = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e-45, 1e-30, 3.4e38, 0.5, 2.0])


def _mutated(data: bytes, mutation) -> bytes:
    what, where, value = mutation
    where = where % (len(data) + 1)
    if what == "flip bit" and where < len(data):
        return data[:where] + bytes([data[where] ^ (1 << value)]) + data[where + 1 :]
    if what == "replace byte" and where < len(data):
        return data[:where] + bytes([value]) + data[where + 1 :]
    if what == "truncate":
        return data[:where]
    if what == "insert":
        return data[:where] + value + data[where:]
    if what == "delete":
        return data[:where] + data[where + value :]
    return data


# at most one header field set to an odd value: most mutants keep a valid header, so their payload is decoded
header_changes = st.one_of(
    st.none(),
    st.tuples(st.just("count"), st.one_of(huge_counts, st.integers(0, 2**64 - 1))),
    st.tuples(st.just("count bytes"), st.binary(min_size=1, max_size=12)),  # overlong, unterminated varints
    st.tuples(st.just("step"), st.one_of(odd_steps, st.floats(width=32))),
    st.tuples(st.just("flags"), st.integers(0, 255)),
)


@fuzz
@given(
    header_change=header_changes,
    mutations=st.lists(byte_mutations, max_size=4),
    checksum_recomputed=st.sampled_from([True, False]),  # True first: the deeper parser and the decoder see them
)
def test_mutated_files_are_refused_or_decoded(codec, valid_file, header_change, mutations, checksum_recomputed):
    """A valid file with a header field set to an odd value (a huge or zero count, an overlong varint, a NaN,
    infinite, zero or negative step, unknown flags), then bytes flipped, replaced, inserted, deleted or cut."""
    header, start = Header.parse(valid_file)
    what, value = header_change or (None, None)
    flags = value if what == "flags" else (1 if header.kind else 0) | (2 if header.step != 1.0 else 0)
    step = value if what == "step" else header.step
    step_bytes = struct.pack(">f", step) if flags & 2 or what == "step" else b""
    count_bytes = value if what == "count bytes" else _varint(value if what == "count" else header.count)
    data = MAGIC + bytes([FORMAT_VERSION, flags]) + header.model_id + step_bytes + count_bytes
    data += valid_file[start:]
    for mutation in mutations:
        data = _mutated(data, mutation)
    if checksum_recomputed and len(data) >= CHECKSUM_BYTES:
        data = _with_checksum(data[:-CHECKSUM_BYTES])
    _decoded_or_refused(codec, data)


@fuzz
@given(
    random_payload=st.one_of(st.none(), st.binary(max_size=300)),
    payload_mutations=st.lists(byte_mutations, min_size=1, max_size=4),
    count=st.one_of(st.none(), st.integers(1, 2**20)),
)
def test_crafted_payloads_under_a_valid_header_are_refused_or_decoded(codec, valid_file, random_payload,
                                                                      payload_mutations, count):
    """The valid file's header (its count or another) and checksum over random bytes or its own payload
    mutated: what reaches the range decoder and the model."""
    header, start = Header.parse(valid_file)
    payload = random_payload
    if payload is None:
        payload = valid_file[start:-CHECKSUM_BYTES]
        for mutation in payload_mutations:
            payload = _mutated(payload, mutation)
    body = Header(header.kind, header.model_id, header.step, header.count if count is None else count).to_bytes()
    _decoded_or_refused(codec, _with_checksum(body + payload))


# item names: ordinary ones, every way out of a folder, and any text
names = st.one_of(
    st.sampled_from(["a.png", "sub/b.png", "../evil.png", "/abs.png", "a/../../evil.png", "..", ".", "a//b.png",
                     "a/", "C:evil.png", "a\\..\\evil.png", "", "x" * 2000]),
    st.text(max_size=16),
    st.text(alphabet="./\\a:", max_size=10),
)


@fuzz
@given(
    item_names=st.lists(names, min_size=1, max_size=6),
    mutations=st.lists(byte_mutations, max_size=3),
    checksum_recomputed=st.sampled_from([True, False]),
)
def test_crafted_item_names_are_refused_or_stay_inside_the_output_folder(codec, item_names, mutations,
                                                                       checksum_recomputed):
    """A valid file's header with any names (one per item), then bytes flipped, replaced, inserted, deleted or
    cut: refused, or decoded with names that keep every file inside the output folder."""
    valid = codec.compress(load_dataset("digits").test[: len(item_names)])
    header, start = Header.parse(valid)
    data = Header(header.kind, header.model_id, header.step, header.count, names=tuple(item_names)).to_bytes()
    data += valid[start:]
    for mutation in mutations:
        data = _mutated(data, mutation)
    if checksum_recomputed and len(data) >= CHECKSUM_BYTES:
        data = _with_checksum(data[:-CHECKSUM_BYTES])
    items = _decoded_or_refused(codec, data)
    if not mutations and checksum_recomputed:  # the names as written: decoded exactly when every one is safe
        assert (items is not None) == all(is_safe_name(name) for name in item_names)


@settings(fuzz, max_examples=max(EXAMPLES // 10, 20))
@given(rows=st.lists(st.integers(0, 358), min_size=1, max_size=60), noise=st.sampled_from([0.0, 0.1, 1.0, 10.0]))
def test_valid_files_always_decode_to_the_rounded_codes(codec, rows, noise):
    items = load_dataset("digits").test[rows]
    items = items + noise * torch.randn(items.shape, generator=torch.Generator().manual_seed(len(rows)))
    with torch.no_grad():
        expected = codec.model.decode(codec.codes_of_symbols(codec.symbols_of_codes(codec.model.encode(items))))
    assert torch.equal(codec.decompress(codec.compress(items)), expected)


@fuzz
@given(
    seed=st.integers(0, 2**32 - 1),
    positions=st.integers(1, 8),
    training_items=st.integers(1, 400),
    spread=st.sampled_from([0, 1, 3, 50, 5000]),
    items=st.integers(1, 400),
    share_most_probable=st.sampled_from([0.0, 0.5, 0.99, 1.0]),
)
def test_the_count_bound_never_refuses_what_the_encoder_wrote(seed, positions, training_items, spread, items,
                                                             share_most_probable):
    """Tables from narrow to degenerate ones (every training item alike), messages from typical to all of the
    most probable symbol, the cheapest the bound allows, and some escapes: each payload decodes to its symbols."""
    generator = np.random.default_rng(seed)
    tables = Tables.fit(generator.integers(-spread, spread + 1, size=(training_items, positions)))
    symbols = generator.integers(-2 * spread - 2, 2 * spread + 3, size=(items, positions))
    most_probable = tables.offsets + tables.counts[:, :-1].argmax(axis=1)
    cheapest = generator.random(symbols.shape) < share_most_probable
    symbols[cheapest] = np.broadcast_to(most_probable, symbols.shape)[cheapest]
    words = bytes_to_words(words_to_bytes(encode_symbols(symbols, tables)))
    assert items <= tables.most_items(len(words))
    assert np.array_equal(decode_symbols(words, tables, items, "test"), symbols)


def test_the_valid_file_of_several_chunks_decodes_to_the_file_of_one_chunk(codec, valid_file, valid_chunked_file):
    chunks = list(read_chunks(io.BytesIO(valid_chunked_file), len(valid_chunked_file), codec, "the file", decode=True))
    assert [count for count, _, _ in chunks] == [7, 7, 6]
    assert torch.equal(torch.cat([items for _, _, items in chunks]), codec.decompress(valid_file))


@fuzz
@given(
    first_count=st.one_of(st.none(), huge_counts, st.integers(0, 2**21)),
    mutations=st.lists(byte_mutations, max_size=4),
    checksum_recomputed=st.sampled_from([True, False]),
)
def test_mutated_files_of_several_chunks_are_refused_or_decoded(codec, valid_chunked_file, first_count, mutations,
                                                                 checksum_recomputed):
    """A valid file of three chunks (format 4) with its first chunk's count set to a huge or odd value, then bytes
    flipped, replaced, inserted, deleted or cut: each chunk is checked before anything is sized by it."""
    start = 8 if valid_chunked_file[3] & 2 == 0 else 12  # magic, version, flags, model id (and step)
    data = valid_chunked_file
    if first_count is not None:  # the first chunk holds 7 items: a count of one byte
        data = data[:start] + _varint(first_count) + data[start + 1 :]
    for mutation in mutations:
        data = _mutated(data, mutation)
    if checksum_recomputed and len(data) >= CHECKSUM_BYTES:
        data = _with_checksum(data[:-CHECKSUM_BYTES])
    _chunks_decoded_or_refused(codec, data)
