"""Reading a request to a served model (``autoencoders serve``): its body, refused past a size limit, as the
model's items, codes and labels, each problem a ``RequestError`` with its HTTP status and a message naming it.

Bodies are JSON (``{"inputs": [...]}``: nested lists of numbers in the model's space, or table rows as objects keyed
by column name, scaled with the saved scaling), ``.npy`` bytes (read by ``read_npy_bytes``: no pickle, the header
checked against the bytes) or a PNG image (one item, for models of images). ``served`` is a ``serve.ServedModel``.
"""

import json
from typing import Any

import numpy as np
import torch
from torch import Tensor

from autoencoders.errors import InputError

NPY_TYPES = ("application/octet-stream", "application/x-npy")
IMAGE_TYPE = "image/png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class RequestError(InputError):
    """A bad request: its HTTP status and a message naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_body(request, limit: int) -> bytes:
    """The request's body, refused (413) as soon as it passes ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestError(413, f"the request body of {int(length)} bytes is larger than the limit of {limit} bytes (--max-body-mb)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the request body is larger than the limit of {limit} bytes (--max-body-mb)")
        chunks.append(chunk)
    return b"".join(chunks)


def content_type(request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def parse_json(body: bytes) -> dict:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as error:  # bad JSON or UTF-8, an integer of 5000 digits, deep nesting
        raise RequestError(400, f"the body is not valid JSON ({str(error)[:120]})") from error
    if not isinstance(value, dict):
        raise RequestError(422, f"the body must be a JSON object such as {{\"inputs\": [...]}}; got a {type(value).__name__}")
    return value


def array_of_json(value: Any, key: str) -> np.ndarray:
    """A JSON value of nested lists of numbers as an array; ragged lists and anything but numbers refused."""
    if not isinstance(value, list) or not value:
        raise RequestError(422, f"'{key}' must be a non-empty list of items (nested lists of numbers)")
    try:
        array = np.array(value)
    except (ValueError, RecursionError, OverflowError) as error:
        raise RequestError(422, f"'{key}' is ragged: its lists differ in length at some depth; every item must "
                                "have the same shape") from error
    if array.dtype.kind not in "biuf":
        raise RequestError(422, f"'{key}' must hold numbers only, in lists of equal length (no strings, null or objects)")
    return array


def items_of_request(served, body: bytes, kind: str, query_labels: str | None) -> tuple[Tensor, Tensor | None]:
    """The items (N, *input_shape) in the model's space and their labels, from a JSON, .npy or PNG body."""
    from autoencoders.data.images import read_npy_bytes
    from autoencoders.data.inputs import image_of_bytes, items_of_array

    config = served.model.config
    shape, value_range = tuple(config.input_shape), tuple(config.value_range)
    if kind == "application/json":
        payload = parse_json(body)
        if "inputs" not in payload:
            raise RequestError(422, "the JSON body has no 'inputs': send {\"inputs\": [item, ...]}")
        value = payload["inputs"]
        if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
            items = rows_of_table(served, value)
        else:
            items = items_of_array(array_of_json(value, "inputs"), shape, value_range, "'inputs'")
        return items, labels_of(served, payload.get("labels"), len(items))
    if kind in NPY_TYPES:
        items = items_of_array(read_npy_bytes(body, "the .npy body"), shape, value_range, "the .npy body")
    elif kind == IMAGE_TYPE:
        if not body.startswith(PNG_SIGNATURE):
            raise RequestError(422, "the body is not a PNG image (it lacks the PNG signature)")
        items = image_of_bytes(body, "the PNG body", shape, value_range, formats=("PNG",))[None]
    else:
        raise RequestError(415, f"content type {kind or 'none'!r} is not read here; send application/json, "
                                f"{' or '.join(NPY_TYPES)} (.npy bytes) or {IMAGE_TYPE}")
    return items, labels_of(served, _query_labels(query_labels), len(items))


def rows_of_table(served, rows: list[dict]) -> Tensor:
    """Rows given as JSON objects keyed by column name, scaled with the saved scaling."""
    scaling = served.scaling
    if scaling is None or scaling.columns is None:
        raise RequestError(422, f"model {served.name!r} records no column names to read JSON objects by; send its items as "
                                "nested lists in the model's space")
    for index, row in enumerate(rows):
        missing = [name for name in scaling.columns if name not in row]
        if missing:
            raise RequestError(422, f"row {index} lacks the column(s) {', '.join(missing[:5])}; the model reads "
                                    f"{', '.join(scaling.columns)}")
        bad = [name for name in scaling.columns if isinstance(row[name], bool) or not isinstance(row[name], (int, float))]
        if bad:
            raise RequestError(422, f"row {index}: column {bad[0]!r} is not a number")
    try:
        raw = np.array([[row[name] for name in scaling.columns] for row in rows], dtype=np.float64)
    except OverflowError as error:  # an integer of hundreds of digits
        raise RequestError(422, "the rows hold a number too large for float64") from error
    if not np.isfinite(raw).all():
        first = tuple(int(index) for index in np.argwhere(~np.isfinite(raw))[0])
        raise RequestError(422, f"the rows hold NaN or infinite values, the first in row {first[0]}, column {scaling.columns[first[1]]!r}")
    items = scaling.scale(torch.from_numpy(raw))
    if tuple(items.shape[1:]) != tuple(served.model.config.input_shape):
        raise RequestError(422, f"the model takes items of shape {tuple(served.model.config.input_shape)}; its columns give {tuple(items.shape[1:])}")
    if not torch.isfinite(items).all():
        raise RequestError(422, "the rows hold values too large for float32 once scaled")
    return items


def _query_labels(text: str | None) -> list | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError as error:
        raise RequestError(422, f"?labels= takes class numbers separated by commas, e.g. 1,0,3; got {text[:60]!r}") from error


def labels_of(served, labels: Any, count: int) -> Tensor | None:
    """One class per item for a conditional model; refused for any other."""
    model = served.model
    if not model.conditional:
        if labels is not None:
            raise RequestError(422, f"model {served.name!r} ({model.name}) is not conditional: it takes no labels")
        return None
    classes = model.config.num_classes
    if labels is None:
        raise RequestError(422, f"model {served.name!r} ({model.name}) is conditional: send 'labels', one class in 0..{classes - 1} per item")
    if not isinstance(labels, list) or any(isinstance(label, bool) or not isinstance(label, int) for label in labels):
        raise RequestError(422, "'labels' must be a list of class numbers (integers)")
    if len(labels) != count:
        raise RequestError(422, f"there are {count} items but {len(labels)} labels; send one label per item")
    if any(not 0 <= label < classes for label in labels):
        raise RequestError(422, f"labels must lie in 0..{classes - 1}; got {min(labels)}..{max(labels)}")
    return torch.tensor(labels, dtype=torch.long)


def codes_of_request(served, body: bytes, kind: str, query_labels: str | None) -> tuple[Tensor, Tensor | None]:
    """The codes (N, *code_shape) of a /decode request, from JSON ``{"codes": ...}`` or a .npy body."""
    from autoencoders.data.images import read_npy_bytes
    from autoencoders.data.streaming import finite_float32

    if kind == "application/json":
        payload = parse_json(body)
        if "codes" not in payload:
            raise RequestError(422, "the JSON body has no 'codes': send {\"codes\": [code, ...]}")
        array, labels, source = array_of_json(payload["codes"], "codes"), payload.get("labels"), "'codes'"
    elif kind in NPY_TYPES:
        array, labels, source = read_npy_bytes(body, "the .npy body"), _query_labels(query_labels), "the .npy body"
    else:
        raise RequestError(415, f"content type {kind or 'none'!r} is not read here; send application/json or {' or '.join(NPY_TYPES)}")
    shape = served.code_shape
    if tuple(array.shape) == shape:
        array = array[None]
    if tuple(array.shape[1:]) != shape:
        raise RequestError(422, f"{source} has shape {array.shape}; the model's codes have shape {shape}, so send (N, {', '.join(map(str, shape))})")
    if served.integer_codes:
        if array.dtype.kind not in "iu":
            raise RequestError(422, f"{source}: the {served.model.name}'s codes are integers (codebook indices); got {array.dtype} values")
        codes = torch.from_numpy(array.astype(np.int64))
    else:
        codes = torch.from_numpy(finite_float32(array, source))
    return codes, labels_of(served, labels, len(codes))
