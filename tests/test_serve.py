"""Serving (issue 41): the real service on a free loopback port (uvicorn in a thread), called over HTTP with httpx.

Each endpoint against the library in-process; .npy, PNG and table bodies against JSON lists; each class of bad
request answered with a 4xx and a JSON error while the server keeps serving; 32 concurrent clients each getting
their own scores, in shared batches; compress/decompress interchangeable with `autoencoders compress`; a
schemathesis run against the OpenAPI schema finding no 5xx."""

from __future__ import annotations

import asyncio
import io
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
import uvicorn
from PIL import Image
from typer.testing import CliRunner

import autoencoders
from autoencoders.cli import app as cli_app
from autoencoders.io import read_config
from autoencoders.uses.compress import Codec, compress_files, decompress_file
from autoencoders.uses.serve import ServeConfig, create_app, load_all

MAX_BODY_MB = 0.25


def _train(name: str, data: str, out, **options):
    return autoencoders.train(name, data, out, progress=False, max_steps=4, latent_dim=2, hidden=(8,), seed=0, **options)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("serve")
    rows = np.random.default_rng(0).normal(size=(120, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]
    pd.DataFrame(rows, columns=["a", "b", "c"]).to_csv(root / "rows.csv", index=False)
    folders = {
        "ae": _train("ae", "digits", root / "ae"),
        "cvae": _train("cvae", "digits", root / "cvae"),
        "vqvae": _train("vqvae", "digits", root / "vqvae", arch="conv", settings={
            "hidden": (4,), "codebook_size": 4, "prior_channels": 4, "prior_layers": 1, "residual_blocks": 0, "prior_start": 2}),
        "rows": _train("ae", str(root / "rows.csv"), root / "rows"),
    }
    normal = autoencoders.load_dataset("digits").train[:100]
    autoencoders.AnomalyDetector(model=str(folders["ae"]), scores="recon", contamination=0.1).fit(normal).save_pretrained(root / "detector")
    folders["detector"] = root / "detector"
    # a detector in the table run's anomaly folder, fitted on the model itself: it takes rows in the model's space
    preprocessing = read_config(folders["rows"])["data"]["preprocessing"]
    scaled = (rows - np.array(preprocessing["mean"])) / np.array(preprocessing["std"])
    autoencoders.AnomalyDetector(model=autoencoders.load(folders["rows"]), scores="recon", contamination=0.1).fit(
        torch.tensor(scaled, dtype=torch.float32)).save_pretrained(folders["rows"] / "anomaly")
    return folders


@pytest.fixture(scope="module")
def server(folders):
    served = load_all(list(folders.values()))
    application = create_app(served, ServeConfig(max_batch=64, max_wait_ms=5, max_body_mb=MAX_BODY_MB))
    instance = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    port = instance.servers[0].sockets[0].getsockname()[1]  # port 0: the system chose a free one
    yield f"http://127.0.0.1:{port}", {entry.name: entry for entry in served}
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server[0], timeout=30) as client:
        yield client


def _items(count: int, seed: int = 0) -> torch.Tensor:
    return torch.rand((count, 1, 8, 8), generator=torch.Generator().manual_seed(seed))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# -- the endpoints ----------------------------------------------------------------------------------------------
def test_health_and_models_describe_each_model_from_its_declared_flags(client):
    assert client.get("/health").json() == {"status": "ok"}
    models = {entry["name"]: entry for entry in client.get("/v1/models").json()["models"]}
    assert set(models) == {"ae", "cvae", "vqvae", "rows", "detector"}
    ae = models["ae"]
    assert ae["family"] == "ae" and ae["input_shape"] == [1, 8, 8] and ae["latent_size"] == 2
    assert set(ae["capabilities"]) == {"encode", "decode", "reconstruct", "score", "compress", "decompress"}
    assert "sample" in ae["unavailable"] and ae["flags"]["generative"] is False and ae["detector"] is None
    cvae = models["cvae"]
    assert "sample" in cvae["capabilities"] and "compress" not in cvae["capabilities"]
    assert cvae["flags"]["conditional"] is True and cvae["classes"] == 10
    assert models["vqvae"]["code_dtype"] == "int64" and models["vqvae"]["flags"]["generative"] is True
    assert models["rows"]["columns"] == ["a", "b", "c"] and models["rows"]["input_shape"] == [3]
    assert models["detector"]["detector"]["score"] == "recon" and models["detector"]["detector"]["threshold"] > 0
    assert set(ae["stats"]) == {"encode", "decode", "reconstruct", "score"}


def test_encode_decode_reconstruct_match_the_model_in_process(client, server):
    model = server[1]["ae"].model
    items = _items(3)
    with torch.no_grad():
        codes, decoded, reconstructed = model.encode(items), model.decode(model.encode(items)), model.reconstruct(items)
    got = client.post("/v1/models/ae/encode", json={"inputs": items.tolist()}).json()["codes"]
    assert np.allclose(got, codes.numpy(), atol=1e-6)
    got = client.post("/v1/models/ae/decode", json={"codes": codes.tolist()}).json()["outputs"]
    assert np.allclose(got, decoded.numpy(), atol=1e-6)
    got = client.post("/v1/models/ae/reconstruct", json={"inputs": items.tolist()}).json()["outputs"]
    assert np.allclose(got, reconstructed.numpy(), atol=1e-6)
    one = client.post("/v1/models/ae/encode", json={"inputs": items[0].tolist()}).json()["codes"]  # one item, no N axis
    assert np.allclose(one, codes[:1].numpy(), atol=1e-6)


def test_score_gives_the_reconstruction_error_or_the_saved_detectors_scores_and_threshold(client, server):
    items = _items(4)
    plain = client.post("/v1/models/ae/score", json={"inputs": items.tolist()}).json()
    model = server[1]["ae"].model
    with torch.no_grad():
        error = (model.reconstruct(items) - items).pow(2).flatten(1).mean(1)
    assert np.allclose(plain["scores"], error.numpy(), atol=1e-6)
    assert plain["threshold"] is None and plain["outliers"] is None and "no saved detector" in plain["threshold_from"]

    detector = server[1]["detector"].detector
    judged = client.post("/v1/models/detector/score", json={"inputs": items.tolist()}).json()
    assert np.allclose(judged["scores"], detector.anomaly_score(items), atol=1e-6)
    assert judged["threshold"] == pytest.approx(detector.threshold_)
    assert judged["outliers"] == [score > judged["threshold"] for score in judged["scores"]]


def test_npy_and_png_bodies_score_as_the_same_items_in_json(client):
    pixels = (np.random.default_rng(1).random((2, 8, 8)) * 255).astype(np.uint8)
    as_json = client.post("/v1/models/ae/score", json={"inputs": (pixels[:, None] / 255.0).tolist()}).json()["scores"]
    for kind in ("application/octet-stream", "application/x-npy"):
        as_npy = client.post("/v1/models/ae/score", content=_npy(pixels), headers={"content-type": kind}).json()["scores"]
        assert np.allclose(as_npy, as_json, atol=1e-6)
    as_png = client.post("/v1/models/ae/score", content=_png(pixels[1]), headers={"content-type": "image/png"}).json()["scores"]
    assert np.allclose(as_png, as_json[1:], atol=1e-6)


def test_table_rows_as_objects_are_scaled_with_the_runs_saved_scaling(client, server):
    scaling = server[1]["rows"].scaling
    raw = [{"c": -40.0, "a": 0.5, "b": 7.0, "id": "x"}, {"a": -1.0, "b": 2.0, "c": 60.0}]  # any order, extra keys ignored
    scaled = scaling.scale(torch.tensor([[0.5, 7.0, -40.0], [-1.0, 2.0, 60.0]], dtype=torch.float64))
    by_name = client.post("/v1/models/rows/reconstruct", json={"inputs": raw}).json()["outputs"]
    by_list = client.post("/v1/models/rows/reconstruct", json={"inputs": scaled.tolist()}).json()["outputs"]
    assert np.allclose(by_name, by_list, atol=1e-5)
    missing = client.post("/v1/models/rows/score", json={"inputs": [{"a": 1.0, "b": 2.0}]})
    assert missing.status_code == 422 and "lacks the column(s) c" in missing.json()["error"]


def test_a_run_scores_with_the_detector_saved_in_its_anomaly_folder(client, server):
    entry = server[1]["rows"]
    assert entry.detector is not None and entry.detector_scaling is None  # it takes the model's space, unscaled
    raw = [{"a": 0.5, "b": 7.0, "c": -40.0}, {"a": 30.0, "b": 5.0, "c": -50.0}]  # the second: 30 deviations off in a
    scaled = entry.scaling.scale(torch.tensor([[0.5, 7.0, -40.0], [30.0, 5.0, -50.0]], dtype=torch.float64))
    got = client.post("/v1/models/rows/score", json={"inputs": raw}).json()
    assert np.allclose(got["scores"], entry.detector.anomaly_score(scaled), rtol=1e-5)
    assert got["threshold"] == pytest.approx(entry.detector.threshold_) and got["outliers"] == [False, True]


def test_conditional_models_take_labels_and_sample_a_class_reproducibly(client, server):
    items = _items(2)
    model = server[1]["cvae"].model
    got = client.post("/v1/models/cvae/encode", json={"inputs": items.tolist(), "labels": [3, 7]}).json()["codes"]
    with torch.no_grad():
        assert np.allclose(got, model.encode(items, torch.tensor([3, 7])).numpy(), atol=1e-6)
    by_query = client.post("/v1/models/cvae/encode?labels=3,7", content=_npy(items.numpy()),
                           headers={"content-type": "application/x-npy"}).json()["codes"]
    assert np.allclose(by_query, got, atol=1e-6)
    first = client.post("/v1/models/cvae/sample", json={"n": 3, "label": 4, "seed": 11}).json()
    again = client.post("/v1/models/cvae/sample", json={"n": 3, "label": 4, "seed": 11}).json()
    other = client.post("/v1/models/cvae/sample", json={"n": 3, "label": 4}).json()
    assert np.asarray(first["outputs"]).shape == (3, 1, 8, 8) and first == again and isinstance(other["seed"], int)


def test_compress_and_decompress_share_the_files_of_autoencoders_compress(client, server, folders, tmp_path):
    items = _items(5)
    data = client.post("/v1/models/ae/compress", json={"inputs": items.tolist()})
    assert data.status_code == 200 and data.headers["content-type"] == "application/octet-stream"
    (tmp_path / "served.aec").write_bytes(data.content)
    decompress_file(folders["ae"], tmp_path / "served.aec", tmp_path / "back.npy")  # the command's reader
    expected = Codec.from_run(folders["ae"]).decompress(data.content)
    assert np.allclose(np.load(tmp_path / "back.npy"), expected.numpy(), atol=1e-6)

    np.save(tmp_path / "items.npy", items.numpy())
    compress_files(folders["ae"], [tmp_path / "items.npy"], tmp_path / "cli.aec")  # the command's writer
    served = client.post("/v1/models/ae/decompress", content=(tmp_path / "cli.aec").read_bytes(),
                         headers={"content-type": "application/octet-stream"}).json()["outputs"]
    assert np.allclose(served, expected.numpy(), atol=1e-6)


# -- bad requests ---------------------------------------------------------------------------------------------------
NPY = "application/x-npy"
BAD_REQUESTS = [
    ("unknown model", "/v1/models/nobody/score", {"json": {"inputs": [[0.0]]}}, 404, "no model named 'nobody'"),
    ("op it cannot do", "/v1/models/ae/sample", {"json": {"n": 2}}, 400, "cannot sample"),
    ("op it cannot do", "/v1/models/cvae/compress", {"json": {"inputs": [[0.0]]}}, 400, "cannot compress"),
    ("malformed JSON", "/v1/models/ae/score", {"content": b'{"inputs": [', "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ("no inputs", "/v1/models/ae/score", {"json": {"items": []}}, 422, "no 'inputs'"),
    ("wrong shape", "/v1/models/ae/score", {"json": {"inputs": [[1.0, 2.0, 3.0]]}}, 422, "items of shape (1, 8, 8)"),
    ("wrong code shape", "/v1/models/ae/decode", {"json": {"codes": [[1.0, 2.0, 3.0]]}}, 422, "codes have shape (2,)"),
    ("ragged", "/v1/models/ae/score", {"json": {"inputs": [[[[0.0] * 8] * 8], [[[0.0] * 8] * 7]]}}, 422, "ragged"),
    ("not numbers", "/v1/models/ae/score", {"json": {"inputs": [[["a"] * 8] * 8]}}, 422, "numbers only"),
    ("NaN", "/v1/models/ae/score", {"content": b'{"inputs": [[[' + b",".join([b"NaN"] * 8) + b"]]]}", "headers": {"content-type": "application/json"}}, 422, "NaN"),
    ("infinity", "/v1/models/ae/encode", {"content": _npy(np.full((1, 8, 8), np.inf, np.float32)), "headers": {"content-type": NPY}}, 422, "infinite"),
    ("too large", "/v1/models/ae/score", {"content": b" " * int(MAX_BODY_MB * 2**20 + 1), "headers": {"content-type": "application/json"}}, 413, "larger than the limit"),
    ("wrong content type", "/v1/models/ae/score", {"content": b"1,2,3", "headers": {"content-type": "text/csv"}}, 415, "'text/csv' is not read"),
    ("not a .npy", "/v1/models/ae/score", {"content": b"\x93NUMPY\x01\x00garbage", "headers": {"content-type": NPY}}, 422, "cannot be read as a .npy"),
    ("short .npy", "/v1/models/ae/score", {"content": _npy(np.zeros((4, 1, 8, 8), np.float32))[:-8], "headers": {"content-type": NPY}}, 422, "bytes follow it"),
    ("pickled .npy", "/v1/models/ae/score", {"content": _npy(np.array([{"a": 1}], dtype=object)), "headers": {"content-type": NPY}}, 422, "object values"),
    ("not a PNG", "/v1/models/ae/score", {"content": b"GIF89a", "headers": {"content-type": "image/png"}}, 422, "not a PNG"),
    ("PNG of another size", "/v1/models/ae/score", {"content": _png(np.zeros((9, 8), np.uint8)), "headers": {"content-type": "image/png"}}, 422, "8x9 pixels"),
    ("PNG for a table", "/v1/models/rows/score", {"content": _png(np.zeros((8, 8), np.uint8)), "headers": {"content-type": "image/png"}}, 422, "not images"),
    ("number too large", "/v1/models/rows/score", {"content": b'{"inputs": [{"a": 1, "b": 2, "c": 1' + b"0" * 400 + b"}]}", "headers": {"content-type": "application/json"}}, 422, "too large"),
    ("labels missing", "/v1/models/cvae/encode", {"json": {"inputs": [[[[0.0] * 8] * 8]]}}, 422, "is conditional"),
    ("labels out of range", "/v1/models/cvae/encode", {"json": {"inputs": [[[[0.0] * 8] * 8]], "labels": [10]}}, 422, "0..9"),
    ("labels not taken", "/v1/models/ae/encode", {"json": {"inputs": [[[[0.0] * 8] * 8]], "labels": [1]}}, 422, "takes no labels"),
    ("codes out of the codebook", "/v1/models/vqvae/decode", {"json": {"codes": None}}, 422, "codebook indices must lie in 0..3"),
    ("too many samples", "/v1/models/cvae/sample", {"json": {"n": 100000, "label": 1}}, 422, "'n' must lie in"),
    ("damaged compressed file", "/v1/models/ae/decompress", {"content": b"\xae\xc0\x03\x00rest", "headers": {"content-type": "application/octet-stream"}}, 422, "truncated"),
    ("unknown path", "/v1/nothing", {"json": {}}, 404, "Not Found"),
]


@pytest.mark.parametrize("problem,path,request_options,status,message", BAD_REQUESTS, ids=[entry[0] for entry in BAD_REQUESTS])
def test_bad_requests_get_a_4xx_naming_the_problem_and_the_server_keeps_serving(client, server, problem, path, request_options, status, message):
    if problem == "codes out of the codebook":
        shape = server[1]["vqvae"].code_shape
        request_options = {"json": {"codes": np.full((1, *shape), 99).tolist()}}
    response = client.post(path, **request_options)
    assert response.status_code == status, response.text
    assert message is None or message in response.json()["error"], response.json()
    assert client.get("/health").status_code == 200


# -- concurrency ------------------------------------------------------------------------------------------------------
def test_32_concurrent_clients_each_get_their_own_scores(server):
    url, served = server
    items = _items(32, seed=5)
    model = served["ae"].model
    with torch.no_grad():
        expected = (model.reconstruct(items) - items).pow(2).flatten(1).mean(1).numpy()
    before = next(entry for entry in httpx.get(f"{url}/v1/models").json()["models"] if entry["name"] == "ae")["stats"]["score"]

    async def clients():
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=32)) as client:
            await asyncio.gather(*(client.get("/health") for _ in range(32)))  # connections open: the scores go out at once
            requests = [client.post("/v1/models/ae/score", content=_npy(items[index].numpy()),
                                    headers={"content-type": NPY}) for index in range(32)]
            return await asyncio.gather(*requests)

    responses = asyncio.run(clients())
    assert [response.status_code for response in responses] == [200] * 32
    got = np.array([response.json()["scores"][0] for response in responses])
    assert np.allclose(got, expected, atol=1e-6)  # each client its own item's score, not a neighbour's
    after = next(entry for entry in httpx.get(f"{url}/v1/models").json()["models"] if entry["name"] == "ae")["stats"]["score"]
    assert after["requests"] - before["requests"] == 32
    # whether they shared batches depends on how fast the busy cores let them arrive: the batcher's own test shows it


def test_requests_queued_while_a_batch_runs_form_the_next_batch_and_each_gets_its_rows():
    """The micro-batcher alone, made deterministic: the first batch blocks until 31 more requests are queued."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from autoencoders.uses.batching import MicroBatcher

    release, sizes = threading.Event(), []

    def run_batch(inputs):
        sizes.append(len(inputs[0]))
        release.wait(timeout=30)
        return inputs[0] * 10

    async def clients():
        with ThreadPoolExecutor(max_workers=1) as executor:
            batcher = MicroBatcher(run_batch, max_batch=64, max_wait=0.0, executor=executor)
            first = asyncio.ensure_future(batcher.submit((torch.tensor([[0.0]]),)))
            while not sizes:  # the first request's batch is running
                await asyncio.sleep(0.001)
            rest = [asyncio.ensure_future(batcher.submit((torch.tensor([[float(index)]]),))) for index in range(1, 32)]
            await asyncio.sleep(0.05)  # all 31 queued behind the running batch
            release.set()
            results = await asyncio.gather(first, *rest)
            await batcher.close()
            return results

    results = asyncio.run(clients())
    assert [float(result[0]) for result in results] == [10.0 * index for index in range(32)]  # each its own row
    assert sizes == [1, 31]  # the 31 that waited ran as one batch


# -- the schema, fuzzed ------------------------------------------------------------------------------------------------
def test_schemathesis_finds_no_server_error_and_answers_as_documented(server):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
    from hypothesis import strategies as st

    url = server[0]
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    paths = schema.raw_schema["paths"]
    assert {"/health", "/v1/models", "/v1/models/{name}/score", "/v1/models/{name}/decompress"} <= set(paths)
    assert set(paths["/v1/models/{name}/score"]["post"]["requestBody"]["content"]) >= {"application/json", "image/png"}
    cases = st.one_of(schema.as_strategy(schemathesis.GenerationMode.POSITIVE), schema.as_strategy(schemathesis.GenerationMode.NEGATIVE))
    seen = []

    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def call(case):
        response = case.call(base_url=url, timeout=30)
        seen.append(response.status_code)
        assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:300])
        if response.status_code >= 400:
            assert "error" in response.json()
        # the answer's body and content type are those the schema documents for its status
        case.validate_response(response, checks=[response_schema_conformance, content_type_conformance])

    call()
    assert len(seen) >= 100 and any(status < 300 for status in seen) and any(status >= 400 for status in seen)
    assert httpx.get(f"{url}/health").status_code == 200


# -- the command ---------------------------------------------------------------------------------------------------------
def test_serve_command_refuses_what_it_cannot_serve_in_one_line(folders, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli_app, ["serve", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "is not a folder" in result.output
    (tmp_path / "ae").mkdir()
    (tmp_path / "ae" / "config.json").write_text((folders["ae"] / "config.json").read_text())
    (tmp_path / "ae" / "model.safetensors").write_bytes((folders["ae"] / "model.safetensors").read_bytes())
    result = runner.invoke(cli_app, ["serve", str(folders["ae"]), str(tmp_path / "ae")])
    assert result.exit_code == 2 and "two folders are named 'ae'" in result.output
