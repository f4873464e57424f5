"""Compression to a file: a model's codes, quantized and entropy-coded, behind a checked header.

A ``Codec`` is a model plus a probability table per code position. Real-valued codes are quantized to
integers ``round(code / step)`` (``step`` 1 for a compressive-ae, which was trained for that rounding);
integer codes (a VQ model's ``encode`` gives codebook indices) are taken as they are. The tables are the
codes' histograms over the model's training set, one per position (dimension), fitted once per step and
kept in the run folder (``compression/step-STEP.safetensors``); a range coder (``constriction``) writes
each position's symbols under its table, and values outside a table's range follow an escape symbol,
raw. Decoding is deterministic, so decompressing gives exactly ``model.decode(step * symbols)``.

File layout, format 3 (integers big-endian; a varint is 7 bits a byte, low groups first, high bit = more
follows)::

    magic       2 bytes   b"\\xae\\xc0" (two bytes, as gzip's; the checksum catches what they let through)
    version     1 byte    FORMAT_VERSION
    flags       1 byte    bit 0: integer codes (else real codes quantized with step); bit 1: a step follows;
                          bit 2: item names follow the count
    model id    4 bytes   SHA-256 of the model (name, config, weights), its step and tables, first 4 bytes
    step        4 bytes   float32, only with flag bit 1 (absent: step 1)
    count       varint    items in the file
    names       count x (varint byte length, UTF-8), only with flag bit 2: each item's file name
    payload     range-coder words, 4 bytes each, big-endian, without the last word's trailing zero bytes
    checksum    4 bytes   CRC-32 of everything before it

Format 2 is format 3 without names (flag bit 2 unknown): such files are still read. Names are what the inputs
were called relative to the folder given (``a.png``, ``cats/b.png``: images only, an array's items have none),
so that ``decompress`` into a folder writes files of the same names.

A file (of one chunk; see format 4 below for several) is checked before anything is sized by it: the checksum,
then the step (finite, positive; 1 for integer codes), the names (each 1 to MAX_NAME_BYTES bytes of UTF-8, a
relative path inside the output folder: no absolute path, drive, empty part, ``.``, ``..`` or backslash) and the
count (at least 1, no more names than the bytes can hold, and no more items than the payload can hold under the
tables: every symbol costs at least the bits of its position's most probable one), so a crafted header cannot
make decoding allocate more than the payload could have described, nor write outside the output folder.
Decompressing never writes into the run folder.

Format 4 holds inputs larger than memory: more items than one chunk (``CHUNK_BYTES`` of float32 items, at
least one) are read, encoded and written chunk by chunk, so that ``compress`` and ``decompress`` hold one chunk,
never the inputs, the file or the outputs::

    magic, version (4), flags, model id, step    as format 3
    chunks, each:
        count     varint   its items, at least 1
        names     count x (varint byte length, UTF-8), only with flag bit 2
        size      varint   its payload's bytes
        payload   size bytes, as format 3's (a range coder of its own per chunk)
    end         varint   0
    total       varint   the items of all chunks
    checksum    4 bytes  CRC-32 of everything before it (kept as the file is written)

A file of one chunk is written as format 3: format 4's framing (payload size, end, total) would cost 3 to 4
bytes more, 5 % of a one-digit file, and a file of one chunk gains nothing from it (it fits in memory); the
inputs' count is known before any is read (an array's header, a folder's listing), so the choice is made up
front. ``decompress`` reads a format-4 file three times, since a compressed file is a small part of what it
decodes to: its checksum first (so damage is refused before anything is sized by the file, as in format 3),
then every chunk's count, size and names, each checked before it is read (at most ``MAX_CHUNK_BYTES`` of items
a chunk, at most ``MAX_SYMBOL_BYTES`` of payload a symbol, no more items than the payload can hold, names as
above), so that the output is sized by a total that holds and its names are known before any file is written;
then the chunks are decoded one by one into a temporary file (``.npy``: its header, then each chunk's rows
appended; appended rather than mapped, since the pages of a written mapping count in a process's memory until
they are written back) or a temporary folder of images moved into place at the end. A crafted file that fails
later (a chunk whose payload does not decode) leaves no output.

Shapes are not stored: the model id fixes the model, hence the item and code shapes. Header and checksum take
13 bytes (17 with a step other than 1) for a file of fewer than 128 items, plus the names of images; a file
of many items pays them once, so their cost per item falls as 13 / count bytes (the benchmark reports one
image per file and the whole test set in one file, of arrays: without names).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import constriction
import numpy as np

from autoencoders.errors import InputError
from autoencoders.files import atomic_write_bytes, atomic_writer
from autoencoders.progress import track

if TYPE_CHECKING:
    import torch

MAGIC = b"\xae\xc0"
FORMAT_1_MAGIC = b"AEC\x1a"  # the first format, 30 bytes of header: no longer read
FORMAT_VERSION = 3  # files of one chunk
STREAM_FORMAT_VERSION = 4  # files of several chunks, written and read chunk by chunk
REAL_CODES, INTEGER_CODES = 0, 1
INTEGER_FLAG, STEP_FLAG, NAMES_FLAG = 1, 2, 4
FLAGS_OF_VERSION = {  # the versions read
    2: INTEGER_FLAG | STEP_FLAG, 3: INTEGER_FLAG | STEP_FLAG | NAMES_FLAG, 4: INTEGER_FLAG | STEP_FLAG | NAMES_FLAG,
}
MAX_NAME_BYTES = 1024
NAME_RULE = "no absolute path or drive, no '..', '.' or empty part, no backslash"  # what names may be
MODEL_ID_BYTES = 4
CHECKSUM_BYTES = 4
TABLES_FOLDER = "compression"
# a table covers at most this many symbols around its median; rarer values take the escape path
MAX_TABLE_WIDTH = 4096
ESCAPE_BITS = 16  # escaped values go out as two uniform 16-bit halves of a zigzag-coded int32
BATCH = 1024
# a chunk holds CHUNK_BYTES of float32 items (16,777 of 1000 numbers, 21,399 MNIST digits), at least one; a
# reader refuses chunks of more than MAX_CHUNK_BYTES of items, and payloads of more than MAX_SYMBOL_BYTES a
# symbol (a symbol costs at most 24 bits, an escaped one 32 more), before reading or allocating them
CHUNK_BYTES = 64 << 20
MAX_CHUNK_BYTES = 256 << 20
MAX_SYMBOL_BYTES = 8
READ_BYTES = 1 << 20  # the checksum of a streamed file is computed this many bytes at a time
# constriction's categorical models hold probabilities as 24-bit fixed point: rounding gives a symbol less than
# 2 parts in 2**24 more than its float probability (4 are allowed for), and every other symbol at least 1 part,
# so no symbol costs less than LEAST_SYMBOL_BITS
PRECISION_BITS = 24
ROUNDING_PARTS = 4
LEAST_SYMBOL_BITS = -math.log2(1 - 2.0**-PRECISION_BITS)
# a range coder's payload carries all but at most this many bits of its symbols' information: 32 bits of
# coder state never written out, and up to 3 trailing zero bytes dropped by ``words_to_bytes``
CODER_SLACK_BITS = 64


class CompressionError(InputError):
    """A file or request that cannot be (de)compressed, with what is wrong and what to do (a ValueError, so
    the CLI reports it like any other bad input)."""


# -- the header -----------------------------------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes, source: str):
        self.data, self.position, self.source, self.end = data, 0, source, len(data)

    def take(self, size: int) -> bytes:
        if self.position + size > self.end:
            raise CompressionError(f"{self.source} is truncated: its header ends early")
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if value >> 64 or (shift > 63 and byte & 0x80):
                raise CompressionError(f"{self.source} has a malformed header (a number runs past 64 bits)")
            if not byte & 0x80:
                return value


@dataclass(frozen=True)
class Header:
    kind: int  # REAL_CODES or INTEGER_CODES
    model_id: bytes
    step: float
    count: int
    version: int = FORMAT_VERSION
    names: tuple[str, ...] = ()  # one per item, or none

    chunk_names: bool = False  # format 4: every chunk holds its items' names

    def to_bytes(self) -> bytes:
        """Format 2 and 3: the header up to the payload. Format 4: the part before the first chunk."""
        flags = (INTEGER_FLAG if self.kind == INTEGER_CODES else 0) | (STEP_FLAG if self.step != 1.0 else 0)
        flags |= NAMES_FLAG if self.names or self.chunk_names else 0
        step = struct.pack(">f", self.step) if flags & STEP_FLAG else b""
        start = MAGIC + bytes([self.version, flags]) + self.model_id + step
        if self.version == STREAM_FORMAT_VERSION:
            return start
        return start + _varint(self.count) + _names_bytes(self.names)

    @classmethod
    def parse(cls, data: bytes, source: str = "the file") -> tuple["Header", int]:
        """The header at the start of ``data`` (format 2 or 3) and where the payload begins; checks magic,
        version, checksum."""
        reader = _Reader(data, source)
        version, flags, model_id, step = _read_start(reader, data)
        if version == STREAM_FORMAT_VERSION:
            raise CompressionError(
                f"{source} is a file of several chunks (format {version}), read chunk by chunk from a file: decompress "
                "it with `autoencoders decompress RUN FILE -o OUTPUT`"
            )
        count = reader.varint()
        if len(data) < reader.position + CHECKSUM_BYTES:
            raise CompressionError(f"{source} is truncated: it ends inside its header")
        (stored,) = struct.unpack(">I", data[-CHECKSUM_BYTES:])
        if zlib.crc32(data[:-CHECKSUM_BYTES]) != stored:
            raise CompressionError(
                f"{source} is damaged or truncated (its checksum does not match); copy or compress it again"
            )
        reader.end = len(data) - CHECKSUM_BYTES
        names = _read_names(reader, count) if flags & NAMES_FLAG else ()
        header = cls(_checked_kind(flags, step, source), model_id, step, count, version, names)
        if count == 0:
            raise CompressionError(f"{source} holds no items, which `compress` never writes; the file is damaged")
        payload_words = -(-(len(data) - reader.position - CHECKSUM_BYTES) // 4)
        if count > payload_bits(payload_words) / LEAST_SYMBOL_BITS:  # the model's tables bound it tighter
            raise CompressionError(
                f"{source} claims {count} items, more than its {4 * payload_words} bytes of payload can hold; "
                "the file is damaged"
            )
        return header, reader.position


def _read_start(reader: _Reader, head: bytes) -> tuple[int, int, bytes, float]:
    """(version, flags, model id, step) at the start of a file (whose first bytes are ``head``): the fields
    every format begins with."""
    source, start = reader.source, head[: len(FORMAT_1_MAGIC)]
    if start == FORMAT_1_MAGIC:
        raise CompressionError(
            f"{source} uses format version 1, which this autoencoders no longer reads (it writes versions "
            f"{FORMAT_VERSION} and {STREAM_FORMAT_VERSION}). Decompress it with the version that wrote it, or compress "
            "the originals again"
        )
    if start[: len(MAGIC)] != MAGIC:
        raise CompressionError(
            f"{source} is not an autoencoders compressed file (it does not start with {MAGIC!r}); "
            "compress it with `autoencoders compress RUN INPUT -o FILE`"
        )
    reader.take(len(MAGIC))
    version, flags = reader.take(2)
    if version not in FLAGS_OF_VERSION:
        raise CompressionError(
            f"{source} uses format version {version}; this autoencoders reads versions "
            f"{', '.join(map(str, FLAGS_OF_VERSION))}. Decompress it with the version that wrote it"
        )
    if flags & ~FLAGS_OF_VERSION[version]:
        raise CompressionError(f"{source} has unknown flags {flags:#04x}; the file is damaged")
    model_id = reader.take(MODEL_ID_BYTES)
    (step,) = struct.unpack(">f", reader.take(4)) if flags & STEP_FLAG else (1.0,)
    return version, flags, model_id, step


def _checked_kind(flags: int, step: float, source: str) -> int:
    """The kind of codes the flags name, once the step is checked against it."""
    if not (math.isfinite(step) and step > 0):
        raise CompressionError(f"{source} has an invalid quantization step {step}; the file is damaged")
    if flags & INTEGER_FLAG and flags & STEP_FLAG:
        raise CompressionError(
            f"{source} holds integer codes with a quantization step ({step}), which `compress` never writes; "
            "the file is damaged"
        )
    return INTEGER_CODES if flags & INTEGER_FLAG else REAL_CODES


def _names_bytes(names: Sequence[str]) -> bytes:
    return b"".join(_varint(len(name.encode())) + name.encode() for name in names)


def _read_names(reader: _Reader, count: int) -> tuple[str, ...]:
    """``count`` names, each checked before the next is read; a count more than the bytes left can hold (a
    name takes at least 2) is refused before any is."""
    if count > (reader.end - reader.position) // 2:
        raise CompressionError(
            f"{reader.source} claims {count} item names, more than its {reader.end - reader.position} bytes can "
            "hold; the file is damaged"
        )
    names = []
    for _ in range(count):
        size = reader.varint()
        if not 1 <= size <= MAX_NAME_BYTES:
            raise CompressionError(
                f"{reader.source} holds an item name of {size} bytes (names take 1 to {MAX_NAME_BYTES}); the file is damaged"
            )
        try:
            name = reader.take(size).decode("utf-8")
        except UnicodeDecodeError as error:
            raise CompressionError(f"{reader.source} holds an item name that is not UTF-8; the file is damaged") from error
        if not is_safe_name(name):
            raise CompressionError(
                f"{reader.source} holds the item name {name[:80]!r}, which is not a relative path inside the output "
                f"folder ({NAME_RULE}); the file is damaged or crafted, and nothing is written"
            )
        names.append(name)
    return tuple(names)


def is_safe_name(name: str) -> bool:
    """Whether ``name`` is a relative path that stays inside the folder it is written to (``NAME_RULE``), of 1 to
    ``MAX_NAME_BYTES`` bytes: what a file may name its items, so that a crafted file cannot write elsewhere."""
    return (
        0 < len(name.encode()) <= MAX_NAME_BYTES and not PureWindowsPath(name).drive and "\\" not in name
        and "\0" not in name and all(part not in ("", ".", "..") for part in name.split("/"))
    )


def payload_bits(words: int) -> int:
    """The most information, in bits, that ``words`` range-coder words can carry."""
    return 32 * words + CODER_SLACK_BITS


def words_to_bytes(words: np.ndarray) -> bytes:
    """Range-coder words as big-endian bytes, less up to 3 trailing zero bytes of the last word (1.5 bytes a
    file on average); ``bytes_to_words`` pads them back, so the decoder sees exactly the same words."""
    data = words.astype(">u4").tobytes()
    return data[: len(data) - min(3, len(data) - len(data.rstrip(b"\x00")))]


def bytes_to_words(payload: bytes) -> np.ndarray:
    padded = payload + b"\x00" * (-len(payload) % 4)
    return np.frombuffer(padded, dtype=">u4").astype(np.uint32)


# -- probability tables ---------------------------------------------------------------------------------
@dataclass
class Tables:
    """Per code position: the first symbol its table covers and the symbol counts (last column: escape)."""

    offsets: np.ndarray  # int64 (positions,)
    counts: np.ndarray  # int64 (positions, width + 1)

    @classmethod
    def fit(cls, symbols: np.ndarray) -> "Tables":
        """Histograms of integer symbols (items, positions), half a count added to every bin of the range."""
        if symbols.ndim != 2 or len(symbols) == 0:
            raise CompressionError("fitting probability tables needs at least one item's codes")
        low, high = symbols.min(axis=0), symbols.max(axis=0)
        median = np.median(symbols, axis=0).astype(np.int64)
        low = np.maximum(low, median - MAX_TABLE_WIDTH // 2)
        high = np.minimum(high, low + MAX_TABLE_WIDTH - 1)
        width = int((high - low).max()) + 1
        index = symbols - low
        inside = (index >= 0) & (index <= (high - low))
        index = np.where(inside, index, width)  # out of range: the escape column
        positions = np.broadcast_to(np.arange(symbols.shape[1]), symbols.shape)
        counts = np.zeros((symbols.shape[1], width + 1), dtype=np.int64)
        np.add.at(counts, (positions, index), 2)
        in_range = np.arange(width)[None, :] <= (high - low)[:, None]
        counts[:, :width] += in_range  # unseen values in the range stay possible
        counts[:, width] += 1  # and so does anything outside it
        return cls(low.astype(np.int64), counts)

    def probabilities(self) -> np.ndarray:
        return self.counts / self.counts.sum(axis=1, keepdims=True)

    def least_item_bits(self) -> float:
        """The fewest bits an item can cost: each position's most probable symbol, its probability raised by
        the range coder's rounding."""
        most_probable = self.probabilities().max(axis=1) + ROUNDING_PARTS * 2.0**-PRECISION_BITS
        return float(np.maximum(-np.log2(np.minimum(most_probable, 1.0)), LEAST_SYMBOL_BITS).sum())

    def most_items(self, words: int) -> int:
        """How many items ``words`` range-coder words can hold at most: a bound on a file's count that holds
        before anything is decoded (so a header claiming more is refused, not allocated for)."""
        return math.floor(payload_bits(words) / self.least_item_bits())

    def to_bytes(self) -> bytes:
        return self.offsets.astype("<i8").tobytes() + self.counts.astype("<i8").tobytes()


def _zigzag(values: np.ndarray) -> np.ndarray:
    return ((values << 1) ^ (values >> 63)).astype(np.uint64)


def _unzigzag(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.int64)
    return (values >> 1) ^ -(values & 1)


# -- the codec ------------------------------------------------------------------------------------------
@dataclass
class Codec:
    """A model with its quantization step and probability tables; ``model_id`` names all three."""

    model: "torch.nn.Module"
    step: float
    tables: Tables
    integer_codes: bool
    code_shape: tuple[int, ...]

    @property
    def model_id(self) -> bytes:
        return model_fingerprint(self.model, self.step, self.tables)[:MODEL_ID_BYTES]

    # building
    @classmethod
    def fit(cls, model, training_items: "torch.Tensor", step: float | None = None) -> "Codec":
        """Quantize the codes of ``training_items`` and fit one table per code position on them."""
        import torch

        _check_model(model)
        codes = model.encode_batches(training_items, batch_size=BATCH)
        integer_codes = not torch.is_floating_point(codes)
        step = 1.0 if integer_codes else _checked_step(default_step(model, codes) if step is None else step)
        tables = Tables.fit(to_symbols(codes, step, integer_codes))
        return cls(model, step, tables, integer_codes, tuple(codes.shape[1:]))

    @classmethod
    def from_run(cls, run: str | Path, step: float | None = None, data_dir: str | Path | None = None,
                 write_tables: bool = True) -> "Codec":
        """The codec of a run folder: its tables for ``step`` are read from the folder or fitted (and saved
        there unless ``write_tables`` is false: decompressing takes its step from a file, which must not
        change the run).

        Saved tables are used only while the model is the one they were fitted for (a resumed run refits).
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file, save

        from autoencoders.io import ModelFileError, load, load_run_data

        model = load(run)
        _check_model(model)
        digest = np.frombuffer(model_fingerprint(model), dtype=np.uint8)
        if step is None and model.quantization_step is not None:
            step = model.quantization_step
        if step is not None:
            step = _checked_step(step)
            cached = Path(run) / TABLES_FOLDER / f"step-{step!r}.safetensors"
            try:
                saved = load_file(cached) if cached.exists() else {}
            except (SafetensorError, OSError):  # a damaged cache is refitted below
                saved = {}
            if "model" in saved and np.array_equal(saved["model"], digest) and _well_formed(saved):
                code_shape = tuple(int(size) for size in saved["code_shape"])
                return cls(model, step, Tables(saved["offsets"], saved["counts"]), bool(saved["integer_codes"][0]), code_shape)
        try:
            training = load_run_data(run, data_dir=data_dir).train
        except ModelFileError as error:
            raise CompressionError(
                f"the probability tables of {run} are fitted on its training data, which cannot be loaded ({error})"
            ) from error
        codec = cls.fit(model, training, step)
        if not write_tables:
            return codec
        atomic_write_bytes(Path(run) / TABLES_FOLDER / f"step-{codec.step!r}.safetensors", save({
            "offsets": codec.tables.offsets, "counts": codec.tables.counts, "model": digest,
            "code_shape": np.array(codec.code_shape, dtype=np.int64),
            "integer_codes": np.array([codec.integer_codes], dtype=np.int64),
        }))
        return codec

    # quantization
    def symbols_of_codes(self, codes: "torch.Tensor") -> np.ndarray:
        """Integer symbols (items, positions) of codes from ``encode``."""
        return to_symbols(codes, self.step, self.integer_codes)

    def codes_of_symbols(self, symbols: np.ndarray) -> "torch.Tensor":
        """The codes ``decode`` takes: symbols times the step (integer codes as they are)."""
        import torch

        values = torch.from_numpy(symbols.reshape(len(symbols), *self.code_shape))
        if self.integer_codes:
            return values
        return (values.double() * self.step).float()

    # coding
    def compress(self, items: "torch.Tensor", names: Sequence[str] = ()) -> bytes:
        """The file's bytes (format 3) for ``items`` (N, *item_shape), with their file ``names`` when given (one
        each)."""
        header = Header(
            INTEGER_CODES if self.integer_codes else REAL_CODES, self.model_id, self.step, len(items), names=tuple(names)
        )
        body = header.to_bytes() + self.payload(items, names)
        return body + struct.pack(">I", zlib.crc32(body))

    def payload(self, items: "torch.Tensor", names: Sequence[str] = ()) -> bytes:
        """The range-coded symbols of ``items``, once they and their ``names`` are checked."""
        item_shape = tuple(self.model.config.input_shape)
        if len(items) == 0:
            raise CompressionError("there are no items to compress; give at least one")
        if names and len(names) != len(items):
            raise CompressionError(f"{len(names)} names were given for {len(items)} items; give one name per item")
        unsafe = [name for name in names if not is_safe_name(name)]
        if unsafe:
            raise CompressionError(
                f"the input {unsafe[0][:80]!r} cannot be named in a compressed file ({NAME_RULE}, at most "
                f"{MAX_NAME_BYTES} bytes); rename it"
            )
        if tuple(items.shape[1:]) != item_shape:
            raise CompressionError(
                f"the model takes items of shape {item_shape}; got {len(items)} of shape {tuple(items.shape[1:])}"
            )
        symbols = self.symbols_of_codes(self.model.encode_batches(items, batch_size=BATCH))
        return words_to_bytes(encode_symbols(symbols, self.tables))

    def decompress(self, data: bytes, source: str = "the file") -> "torch.Tensor":
        """The decoded items of a file written by ``compress`` with this codec; any bytes that are not such a
        file raise ``CompressionError``."""
        header, start = Header.parse(data, source)
        self.check(header, source)
        return self.decode_payload(data[start:-CHECKSUM_BYTES], header.count, source)

    def decode_payload(self, payload: bytes, count: int, source: str = "the file", tracked: bool = True) -> "torch.Tensor":
        """The ``count`` items range-coded in ``payload``; a count more than it can hold is refused first.
        ``tracked``: report the decoding's progress (a file of several chunks reports its chunks instead)."""
        import torch

        codes = self.codes_of_symbols(decode_symbols(bytes_to_words(payload), self.tables, count, source))
        if not torch.isfinite(codes).all():
            raise CompressionError(
                f"{source} holds codes too large for float32 at step {self.step:g}; the file is damaged"
            )
        try:
            return decode_batches(self.model, codes, tracked)
        except ValueError as error:  # the model's own check of its codes (a VQ model's codebook range)
            raise CompressionError(
                f"{source} holds codes this model cannot decode ({error}); the file is damaged"
            ) from error

    def check(self, header: Header, source: str = "the file") -> None:
        """Refuse a file written by another model (or other tables): decoding it would give garbage."""
        if header.model_id != self.model_id:
            raise CompressionError(
                f"{source} was compressed with another model (id {header.model_id.hex()}; this one is "
                f"{self.model_id.hex()} at step {self.step:g}). Decompress it with the run that compressed it; "
                "retraining a run, or refitting its tables on other data, changes the id"
            )
        if (header.kind == INTEGER_CODES) != self.integer_codes:
            raise CompressionError(f"{source} holds another kind of codes than this model's; the file is damaged")


def model_fingerprint(model, step: float | None = None, tables: Tables | None = None) -> bytes:
    """SHA-256 over the model (family, config, weights), then the step and tables when given."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"name": model.name, "config": model.config.to_dict()}, sort_keys=True).encode())
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    if step is not None:
        digest.update(struct.pack(">f", step))
    if tables is not None:
        digest.update(tables.to_bytes())
    return digest.digest()


def to_symbols(codes: "torch.Tensor", step: float, integer_codes: bool) -> np.ndarray:
    """Integer symbols (items, positions): ``round(code / step)``, integer codes as they are."""
    import torch

    flat = codes.detach().flatten(1)
    if integer_codes:
        return flat.cpu().numpy().astype(np.int64)
    symbols = torch.round(flat.double() / step)
    if not torch.isfinite(symbols).all() or symbols.abs().max() >= 2**31:
        raise CompressionError(
            f"codes reach {flat.abs().max().item():.3g}, too large to quantize with step {step}; "
            "the input is far from the training data, or the step is too small"
        )
    return symbols.cpu().numpy().astype(np.int64)


def default_step(model, codes: "torch.Tensor") -> float:
    """A model trained for rounding keeps step 1; otherwise 1/16 of the codes' typical spread, a power of 2."""
    trained = model.quantization_step
    if trained is not None:
        return float(trained)
    spread = float(codes.flatten(1).double().std(dim=0).median())
    if not spread > 0:
        return 1.0
    return float(2.0 ** round(math.log2(spread / 16)))


def _checked_step(step: float) -> float:
    step = float(np.float32(step))  # what the header stores
    if not (math.isfinite(step) and step > 0):
        raise CompressionError(f"the quantization step must be a positive number; got {step}")
    return step


def _well_formed(saved: dict[str, np.ndarray]) -> bool:
    """Whether saved tables have the fields, shapes and counts ``Tables.fit`` gives them: an edited or damaged
    file is refitted rather than trusted (zero or overflowing counts would break the range coder's models)."""
    if not {"offsets", "counts", "code_shape", "integer_codes"} <= saved.keys():
        return False
    offsets, counts, code_shape = saved["offsets"], saved["counts"], saved["code_shape"]
    return (
        offsets.ndim == 1 and counts.ndim == 2 and code_shape.ndim == 1 and saved["integer_codes"].shape == (1,)
        and counts.shape[0] == len(offsets) == math.prod(int(size) for size in code_shape)
        and 2 <= counts.shape[1] <= MAX_TABLE_WIDTH + 1
        and bool((counts >= 0).all() and (counts[:, -1] > 0).all() and (counts.sum(axis=1) < 2**52).all())
    )


def _check_model(model) -> None:
    if model.conditional:
        raise CompressionError(
            f"{model.name} is label-conditioned: its codes decode only with the label. Compress with an "
            "unconditional model (compressive-ae, ae, vae ...)"
        )


def decode_batches(model, codes: "torch.Tensor", tracked: bool = True) -> "torch.Tensor":
    """``model.decode`` of ``codes`` BATCH at a time (reported as "decoding" when ``tracked``)."""
    import torch

    starts = range(0, len(codes), BATCH)
    with torch.no_grad():
        batches = track(starts, len(starts), "decoding") if tracked else starts
        return torch.cat([model.decode(codes[start : start + BATCH]) for start in batches])


# -- entropy coding -------------------------------------------------------------------------------------
def encode_symbols(symbols: np.ndarray, tables: Tables) -> np.ndarray:
    """Range-code ``symbols`` (items, positions), position by position, then the escaped values."""
    width = tables.counts.shape[1] - 1
    index = symbols - tables.offsets
    escaped = (index < 0) | (index >= width)
    index = np.where(escaped, width, index).astype(np.int32)
    encoder = constriction.stream.queue.RangeEncoder()
    probabilities = tables.probabilities()
    for position in range(symbols.shape[1]):
        table = constriction.stream.model.Categorical(probabilities[position], perfect=False)
        encoder.encode(index[:, position].copy(), table)
    raw = _zigzag(symbols.T[escaped.T])  # position-major, like the decoder finds them
    halves = np.stack([raw >> ESCAPE_BITS, raw & (2**ESCAPE_BITS - 1)], axis=1).reshape(-1).astype(np.int32)
    if len(halves):
        encoder.encode(halves, constriction.stream.model.Uniform(2**ESCAPE_BITS))
    return encoder.get_compressed()


def decode_symbols(words: np.ndarray, tables: Tables, count: int, source: str) -> np.ndarray:
    """The symbols (count, positions) of ``words``; a count more than the words can hold is refused first."""
    check_count(count, len(words), tables, source)
    width = tables.counts.shape[1] - 1
    decoder = constriction.stream.queue.RangeDecoder(words)
    probabilities = tables.probabilities()
    positions = len(tables.offsets)
    index = np.empty((count, positions), dtype=np.int64)
    try:
        for position in range(positions):
            table = constriction.stream.model.Categorical(probabilities[position], perfect=False)
            index[:, position] = decoder.decode(table, count)
        symbols = index + tables.offsets
        escaped = index == width
        if escaped.any():
            halves = decoder.decode(constriction.stream.model.Uniform(2**ESCAPE_BITS), 2 * int(escaped.sum()))
            halves = halves.astype(np.uint64).reshape(-1, 2)
            symbols.T[escaped.T] = _unzigzag((halves[:, 0] << ESCAPE_BITS) | halves[:, 1])
    except (ValueError, RuntimeError, AssertionError) as error:
        raise CompressionError(f"{source} cannot be decoded ({error}); the file is damaged") from error
    if not decoder.maybe_exhausted():  # the encoder writes no word more than its symbols need
        raise CompressionError(f"{source} has payload left over after its {count} items; the file is damaged")
    return symbols


def check_count(count: int, words: int, tables: Tables, source: str) -> None:
    """Refuse ``count`` items when ``words`` range-coder words cannot hold them under ``tables``."""
    most = tables.most_items(words)
    if count > most:
        raise CompressionError(
            f"{source} claims {count} items, but its {4 * words} bytes of payload hold at most {most} under "
            "this model's tables; the file is damaged"
        )


# -- files ------------------------------------------------------------------------------------------------
def compress_files(run: str | Path, inputs: list[str | Path], out: str | Path, step: float | None = None,
                   data_dir: str | Path | None = None, chunk_items: int | None = None) -> tuple[int, int]:
    """Compress images/folders/.npy arrays with a run's model into ``out``; returns (items, bytes).

    Inputs of at most one chunk (``chunk_items`` items; by default as many as CHUNK_BYTES of float32 hold) are
    read whole and written as one (format 3); more are read, encoded and written chunk by chunk (format 4),
    so that memory holds one chunk, never the inputs or the file. Either is written to a temporary file and
    renamed into place when complete."""
    from autoencoders.data.inputs import read_items, stream_items

    codec = Codec.from_run(run, step=step, data_dir=data_dir)
    config = codec.model.config
    item_shape, value_range = tuple(config.input_shape), tuple(config.value_range)
    stream = stream_items(inputs, item_shape, value_range)
    per_chunk = chunk_items or max(1, CHUNK_BYTES // (4 * math.prod(item_shape)))
    if stream.count <= per_chunk:
        items = read_items(inputs, item_shape, value_range)
        data = codec.compress(items.values, items.names if items.kind == "images" else ())
        atomic_write_bytes(out, data)
        return len(items.values), len(data)
    chunks = track(stream.chunks(per_chunk), -(-stream.count // per_chunk), f"compressing {stream.count} items")
    with atomic_writer(out) as handle:
        size = write_chunks(codec, handle, chunks, named=stream.kind == "images")
    return stream.count, size


def decompress_file(run: str | Path, path: str | Path, out: str | Path,
                    data_dir: str | Path | None = None) -> list[Path]:
    """Decode a file written by ``compress_files`` with the same run; writes .npy, a .png or a folder of PNGs
    (named as the compressed images were; an array's items as 000000.png, 000001.png ...).

    A file of several chunks is decoded and written chunk by chunk (``decompress_chunks``). Nothing is written
    into the run: tables for a step the run has not saved are fitted in memory only."""
    from autoencoders.data.inputs import Items, write_items

    path = Path(path)
    if not path.exists():
        raise CompressionError(f"{path} does not exist")
    if path.is_dir():
        raise CompressionError(f"{path} is a folder; give the compressed file written by `autoencoders compress`")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(MAGIC) + 1)
        if head == MAGIC + bytes([STREAM_FORMAT_VERSION]):
            return decompress_chunks(run, path, Path(out), data_dir)
        data = path.read_bytes()
    except OSError as error:
        raise CompressionError(f"{path} cannot be read ({error.strerror})") from error
    header, _ = Header.parse(data, str(path))
    codec = Codec.from_run(run, step=header.step, data_dir=data_dir, write_tables=False)
    items = codec.decompress(data, str(path))
    like = Items(items, list(header.names), "images") if header.names else None
    return write_items(items, out, tuple(codec.model.config.value_range), like=like)


# -- files of several chunks (format 4) ----------------------------------------------------------------------
class _Checksummed:
    """A binary handle that keeps the size and CRC-32 of what is written through it."""

    def __init__(self, handle):
        self.handle, self.size, self.crc = handle, 0, 0

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.size += len(data)
        self.crc = zlib.crc32(data, self.crc)


def write_chunks(codec: Codec, handle, chunks: Iterable[tuple["torch.Tensor", Sequence[str]]], named: bool) -> int:
    """Write a file of several chunks (format 4) of ``chunks`` (items, their names: stored when ``named``) to
    ``handle``, each encoded as it comes; returns the bytes written."""
    out = _Checksummed(handle)
    out.write(Header(INTEGER_CODES if codec.integer_codes else REAL_CODES, codec.model_id, codec.step, 0,
                     STREAM_FORMAT_VERSION, chunk_names=named).to_bytes())
    total = 0
    for items, names in chunks:
        names = tuple(names) if named else ()
        payload = codec.payload(items, names)
        out.write(_varint(len(items)) + _names_bytes(names) + _varint(len(payload)) + payload)
        total += len(items)
    out.write(_varint(0) + _varint(total))
    handle.write(struct.pack(">I", out.crc))
    return out.size + CHECKSUM_BYTES


class _FileReader(_Reader):
    """A ``_Reader`` over an open file of ``size`` bytes, read as it is taken, keeping the CRC-32 of what was read."""

    def __init__(self, handle, size: int, source: str):
        self.handle, self.position, self.end, self.source, self.crc = handle, 0, size - CHECKSUM_BYTES, source, 0

    def take(self, size: int) -> bytes:
        if self.position + size > self.end:
            raise CompressionError(f"{self.source} is truncated or damaged: it ends inside a chunk")
        data = self.handle.read(size)
        if len(data) != size:
            raise CompressionError(f"{self.source} changed while it was being read; decompress it again once it is complete")
        self.crc = zlib.crc32(data, self.crc)
        self.position += size
        return data


def _check_checksum(handle, size: int, source: str) -> None:
    """Refuse a file whose last 4 bytes are not the CRC-32 of the bytes before them, read READ_BYTES at a time."""
    crc, left = 0, size - CHECKSUM_BYTES
    while left > 0:
        block = handle.read(min(READ_BYTES, left))
        if not block:
            break
        crc, left = zlib.crc32(block, crc), left - len(block)
    stored = handle.read(CHECKSUM_BYTES)
    if left != 0 or len(stored) != CHECKSUM_BYTES or struct.unpack(">I", stored)[0] != crc:
        raise CompressionError(f"{source} is damaged or truncated (its checksum does not match); copy or compress it again")


def read_chunks(handle, size: int, codec: Codec, source: str, decode: bool) -> Iterator[tuple[int, tuple[str, ...], "torch.Tensor | None"]]:
    """(count, names, items: None unless ``decode``) of every chunk of a format-4 file open as ``handle`` (at
    its start), each chunk checked before anything is sized by it; then the end, total and checksum."""
    head = handle.read(len(FORMAT_1_MAGIC))
    handle.seek(0)
    reader = _FileReader(handle, size, source)
    version, flags, model_id, step = _read_start(reader, head)
    codec.check(Header(_checked_kind(flags, step, source), model_id, step, 0, version), source)  # still this codec's file
    item_bytes = 4 * math.prod(codec.model.config.input_shape)
    most_items, positions = max(1, MAX_CHUNK_BYTES // item_bytes), len(codec.tables.offsets)
    total, index = 0, 0
    while count := reader.varint():
        index += 1
        where = f"{source} (chunk {index})"
        if count > most_items:
            raise CompressionError(
                f"{where} claims {count} items, more than a chunk may hold ({most_items} of this model's); the file is damaged"
            )
        names = _read_names(reader, count) if flags & NAMES_FLAG else ()
        payload_bytes, most_bytes = reader.varint(), MAX_SYMBOL_BYTES * (count * positions + 1)
        if payload_bytes > min(most_bytes, reader.end - reader.position):
            raise CompressionError(
                f"{where} claims a payload of {payload_bytes} bytes, more than {count} items can take or the file holds; "
                "the file is damaged"
            )
        payload = reader.take(payload_bytes)
        check_count(count, -(-payload_bytes // 4), codec.tables, where)
        yield count, names, codec.decode_payload(payload, count, where, tracked=False) if decode else None
        total += count
    if index == 0:
        raise CompressionError(f"{source} holds no items, which `compress` never writes; the file is damaged")
    claimed = reader.varint()
    if claimed != total or reader.position != reader.end:
        raise CompressionError(
            f"{source} ends wrongly (it claims {claimed} items in all; its {index} chunks hold {total}); the file is damaged"
        )
    if handle.read(CHECKSUM_BYTES) != struct.pack(">I", reader.crc):
        raise CompressionError(f"{source} changed while it was being read; decompress it again once it is complete")


def decompress_chunks(run: str | Path, path: Path, out: Path, data_dir: str | Path | None = None) -> list[Path]:
    """Decode a file of several chunks (format 4) into ``out`` (as ``decompress_file``) with bounded memory.

    The file is read three times: its checksum first (a damaged or truncated file is refused before anything
    is sized by it, as a file of one chunk is), then its chunks' counts and names are checked (so the output
    can be sized and its names checked before any is written), then the chunks are decoded one by one and
    written: a ``.npy`` through a temporary file, images into a temporary folder beside ``out``, moved into
    place once all are written. A compressed file is a small part of what it decodes to, so reading it again
    costs little."""
    from autoencoders.data.inputs import image_targets

    source = str(path)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        _check_checksum(handle, size, source)
        handle.seek(0)
        head = handle.read(len(FORMAT_1_MAGIC))
        handle.seek(0)
        version, flags, model_id, step = _read_start(_FileReader(handle, size, source), head)
    header = Header(_checked_kind(flags, step, source), model_id, step, 0, version, chunk_names=bool(flags & NAMES_FLAG))
    codec = Codec.from_run(run, step=step, data_dir=data_dir, write_tables=False)
    codec.check(header, source)
    with open(path, "rb") as handle:
        listed = [(count, names) for count, names, _ in read_chunks(handle, size, codec, source, decode=False)]
    total = sum(count for count, _ in listed)
    config = codec.model.config
    item_shape, value_range = tuple(config.input_shape), tuple(config.value_range)
    names = [name for _, chunk_names in listed for name in chunk_names] if header.chunk_names else None
    targets = None if out.suffix.lower() == ".npy" else image_targets(out, total, item_shape, names)
    with open(path, "rb") as handle:
        chunks = track(read_chunks(handle, size, codec, source, decode=True), len(listed), f"decompressing {total} items")
        items = (items for _, _, items in chunks)
        if targets is None:
            return [_write_npy(out, items, (total, *item_shape))]
        return _write_images(out, targets, items, value_range)


def _write_npy(out: Path, chunks: Iterable["torch.Tensor"], shape: tuple[int, ...]) -> Path:
    """A float32 ``.npy`` of ``shape``: its header, then each chunk's items appended, through a temporary file."""
    with atomic_writer(out) as handle:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(handle, header)
        for items in chunks:
            handle.write(items.numpy().astype(np.float32, copy=False).tobytes())
    return out


def _write_images(out: Path, targets: list[Path], chunks: Iterable["torch.Tensor"], value_range) -> list[Path]:
    """Each chunk's items as the image files ``targets`` (inside ``out``, or ``out`` itself), written into a
    temporary folder beside ``out`` and moved into place once all are written: an error leaves none of them."""
    from autoencoders.data.inputs import image_bytes, image_pixels

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        staged = iter(staging / target.relative_to(out.parent) for target in targets)
        for items in chunks:
            for pixels, path in zip(image_pixels(items, value_range), staged):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(image_bytes(pixels, path.suffix))  # in a temporary folder: no need to write each atomically
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / target.relative_to(out.parent), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return targets
