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


def encode_run(
    run: str | Path, data: str | None = None, split: str = "test", data_dir=None,
) -> tuple[Tensor, Tensor | None]:
    """The codes of a split of the run's dataset (or of ``data``, scaled as the run's data was), and its labels."""
    from autoencoders.io import load, load_run_data

    model = load(run)
    dataset = load_run_data(run, data_dir=data_dir, data=data)
    x, y = dataset.split(split), dataset.labels(split)
    return model.encode_batches(x, y if model.conditional else None), y


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
    from autoencoders.data.images import finite_float32

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
