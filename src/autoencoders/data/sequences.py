"""Sequence datasets: character-level text from a corpus every Python has, and moving MNIST digits.

``text``: the Python language reference's topics that ship with the standard library (``pydoc_data.topics``,
what ``help("assert")`` prints; about 450,000 characters), lower-cased, runs of blanks collapsed, as one-hot
windows (length, alphabet). The split is by position: the last 5% of windows are the test set, the 5% before
them validation, so no window's text is in two splits. ``Dataset.preprocessing`` holds the alphabet, and
``to_text`` turns one-hot (or probability) sequences back into strings.

``moving-digits`` (Srivastava et al. 2015's Moving MNIST, made here from the MNIST files): each sequence
shows ``digits`` MNIST digits moving in straight lines at constant speed in a square frame, bouncing off its
edges; frames overlap by the brighter pixel. Train and val sequences use MNIST training digits, test sequences
MNIST test digits; the labels are the digits' classes (N, digits).
"""

from __future__ import annotations

import math
import re

import torch

from autoencoders.data.errors import DataError
from autoencoders.data.registry import DATASETS, Dataset, Request
from autoencoders.data.splits import generator as stream_generator

ALPHABET = "\n !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
_TYPOGRAPHY = {"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "...", "°": " degrees", "ß": "ss"}
_HELD_OUT = 0.05  # fraction of windows for validation, and again for test


def corpus() -> str:
    """The built-in corpus: Python's reference topics, lower-cased, in ``ALPHABET``, blanks collapsed."""
    try:
        from pydoc_data.topics import topics
    except ImportError as error:  # some distributions split the stdlib; pydoc_data is part of CPython itself
        raise DataError(
            "the text corpus is Python's pydoc_data.topics, which this Python lacks; install the full standard "
            "library (e.g. the libpython3-stdlib package)"
        ) from error
    text = "\n".join(topics[name] for name in sorted(topics)).lower()
    text = "".join(_TYPOGRAPHY.get(character, character) for character in text)
    text = "".join(character for character in text if character in ALPHABET)
    lines = (re.sub(r"[ ]+", " ", line).strip() for line in text.split("\n"))
    # lines without a letter are table borders and heading underlines (+-----+, *****), not text
    return "\n".join(line for line in lines if re.search("[a-z]", line))


def one_hot_text(text: str, alphabet: str = ALPHABET) -> torch.Tensor:
    """A string as float32 (len, len(alphabet)) one-hot rows; characters outside the alphabet are an error."""
    missing = sorted(set(text) - set(alphabet))
    if missing:
        raise DataError(f"characters {missing[:10]} are not in the alphabet; it holds {alphabet!r}")
    codes = torch.tensor([ord(character) for character in alphabet])
    lookup = torch.zeros(int(codes.max()) + 1, dtype=torch.long)
    lookup[codes] = torch.arange(len(alphabet))
    points = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()  # one code point each
    return torch.nn.functional.one_hot(lookup[points], len(alphabet)).float()


def to_text(sequences: torch.Tensor, alphabet: str = ALPHABET) -> list[str]:
    """One-hot or probability sequences (N, length, len(alphabet)) as strings (the likeliest character per step)."""
    if sequences.dim() != 3 or sequences.shape[-1] != len(alphabet):
        raise ValueError(f"expected (N, length, {len(alphabet)}) character sequences; got shape {tuple(sequences.shape)}")
    return ["".join(alphabet[index] for index in row) for row in sequences.argmax(-1).tolist()]


def load_text(request: Request, length: int = 64, stride: int | None = None) -> Dataset:
    """Windows of ``length`` characters every ``stride`` (default ``length``) of the corpus, one-hot."""
    length, stride = int(length), int(stride or length)
    if length < 2 or stride < 1:
        raise DataError(f"text windows need length >= 2 and stride >= 1; got length {length}, stride {stride}")
    encoded = one_hot_text(corpus())
    starts = torch.arange(0, len(encoded) - length + 1, stride)
    held_out = max(1, round(_HELD_OUT * len(starts)))
    if len(starts) < 3 * held_out:
        raise DataError(f"the corpus gives only {len(starts)} windows of {length}; ask for shorter windows")
    blocks = {
        "train": starts[: len(starts) - 2 * held_out],
        "val": starts[len(starts) - 2 * held_out : len(starts) - held_out],
        "test": starts[len(starts) - held_out :],
    }
    items = {}
    for split, split_starts in blocks.items():
        split_starts = split_starts[: request.limit]
        items[split] = encoded[split_starts.view(-1, 1) + torch.arange(length).view(1, -1)]
    return Dataset(
        name=request.name,
        train=items["train"], val=items["val"], test=items["test"],
        train_labels=None, val_labels=None, test_labels=None,
        item_shape=(length, len(ALPHABET)),
        value_range=(0.0, 1.0),
        num_classes=0,
        description=DATASETS[request.name].description,
        binary=True,
        preprocessing={"kind": "characters", "alphabet": ALPHABET},
    )


# Moving digits: 28x28 MNIST digits in a square frame.
_DIGIT_SIZE = 28
_SPEED = (2.0, 5.0)  # pixels per frame, uniform


def _motion(count: int, digits: int, stream: torch.Generator) -> torch.Tensor:
    """Per sequence and digit: (start x, start y) in [0, 1) of the free range, velocity (vx, vy) in pixels."""
    starts = torch.rand(count, digits, 2, generator=stream)
    angle = 2 * math.pi * torch.rand(count, digits, generator=stream)
    speed = _SPEED[0] + (_SPEED[1] - _SPEED[0]) * torch.rand(count, digits, generator=stream)
    return torch.cat([starts, (speed * angle.cos()).unsqueeze(-1), (speed * angle.sin()).unsqueeze(-1)], -1)


def _bounce(position: torch.Tensor, limit: int) -> torch.Tensor:
    """Positions on an unbounded line folded into [0, limit], as a ball bouncing between two walls."""
    folded = position.remainder(2 * limit)
    return torch.where(folded > limit, 2 * limit - folded, folded)


def render_moving_digits(images: torch.Tensor, motion: torch.Tensor, length: int, image_size: int) -> torch.Tensor:
    """Sequences (N, length, 1, S, S) in [0, 1] of digit ``images`` (N, digits, 28, 28) moving by ``motion``."""
    count, digits = images.shape[:2]
    free = image_size - _DIGIT_SIZE
    time = torch.arange(length, dtype=torch.float32).view(1, 1, -1, 1)
    start = motion[..., :2].unsqueeze(2) * free
    corner = _bounce(start + time * motion[..., 2:].unsqueeze(2), free).round().long()  # (N, digits, T, 2)
    offsets = torch.arange(_DIGIT_SIZE)
    rows = corner[..., 1, None, None] + offsets.view(-1, 1)  # (N, digits, T, 28, 1)
    columns = corner[..., 0, None, None] + offsets.view(1, -1)  # (N, digits, T, 1, 28)
    flat = (rows * image_size + columns).permute(0, 2, 1, 3, 4).reshape(count * length, -1)
    pixels = images.unsqueeze(2).expand(-1, -1, length, -1, -1).permute(0, 2, 1, 3, 4).reshape(count * length, -1)
    frames = torch.zeros(count * length, image_size * image_size)
    frames.scatter_reduce_(1, flat, pixels, reduce="amax")  # overlapping digits: the brighter pixel
    return frames.view(count, length, 1, image_size, image_size)


def load_moving_digits(
    request: Request, train_size: int = 2000, test_size: int = 500, length: int = 10, image_size: int = 64,
    digits: int = 2,
) -> Dataset:
    """Moving MNIST made from the MNIST files: (length, 1, image_size, image_size) in [0, 1]."""
    from autoencoders.data.images import _idx_arrays, _unit
    from autoencoders.data.synthetic import _split_sizes

    length, image_size, digits = int(length), int(image_size), int(digits)
    if image_size <= _DIGIT_SIZE or length < 1 or digits < 1:
        raise DataError(
            f"moving digits need image_size > {_DIGIT_SIZE}, length >= 1 and digits >= 1; got image_size "
            f"{image_size}, length {length}, digits {digits}"
        )
    train_images, train_labels, test_images, test_labels = _idx_arrays(request)
    pools = {"train": (train_images, train_labels), "val": (train_images, train_labels), "test": (test_images, test_labels)}
    items, labels = {}, {}
    for split, size in _split_sizes(request, train_size, test_size, 200).items():
        stream = stream_generator(request.name, split) if split == "test" else stream_generator(request.name, split, request.seed)
        pool, pool_labels = pools[split]
        chosen = torch.randint(len(pool), (size, digits), generator=stream)[: request.limit]
        motion = _motion(size, digits, stream)[: request.limit]
        items[split] = render_moving_digits(_unit(pool[chosen.flatten()][:, 0]).view(*chosen.shape, 28, 28), motion, length, image_size)
        labels[split] = pool_labels[chosen]
    return Dataset(
        name=request.name,
        train=items["train"], val=items["val"], test=items["test"],
        train_labels=labels["train"], val_labels=labels["val"], test_labels=labels["test"],
        item_shape=(length, 1, image_size, image_size),
        value_range=(0.0, 1.0),
        num_classes=0,
        description=DATASETS[request.name].description,
    )
