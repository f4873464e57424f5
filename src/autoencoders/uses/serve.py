"""``autoencoders serve``: trained models behind an HTTP API (FastAPI + uvicorn, the ``serve`` extra).

    from autoencoders.uses.serve import ServeConfig, serve
    serve(["runs/ae", "my-detector"], ServeConfig(port=8000))

Each folder given (a run folder, a saved model, or a detector saved by ``AnomalyDetector.save_pretrained`` or
``AnomalyEnsemble.save_pretrained``) is loaded once at start and served under its folder's name. A run folder
that holds a saved detector in ``RUN/anomaly/`` scores with it. Endpoints (this spelling is a contract):

- ``GET /health`` -> ``{"status": "ok"}``; ``GET /v1/models`` -> each model's name, family, input shape, latent
  size, what it can do (read off the flags its class declares: ``generative``, ``conditional`` ...), and how its
  requests were batched so far;
- ``POST /v1/models/{name}/encode`` ``{"inputs": [...]}`` -> ``{"codes": [...]}``; ``/decode`` ``{"codes": [...]}``
  -> ``{"outputs": [...]}``; ``/reconstruct`` -> ``{"outputs": [...]}``; ``/sample`` ``{"n": 8, "label": 3}`` ->
  ``{"outputs": [...], "seed": s}``; ``/score`` -> ``{"scores": [...], "outliers": [...], "threshold": t}``;
  ``/compress`` -> the bytes ``autoencoders compress`` writes; ``/decompress`` (those bytes) -> ``{"outputs": [...]}``.

Requests are read by ``autoencoders.uses.http_inputs``. Items are in the model's space, as the run's data loader
gives them: nested JSON lists ``(N, *input_shape)`` (or one item), a ``.npy`` array (``application/octet-stream`` or
``application/x-npy``; uint8 holds pixels 0..255), a PNG image (``image/png``, one item, for models of images), or
for tables JSON objects keyed by column name, which are scaled with the run's (or the detector's) saved scaling. A conditional model takes ``"labels"`` (one class
per item; ``?labels=1,2`` with a binary body). ``/score`` gives the saved detector's anomaly scores and threshold,
else the model's reconstruction error (the mean squared difference per item) with no threshold, as
``"threshold_from"`` says.

Concurrent requests for the same model and operation are batched (``autoencoders.uses.batching``) and run under
``torch.inference_mode`` in one inference thread, off the event loop. Bad requests get a 4xx and
``{"error": "..."}`` naming the problem (400 malformed, 404 unknown model, 413 too large, 415 content type,
422 shape, ragged lists, NaN, labels; an operation the model cannot do: 400); the server keeps serving.
"""

import json
import logging
import os
import random
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from autoencoders.errors import InputError
from autoencoders.uses.batching import MicroBatcher
from autoencoders.uses.http_inputs import (
    IMAGE_TYPE, NPY_TYPES, RequestError, codes_of_request, content_type, items_of_request, parse_json, read_body,
)

log = logging.getLogger("autoencoders")

BATCHED_OPS = ("encode", "decode", "reconstruct", "score")  # one row per item: concurrent requests share a batch
OPS = (*BATCHED_OPS, "sample", "compress", "decompress")
FLAGS = ("generative", "conditional", "transfers_style", "has_likelihood", "gaussian_posterior", "has_code_prior",
         "denoises", "classifies", "quantization_step")  # the capabilities a model class declares
MAX_SAMPLES = 1024  # per /sample request
CONFIG_ENV = "AUTOENCODERS_SERVE"  # with several workers: what each worker process loads (JSON)


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1  # uvicorn worker processes, each loading every model (batches form per process)
    max_batch: int = 64  # items per batch
    max_wait_ms: float = 2.0  # under load (the last batch held several requests): how long to wait for more
    max_body_mb: float = 16.0  # a larger request body is refused (413)
    threads: int | None = None  # torch's threads per worker process (None: torch's default, one per core)
    data_dir: str | None = None  # where a run's training data is looked for (fitting its compression tables)

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 64:
            raise InputError(f"--workers must lie in [1, 64]; got {self.workers}")
        if not 1 <= self.max_batch <= 65536:
            raise InputError(f"--max-batch must lie in [1, 65536]; got {self.max_batch}")
        if not 0 <= self.max_wait_ms <= 1000:
            raise InputError(f"--max-wait-ms must lie in [0, 1000]; got {self.max_wait_ms}")
        if not 0 < self.max_body_mb <= 4096:
            raise InputError(f"--max-body-mb must lie in (0, 4096]; got {self.max_body_mb}")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise InputError(f"--threads must lie in [1, 1024]; got {self.threads}")
        if not 0 <= self.port <= 65535:
            raise InputError(f"--port must lie in [0, 65535]; got {self.port}")


# -- the models --------------------------------------------------------------------------------------------
@dataclass
class Scaling:
    """A table's saved scaling: raw columns -> the model's space, (value - mean) / std."""

    columns: list[str] | None  # the column names, when the run or detector recorded them
    mean: Tensor
    std: Tensor

    @classmethod
    def of(cls, standardization: dict | None, columns: list[str] | None) -> "Scaling | None":
        if not standardization:
            return None
        mean = torch.tensor(standardization["mean"], dtype=torch.float64)
        std = torch.tensor(standardization["std"], dtype=torch.float64)
        return cls([str(name) for name in columns] if columns else None, mean, std)

    def scale(self, raw: Tensor) -> Tensor:
        return ((raw.double() - self.mean) / self.std).float()

    def unscale(self, items: Tensor) -> Tensor:
        return (items.double() * self.std + self.mean).float()


@dataclass
class ServedModel:
    """One folder's model (and detector), loaded once, with what its requests need."""

    name: str
    path: Path
    model: Any  # an Autoencoder in eval mode
    detector: Any = None  # a fitted AnomalyDetector or AnomalyEnsemble, or None
    scaling: Scaling | None = None  # what JSON rows keyed by column are scaled with: the run's, else the detector's
    detector_scaling: Scaling | None = None  # the detector's own (it scales raw rows itself), or None
    codec: Any = None  # a compress.Codec, or None
    unavailable: dict[str, str] = field(default_factory=dict)  # operation -> why this model cannot do it
    code_shape: tuple[int, ...] = ()
    integer_codes: bool = False

    @property
    def capabilities(self) -> list[str]:
        return [op for op in OPS if op not in self.unavailable]

    def require(self, op: str) -> None:
        if op in self.unavailable:
            raise RequestError(400, f"model {self.name!r} cannot {op}: {self.unavailable[op]}")

    def describe(self) -> dict[str, Any]:
        model = self.model
        detector = None
        if self.detector is not None:
            detector = {"kind": type(self.detector).__name__, "score": getattr(self.detector, "scores", "ensemble"),
                        "threshold": float(self.detector.threshold_)}
        return {
            "name": self.name, "family": model.name, "input_shape": list(model.config.input_shape),
            "latent_size": int(model.code_size), "code_shape": list(self.code_shape),
            "code_dtype": "int64" if self.integer_codes else "float32",
            "value_range": list(model.config.value_range), "classes": int(model.sample_classes),
            "columns": self.scaling.columns if self.scaling is not None else None,
            "capabilities": self.capabilities, "unavailable": dict(self.unavailable),
            "flags": {flag: getattr(model, flag) for flag in FLAGS}, "detector": detector,
        }


def load_served(path: str | Path, data_dir: str | None = None) -> ServedModel:
    """A run folder, a saved model or a saved detector, loaded for serving under its folder's name."""
    from autoencoders.io import load, read_config
    from autoencoders.uses.detect import DETECTION_FOLDER, saved_detector_class

    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path} is not a folder; serve takes run folders, saved models and saved detectors")
    detector_folder = next((folder for folder in (path, path / DETECTION_FOLDER) if saved_detector_class(folder)), None)
    detector = detector_scaling = None
    if detector_folder is not None:
        detector = saved_detector_class(detector_folder).from_pretrained(detector_folder, device="cpu")
        first = getattr(detector, "detectors_", [detector])[0]
        names = getattr(first, "feature_names_in_", None)
        detector_scaling = Scaling.of(first.standardization_, list(names) if names is not None else None)
    scaling = detector_scaling
    if detector_folder == path:
        model = first.model_
    else:
        model = load(path)
        preprocessing = (read_config(path).get("data") or {}).get("preprocessing") or {}
        if preprocessing.get("kind") == "standardize":
            scaling = Scaling.of(preprocessing, preprocessing.get("columns"))
    served = ServedModel(path.resolve().name, path, model.eval(), detector, scaling, detector_scaling)
    labels = torch.zeros(1, dtype=torch.long) if model.conditional else None
    with torch.inference_mode():  # one item's code: the shape and kind of codes /decode takes
        codes = model.encode(torch.full((1, *model.config.input_shape), float(model.config.value_range[0])), labels)
    served.code_shape, served.integer_codes = tuple(codes.shape[1:]), not codes.is_floating_point()
    if not model.generative:
        served.unavailable["sample"] = f"the {model.name} has no prior to sample from (its class is not generative)"
    _load_codec(served, data_dir)
    return served


def _load_codec(served: ServedModel, data_dir: str | None) -> None:
    """The compression codec of ``autoencoders compress`` (its tables fitted on the run's training data once and
    kept in the run folder), or why there is none."""
    from autoencoders.uses.compress import Codec

    if served.model.conditional:
        reason = f"the {served.model.name} is label-conditioned: its codes decode only with the label"
    else:
        try:
            served.codec = Codec.from_run(served.path, data_dir=data_dir)
            return
        except (InputError, OSError) as error:  # no training data to fit its tables on, or no cached tables
            reason = " ".join(str(error).split())
    served.unavailable["compress"] = served.unavailable["decompress"] = reason


# -- what a batch runs ---------------------------------------------------------------------------------------
def _batch_function(served: ServedModel, op: str):
    model = served.model

    def encode(inputs):
        items, labels = inputs
        return model.encode(items, labels)

    def decode(inputs):
        codes, labels = inputs
        return model.decode(codes, labels)

    def reconstruct(inputs):
        items, labels = inputs
        return model.reconstruct(items, labels)

    def score(inputs):
        items, labels = inputs
        if served.detector is None:  # the reconstruction error, as export's score part and detect's recon score
            return (model.reconstruct(items, labels) - items).pow(2).flatten(1).mean(1)
        scaling = served.detector_scaling  # a detector that scales raw rows itself gets them raw
        raw = scaling.unscale(items) if scaling is not None else items
        return torch.from_numpy(np.asarray(served.detector.anomaly_score(raw), dtype=np.float64))

    return {"encode": encode, "decode": decode, "reconstruct": reconstruct, "score": score}[op]


def _finite(values: Tensor, what: str) -> Tensor:
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise RequestError(422, f"the model's {what} are not finite for these inputs: they lie too far outside the "
                                "values the model was trained on")
    return values


# -- the application ---------------------------------------------------------------------------------------------
def _body_schema(kinds: dict[str, dict]) -> dict:
    return {"requestBody": {"required": True, "content": kinds}}


_ITEMS = {"type": "array", "minItems": 1, "items": {}, "description": "items (N, *input_shape), nested lists of numbers; or table rows as objects keyed by column"}
_LABELS = {"type": "array", "items": {"type": "integer"}, "description": "conditional models: one class per item"}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
ITEM_BODY = _body_schema({
    "application/json": {"schema": {"type": "object", "required": ["inputs"], "properties": {"inputs": _ITEMS, "labels": _LABELS}}},
    **{kind: _BINARY for kind in (*NPY_TYPES, IMAGE_TYPE)},
})
CODE_BODY = _body_schema({
    "application/json": {"schema": {"type": "object", "required": ["codes"], "properties": {
        "codes": {"type": "array", "minItems": 1, "items": {}, "description": "codes (N, *code_shape)"}, "labels": _LABELS}}},
    **{kind: _BINARY for kind in NPY_TYPES},
})
SAMPLE_BODY = _body_schema({"application/json": {"schema": {"type": "object", "properties": {
    "n": {"type": "integer", "minimum": 1, "maximum": MAX_SAMPLES, "default": 8},
    "label": {"type": "integer", "description": "conditional models: the class to draw"},
    "seed": {"type": "integer", "description": "the same seed gives the same samples; default: a fresh one, returned"},
}}}})
FILE_BODY = _body_schema({"application/octet-stream": _BINARY})
def _answer(properties: dict[str, dict]) -> dict:
    """The OpenAPI description of a 200 answer: a JSON object of ``properties``."""
    schema = {"type": "object", "required": list(properties), "properties": properties}
    return {200: {"description": "OK", "content": {"application/json": {"schema": schema}}}}


_NUMBERS = {"type": "array", "items": {}, "description": "nested lists of numbers, one entry per item"}
ANSWERS = {
    "encode": _answer({"codes": _NUMBERS}), "decode": _answer({"outputs": _NUMBERS}),
    "reconstruct": _answer({"outputs": _NUMBERS}), "decompress": _answer({"outputs": _NUMBERS}),
    "sample": _answer({"outputs": _NUMBERS, "seed": {"type": "integer"}}),
    "score": _answer({
        "scores": {"type": "array", "items": {"type": "number"}},
        "outliers": {"type": ["array", "null"], "items": {"type": "boolean"}, "description": "null without a saved detector"},
        "threshold": {"type": ["number", "null"], "description": "the saved detector's; null without one"},
        "score": {"type": "string"}, "threshold_from": {"type": "string"},
    }),
    "compress": {200: {"description": "the bytes `autoencoders compress` writes",
                       "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
}
ERROR_RESPONSE = {"content": {"application/json": {"schema": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}}}}
ERRORS = {status: {"description": text, **ERROR_RESPONSE} for status, text in (
    (400, "malformed request, or an operation the model cannot do"), (404, "no such model"), (413, "body too large"),
    (415, "content type not read"), (422, "inputs of the wrong shape, ragged, not finite, or bad labels"))}


def _operation(body: dict, names: list[str], labels: bool = False) -> dict:
    """An operation's schema: its body, the ``name`` path parameter (the served models) and the ``labels`` query."""
    parameters = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": names},
                   "description": "a served model: its folder's name"}]
    if labels:
        parameters.append({"name": "labels", "in": "query", "required": False, "schema": {"type": "string"},
                           "description": "conditional models, with a .npy or PNG body: one class per item, e.g. 3,0,7"})
    return {**body, "parameters": parameters}


def _json_response(key: str, values: Tensor, **extra):
    from fastapi.responses import JSONResponse

    return JSONResponse({key: _finite(values, key).tolist(), **extra})


def create_app(served: list[ServedModel], config: ServeConfig):
    """The FastAPI application serving ``served`` (loaded already)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException

    from autoencoders import __version__

    models = {entry.name: entry for entry in served}
    names = list(models)
    # one inference thread; torch parallelizes inside a batch. Its thread count is set in that thread itself: OpenMP
    # keeps one per thread, and a thread left at the default spins on busy cores (a 28x28 image: 8 ms of CPU, not 1)
    threads = config.threads or torch.get_num_threads()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference", initializer=torch.set_num_threads,
                                  initargs=(threads,))
    batchers = {
        (entry.name, op): MicroBatcher(_batch_function(entry, op), config.max_batch, config.max_wait_ms / 1000, executor)
        for entry in served for op in BATCHED_OPS
    }
    limit = int(config.max_body_mb * (1 << 20))

    @asynccontextmanager
    async def lifespan(app):
        yield
        for batcher in batchers.values():
            await batcher.close()
        executor.shutdown(wait=True)

    app = FastAPI(title="autoencoders", version=__version__, lifespan=lifespan,
                  description="Trained autoencoders: encode, decode, reconstruct, sample, score, compress.")

    @app.exception_handler(RequestError)
    async def request_error(request, error: RequestError):
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(InputError)
    async def input_error(request, error: InputError):  # the library's readers' errors: shapes, NaN, damaged files
        return JSONResponse({"error": " ".join(str(error).split())}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request, error: HTTPException):  # unknown paths, methods
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request, error: Exception):  # a bug of the library, not of the request
        log.exception("internal error serving %s", request.url.path)
        return JSONResponse({"error": f"internal error: {type(error).__name__}: {str(error)[:200]}"}, status_code=500)

    def model_named(request, op: str) -> tuple[str, ServedModel]:
        name = request.path_params["name"]
        if name not in models:
            raise RequestError(404, f"no model named {name[:80]!r}; served: {', '.join(models)}")
        models[name].require(op)
        return name, models[name]

    async def run_batched(name: str, op: str, inputs) -> Tensor:
        try:
            return await batchers[(name, op)].submit(inputs)
        except InputError:
            raise
        except ValueError as error:  # the model's own check of its inputs (a VQ model's codebook range)
            raise RequestError(422, " ".join(str(error).split())[:300]) from error

    async def run_alone(function, *arguments):
        """``function`` in the inference thread, unbatched (sampling, compression)."""
        import asyncio

        def inference():
            with torch.inference_mode():
                return function(*arguments)

        try:
            return await asyncio.get_running_loop().run_in_executor(executor, inference)
        except InputError:
            raise
        except ValueError as error:  # the model's or the codec's own checks
            raise RequestError(422, " ".join(str(error).split())[:300]) from error

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models():
        return {"models": [
            {**entry.describe(), "stats": {op: batchers[(entry.name, op)].stats.to_dict() for op in BATCHED_OPS}}
            for entry in served
        ]}

    # the routes read their path and query themselves (FastAPI's parameter validation costs more than a small
    # model's inference); the schema declares them in ``parameters``
    def items_route(op: str, key: str):
        async def route(request: Request):
            name, entry = model_named(request, op)
            items, labels = items_of_request(entry, await read_body(request, limit), content_type(request), request.query_params.get("labels"))
            return _json_response(key, await run_batched(name, op, (items, labels)))
        return route

    for op, key in (("encode", "codes"), ("reconstruct", "outputs")):
        app.add_api_route(f"/v1/models/{{name}}/{op}", items_route(op, key), methods=["POST"], name=op,
                          openapi_extra=_operation(ITEM_BODY, names, labels=True), responses={**ERRORS, **ANSWERS[op]})

    @app.post("/v1/models/{name}/decode", openapi_extra=_operation(CODE_BODY, names, labels=True), responses={**ERRORS, **ANSWERS["decode"]})
    async def decode(request: Request):
        name, entry = model_named(request, "decode")
        codes, labels = codes_of_request(entry, await read_body(request, limit), content_type(request), request.query_params.get("labels"))
        return _json_response("outputs", await run_batched(name, "decode", (codes, labels)))

    @app.post("/v1/models/{name}/score", openapi_extra=_operation(ITEM_BODY, names, labels=True), responses={**ERRORS, **ANSWERS["score"]})
    async def score(request: Request):
        name, entry = model_named(request, "score")
        items, labels = items_of_request(entry, await read_body(request, limit), content_type(request), request.query_params.get("labels"))
        scores = await run_batched(name, "score", (items, labels))
        if entry.detector is None:
            return _json_response("scores", scores, outliers=None, threshold=None, score="recon",
                                  threshold_from="none: no saved detector; the scores are the reconstruction error")
        threshold = float(entry.detector.threshold_)
        return _json_response("scores", scores, outliers=(scores > threshold).tolist(), threshold=threshold,
                              score=getattr(entry.detector, "scores", "ensemble"), threshold_from="the saved detector's")

    @app.post("/v1/models/{name}/sample", openapi_extra=_operation(SAMPLE_BODY, names), responses={**ERRORS, **ANSWERS["sample"]})
    async def sample(request: Request):
        _, entry = model_named(request, "sample")
        body = await read_body(request, limit)
        if content_type(request) != "application/json":
            raise RequestError(415, "/sample takes application/json: {\"n\": 8, \"label\": 3}")
        payload = parse_json(body)
        n, label, seed = payload.get("n", 8), payload.get("label"), payload.get("seed")
        for key, value in (("n", n), ("label", label), ("seed", seed)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise RequestError(422, f"'{key}' must be an integer")
        if not 1 <= n <= MAX_SAMPLES:
            raise RequestError(422, f"'n' must lie in 1..{MAX_SAMPLES}; got {n}")
        labels = None
        if label is not None:
            classes = entry.model.sample_classes
            if not 0 <= label < classes:
                raise RequestError(422, f"'label' needs a conditional model and a class in 0..{classes - 1}; "
                                        f"{entry.name!r} takes {classes} classes" if classes else
                                        f"model {entry.name!r} ({entry.model.name}) is not conditional: it takes no label")
            labels = torch.full((n,), label, dtype=torch.long)
        seed = random.randrange(2**31) if seed is None else seed
        if not 0 <= seed < 2**63:
            raise RequestError(422, f"'seed' must lie in 0..2**63-1; got {seed}")
        return _json_response("outputs", await run_alone(_draw, entry.model, n, labels, seed), seed=seed)

    @app.post("/v1/models/{name}/compress", openapi_extra=_operation(ITEM_BODY, names), responses={**ERRORS, **ANSWERS["compress"]})
    async def compress(request: Request):
        _, entry = model_named(request, "compress")
        items, _ = items_of_request(entry, await read_body(request, limit), content_type(request), None)
        data = await run_alone(entry.codec.compress, items)
        return Response(data, media_type="application/octet-stream")

    @app.post("/v1/models/{name}/decompress", openapi_extra=_operation(FILE_BODY, names), responses={**ERRORS, **ANSWERS["decompress"]})
    async def decompress(request: Request):
        from autoencoders.uses.compress import Header

        _, entry = model_named(request, "decompress")
        body = await read_body(request, limit)
        if content_type(request) != "application/octet-stream":
            raise RequestError(415, "/decompress takes application/octet-stream: the bytes `autoencoders compress` writes")
        header, _ = Header.parse(body, "the body")
        if header.step != entry.codec.step:
            raise RequestError(422, f"the body was compressed at step {header.step:g}; this server compresses {entry.name!r} "
                                    f"at step {entry.codec.step:g}; decompress it with `autoencoders decompress`")
        return _json_response("outputs", await run_alone(entry.codec.decompress, body, "the body"))

    return app


def _draw(model, n: int, labels: Tensor | None, seed: int) -> Tensor:
    from autoencoders.uses.sampling import draw_samples

    with torch.random.fork_rng(devices=[]):  # the seed stays this request's: the global generator is left as it was
        return draw_samples(model, n, "prior", labels, seed=seed)


# -- running it -------------------------------------------------------------------------------------------------
def load_all(runs: list[str | Path], data_dir: str | None = None) -> list[ServedModel]:
    """Every folder loaded, each under a name of its own."""
    if not runs:
        raise InputError("name at least one run folder, saved model or saved detector to serve")
    served = [load_served(run, data_dir) for run in runs]
    names = [entry.name for entry in served]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputError(f"two folders are named {twice[0]!r}: each model is served under its folder's name, so rename one")
    return served


def app_from_environment():
    """The application of one worker process (``--workers`` > 1): the folders and settings from $AUTOENCODERS_SERVE."""
    settings = json.loads(os.environ[CONFIG_ENV])
    config = ServeConfig(**settings["config"])
    return create_app(load_all(settings["runs"], config.data_dir), config)


def serve(runs: list[str | Path], config: ServeConfig | None = None, on_loaded=None) -> None:
    """Load ``runs`` and serve them until interrupted. ``on_loaded(served)`` is told what was loaded first."""
    import uvicorn

    config = config or ServeConfig()
    served = load_all(runs, config.data_dir)  # also with several workers: bad folders fail here, once, in one line
    if on_loaded is not None:
        on_loaded(served)
    if config.workers == 1:
        uvicorn.run(create_app(served, config), host=config.host, port=config.port, access_log=False, log_level="info")
        return
    os.environ[CONFIG_ENV] = json.dumps({"runs": [str(run) for run in runs], "config": asdict(config)})
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=config.workers, host=config.host,
                port=config.port, access_log=False, log_level="info")

