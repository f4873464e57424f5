"""Latent codes as files: a dataset split encoded to ``.npy`` or ``.parquet`` (columns z0, z1, ... and the label),
and such a file read back for decoding, checked against the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from autoencoders.errors import InputError
from autoencoders.files import atomic_write_bytes

CODE_SUFFIXES = (".npy", ".parquet", ".pq")
ENCODE_CHUNK = 65536  # items encoded and written at a time when the data is streamed


def encode_run(
    run: str | Path, data: str | None = None, split: str = "test", data_dir=None,
) -> tuple[Tensor, Tensor | None]:
    """The codes of a split of the run's dataset (or of ``data``, scaled as the run's data was), and its labels."""
    from autoencoders.io import load, load_run_data

    model = load(run)
    dataset = load_run_data(run, data_dir=data_dir, data=data)
    x, y = dataset.split(split), dataset.labels(split)
    return model.encode_batches(x, y if model.conditional else None), y


def encode_to_file(run: str | Path, output: str | Path, data: str | None = None, split: str = "test", data_dir=None) -> tuple[int, int]:
    """A split's codes written to ``output`` (see ``write_codes``); returns (items, numbers per code).

    Data read batch by batch (``Dataset.streamed``) is encoded ``ENCODE_CHUNK`` items at a time and its codes
    written as they come (``.npy`` through a memory map, ``.parquet`` a row group per chunk), with progress."""
    from autoencoders.io import load, load_run_data

    output = Path(output)
    if output.suffix not in CODE_SUFFIXES:
        raise InputError(f"-o must end in .npy or .parquet; got {output}")
    model, dataset = load(run), load_run_data(run, data_dir=data_dir, data=data)
    items, labels = dataset.split(split), dataset.labels(split)
    if not dataset.streamed:
        codes = model.encode_batches(items, labels if model.conditional else None)
        write_codes(codes, labels, output)
        return len(codes), codes[0].numel()
    import itertools

    from autoencoders.progress import track
    from autoencoders.uses.outputs import npy_writer, table_writer

    starts = range(0, len(items), ENCODE_CHUNK)
    chunks = iter(track(
        (model.encode_batches(items[start : start + ENCODE_CHUNK]).flatten(1).numpy() for start in starts),
        len(starts), f"encoding {len(items)} items",
    ))
    first = next(chunks)
    size = first.shape[1]
    if output.suffix == ".npy":
        with npy_writer(output, (len(items), size), first.dtype) as array:
            position = 0
            for codes in itertools.chain([first], chunks):
                array[position : position + len(codes)] = codes
                position += len(codes)
    else:
        with table_writer(output) as writer:
            for codes in itertools.chain([first], chunks):
                writer.write({f"z{i}": codes[:, i] for i in range(size)})
    return len(items), size


def write_codes(codes: Tensor, labels: Tensor | None, path: str | Path) -> Path:
    """``.npy``: the (N, code size) array; ``.parquet``: columns z0, z1, ... and ``label`` when there are labels."""
    import io

    path = Path(path)
    if path.suffix not in CODE_SUFFIXES:
        raise InputError(f"-o must end in .npy or .parquet; got {path}")
    array = codes.flatten(1).cpu().numpy()
    buffer = io.BytesIO()
    if path.suffix == ".npy":
        np.save(buffer, array)
    else:
        import pandas as pd

        frame = pd.DataFrame(array, columns=[f"z{i}" for i in range(array.shape[1])])
        if labels is not None and labels.dim() == 1:
            frame["label"] = labels.numpy()
        frame.to_parquet(buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def read_codes(path: str | Path, code_size: int) -> Tensor:
    """Codes from a ``.npy`` or a ``.parquet`` file of ``write_codes``, as float32 (N, code_size); refused with a
    clear message when the file is not such codes (shape, type, NaN or infinite values)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; give the .npy or .parquet file that `autoencoders encode` wrote")
    if path.suffix in (".parquet", ".pq"):
        import pandas as pd

        frame = pd.read_parquet(path)
        array = frame[[column for column in frame.columns if str(column).startswith("z")]].to_numpy()
    elif path.suffix == ".npy":
        from autoencoders.data.images import read_npy

        array = read_npy(path)  # memory-mapped, no pickle: a header's shape allocates nothing
    else:
        raise InputError(f"{path}: codes come in a .npy or a .parquet file")
    if array.ndim != 2 or array.shape[1] != code_size or not np.issubdtype(array.dtype, np.number):
        raise InputError(f"codes must be numbers of shape (N, {code_size}); {path} has {array.dtype} {tuple(array.shape)}")
    from autoencoders.data.streaming import finite_float32

    return torch.as_tensor(finite_float32(np.asarray(array), path))


def decode_codes(run: str | Path, path: str | Path, label: int | None = None) -> Tensor:
    """The items the codes in ``path`` decode to; a conditional model needs the ``label`` to decode them as."""
    from autoencoders.io import load

    model = load(run)
    codes = read_codes(path, model.code_size)
    labels = None
    if model.conditional:
        if label is None or not 0 <= label < model.sample_classes:
            raise InputError(f"this model is conditional: pass --label CLASS, a class in 0..{model.sample_classes - 1}")
        labels = torch.full((len(codes),), label, dtype=torch.long)
    with torch.no_grad():
        return model.decode(codes, labels)
