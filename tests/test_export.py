"""Export (issue 41): every family's deterministic path to ONNX and TorchScript, checked against PyTorch with a
dynamic batch; sampling refused with its reason; the command end to end, a parity failure refused with no file."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime
import pytest
import torch
from typer.testing import CliRunner

from autoencoders.cli import app
from autoencoders.models import MODELS
from autoencoders.uses import export as export_module
from autoencoders.uses.export import FORMATS, PARTS, ExportError, ExportedPart, export_model

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def tiny(name: str, **overrides):
    cls = MODELS[name]
    settings = dict(input_shape=(1, 8, 8), arch="mlp", latent_dim=2, hidden=(8,))
    if name == "vqvae":
        settings.update(arch="conv", hidden=(4,), codebook_size=4, prior_channels=4, prior_layers=1, residual_blocks=0)
    if name == "vrnn":
        settings.update(input_shape=(6, 2))
    if cls.conditional or name in ("aae-semi",) or overrides.get("supervised"):
        settings["num_classes"] = 3
    if name == "aae-cluster":
        settings["clusters"] = 3
    if name == "beta-tcvae":
        settings["dataset_size"] = 64
    settings.update(overrides)
    torch.manual_seed(0)
    return cls(cls.config_class(**settings)).eval()


FAMILIES = [(name, {}) for name in MODELS] + [("aae", {"supervised": True})]


def _inputs(model, count: int, part: str):
    generator = torch.Generator().manual_seed(1)
    items = torch.rand((count, *model.config.input_shape), generator=generator)
    labels = torch.randint(0, 3, (count,), generator=generator) if model.conditional else None
    with torch.no_grad():
        first = model.encode(items, labels) if part == "decoder" else items
    return first, labels


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("name,overrides", FAMILIES, ids=[n + ("-supervised" if o else "") for n, o in FAMILIES])
def test_every_family_exports_every_part_with_a_dynamic_batch(name, overrides, format, tmp_path, one_thread):
    model = tiny(name, **overrides)
    for part in PARTS:
        path = tmp_path / f"{part}.{format}"
        result = export_model(model, path, format=format, part=part)  # traced on 2 items, checked on 64
        assert path.exists() and path.stat().st_size == result.size
        assert result.max_difference <= 1e-4 and result.items == 64, (part, result)
        if model.conditional and part != "encoder":
            assert "labels" in result.inputs
        # a batch of 5, read back from the file the way a user would
        first, labels = _inputs(model, 5, part)
        with torch.no_grad():
            expected = ExportedPart(model, part)(first, labels).numpy()
        if format == "onnx":
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            feed = {"inputs": first, "codes": first, "labels": labels}
            actual = session.run(None, {entry.name: feed[entry.name].numpy() for entry in session.get_inputs()})[0]
        else:
            loaded = torch.jit.load(io.BytesIO(path.read_bytes()))  # the file this test just wrote
            with torch.no_grad():
                actual = loaded(first, labels).numpy() if labels is not None else loaded(first).numpy()
        assert actual.shape == expected.shape and actual.shape[0] == 5
        assert np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max() <= 1e-4, (name, part)
    if name == "vqvae":
        assert result.inputs == ["inputs"]


def test_vae_encodes_its_posterior_mean_and_scores_as_detect(tmp_path, one_thread):
    model = tiny("vae")
    x = torch.rand(5, 1, 8, 8)
    path = tmp_path / "score.onnx"
    export_model(model, path, "onnx", "score")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scores = session.run(None, {"inputs": x.numpy()})[0]
    with torch.no_grad():
        mean = model.posterior(x)[0]
        reference = (model.decode(mean) - x).pow(2).flatten(1).mean(1)
    assert np.allclose(scores, reference.numpy(), atol=1e-5)
    path = tmp_path / "encoder.onnx"
    export_model(model, path, "onnx", "encoder")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert np.allclose(session.run(None, {"inputs": x.numpy()})[0], mean.numpy(), atol=1e-5)


def test_vqvae_encoder_gives_codebook_indices(tmp_path, one_thread):
    model = tiny("vqvae")
    path = tmp_path / "codes.onnx"
    export_model(model, path, "onnx", "encoder")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 1, 8, 8)
    codes = session.run(None, {"inputs": x.numpy()})[0]
    assert codes.dtype == np.int64 and np.array_equal(codes, model.encode(x).numpy())


@pytest.mark.parametrize("name", ["vqvae", "vrnn", "vae"])
def test_sampling_is_refused_with_its_reason(name, tmp_path):
    path = tmp_path / "sample.onnx"
    with pytest.raises(ExportError) as caught:
        export_model(tiny(name), path, "onnx", "sample")
    message = str(caught.value)
    assert "\n" not in message and "export --part decoder" in message
    assert {"vqvae": "PixelCNN", "vrnn": "recurrence", "vae": "random"}[name] in message
    assert not path.exists()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_crnn_exports_to_onnx_with_a_dynamic_batch(cell, tmp_path, one_thread):
    # a conv network per frame, then a recurrent layer across frames: its initial state takes the batch of the frames'
    # features, which must stay symbolic in the graph (it was fixed at the traced 2 before, and ONNX Runtime refused 64)
    model = tiny("ae", arch="crnn", input_shape=(3, 1, 8, 8), hidden=(4, 8), cell=cell)
    for part in PARTS:
        path = tmp_path / f"crnn-{part}.onnx"
        assert export_model(model, path, "onnx", part).max_difference <= 1e-4  # traced on 2, checked on 64
        first, labels = _inputs(model, 5, part)
        with torch.no_grad():
            expected = ExportedPart(model, part)(first, labels).numpy()
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        actual = session.run(None, {session.get_inputs()[0].name: first.numpy()})[0]
        assert actual.shape[0] == 5 and np.abs(actual - expected).max() <= 1e-4, part


class FixedBatchEncoder(torch.nn.Module):
    """Codes plus zeros of the traced batch size: PyTorch takes any batch, the traced graph only the traced one."""

    def forward(self, x):
        return x.flatten(1)[:, :2] + torch.zeros(int(x.shape[0]), 2)


def test_an_onnx_graph_with_a_fixed_batch_is_refused(tmp_path):
    config = MODELS["ae"].config_class(input_shape=(1, 8, 8), arch="mlp", latent_dim=2, hidden=(8,))
    model = MODELS["ae"].with_networks(config, encoder=FixedBatchEncoder()).eval()
    path = tmp_path / "fixed.onnx"
    with pytest.raises(ExportError, match="does not run on a batch of 64.*try --format torchscript"):
        export_model(model, path, "onnx", "encoder")
    assert not path.exists()


def test_unknown_format_and_part_are_refused(tmp_path):
    with pytest.raises(ValueError, match="--format must be one of onnx, torchscript"):
        export_model(tiny("ae"), tmp_path / "a.x", "tflite")
    with pytest.raises(ValueError, match="--part must be one of"):
        export_model(tiny("ae"), tmp_path / "a.onnx", "onnx", "latent")


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "ae"
    result = runner.invoke(app, ["train", "ae", "--data", "digits", "--hidden", "8", "--latent-dim", "2", "--max-steps", "2",
                                 "--out", str(out), "--no-progress", "--no-evaluate"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("format", FORMATS)
def test_command_exports_a_run_checked_on_its_test_items(ae_run, format, tmp_path):
    path = tmp_path / f"ae.{format}"
    result = runner.invoke(app, ["export", str(ae_run), "--format", format, "-o", str(path), "--part", "score"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert path.exists() and "test items" in result.output and "max difference from PyTorch" in result.output


def test_command_refuses_a_parity_failure_and_writes_nothing(ae_run, tmp_path, monkeypatch):
    real = export_module._run_exported

    def off_by_a_little(*args, **kwargs):
        output, names, outputs = real(*args, **kwargs)
        return output + 1e-3, names, outputs

    monkeypatch.setattr(export_module, "_run_exported", off_by_a_little)
    path = tmp_path / "ae.onnx"
    result = runner.invoke(app, ["export", str(ae_run), "--format", "onnx", "-o", str(path)], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "differs from PyTorch by up to 0.001" in result.output and "not written" in result.output
    assert not path.exists() and not list(tmp_path.iterdir())


def test_command_refuses_sampling_and_bad_options(ae_run, tmp_path):
    path = tmp_path / "x.onnx"
    for options, message in [
        (["--format", "onnx", "--part", "sample"], "sampling cannot be exported"),
        (["--format", "coreml"], "--format must be one of"),
    ]:
        result = runner.invoke(app, ["export", str(ae_run), "-o", str(path), *options], catch_exceptions=False)
        assert result.exit_code == 2 and message in result.output, result.output
    assert not path.exists()


def test_saved_model_without_data_is_checked_on_random_items(tmp_path):
    model = tiny("cvae")
    model.save_pretrained(tmp_path / "saved")
    result = export_model(tmp_path / "saved", tmp_path / "cvae.onnx", "onnx", "reconstruct")
    assert result.checked_on == "random items" and result.inputs == ["inputs", "labels"]


def test_command_exports_a_conditional_run_with_its_labels(tmp_path):
    out = tmp_path / "cvae"
    result = runner.invoke(app, ["train", "cvae", "--data", "digits", "--hidden", "8", "--latent-dim", "2", "--max-steps", "2",
                                 "--out", str(out), "--no-progress", "--no-evaluate"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    path = tmp_path / "decoder.onnx"
    result = runner.invoke(app, ["export", str(out), "--format", "onnx", "-o", str(path), "--part", "decoder"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "(codes, labels -> outputs" in result.output and "64 test items" in result.output
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [entry.name for entry in session.get_inputs()] == ["codes", "labels"]
