"""Export a trained model's deterministic path to ONNX or TorchScript, checked against PyTorch before it is written.

    from autoencoders.uses.export import export_model
    result = export_model("runs/ae", "ae.onnx", format="onnx", part="score")
    print(result.max_difference)

Parts (``part``):

- ``encoder``: items -> codes (``encode``: the posterior mean for VAEs, codebook indices (int64) for a VQ-VAE);
- ``decoder``: codes -> items in data space (``decode``);
- ``reconstruct`` (the default): items -> ``decode(encode(x))``, as ``model.reconstruct`` (a VAE decodes its mean);
- ``score``: items -> the per-item reconstruction error, the mean over the item of the squared difference between
  the item and its reconstruction: what ``autoencoders detect``'s ``recon`` score computes (without pooling).

Items are in the model's data space, as the run's data loader gives them (a table's columns scaled with the
run's saved scaling). Inputs are named ``inputs`` (items) or ``codes``, and ``labels`` (int64 class indices, shape (N,)) for a
conditional model (cvae, aae --supervised) where the part uses them; ONNX leaves out an input the part does not
use. Outputs are named ``codes``, ``outputs`` or ``scores``. The batch dimension is dynamic in ONNX (the exporter
traces one batch of 2 and the check runs another size); a sequence model keeps its length.

Before anything is written the exported program is run (ONNX Runtime for ONNX; ``torch.jit.load`` of the bytes
just made, never a file on disk, for TorchScript) on a batch of the run's test items (random items in the model's
value range for a saved model without data), and the file is refused when any output differs from PyTorch's by
more than ``tolerance`` (1e-4). The file is then written atomically.

Sampling does not export: it draws random numbers (a VQ-VAE's PixelCNN prior draws its code grid one position at a
time, each draw conditioned on the ones before; a VRNN feeds each drawn step back into its recurrence), so the
exported program could not be checked against PyTorch; export the decoder and feed it prior codes instead.
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from autoencoders.errors import InputError
from autoencoders.files import atomic_write_bytes

FORMATS = ("onnx", "torchscript")
PARTS = ("encoder", "decoder", "reconstruct", "score")
TOLERANCE = 1e-4
CHECK_ITEMS = 64  # test items the exported program is checked on
TRACE_ITEMS = 2  # the batch the exporter traces; the check runs CHECK_ITEMS, so a fixed batch would fail it
OPSET = 17
OUTPUT_NAMES = {"encoder": "codes", "decoder": "outputs", "reconstruct": "outputs", "score": "scores"}

logger = logging.getLogger("autoencoders")


class ExportError(InputError):
    """A model or part that cannot be exported, or an exported program that does not match PyTorch."""


@dataclass
class ExportResult:
    path: Path
    format: str
    part: str
    max_difference: float  # the largest absolute difference from PyTorch's outputs on the checked items
    items: int  # how many items the check ran on
    checked_on: str  # "test items" or "random items"
    inputs: list[str]
    outputs: list[str]
    size: int  # bytes written


class ExportedPart(nn.Module):
    """One part of a model as a module of tensors only: what the exporters trace."""

    def __init__(self, model, part: str):
        super().__init__()
        self.model, self.part = model, part

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        model = self.model
        if self.part == "encoder":
            return model.encode(x, labels)
        if self.part == "decoder":
            if model.name == "vrnn":  # its decode sizes the batch with len(), which a trace would fix at 2
                return self._vrnn_decode(x)
            return model.decode(x, labels)
        reconstruction = model.reconstruct(x, labels)
        if self.part == "reconstruct":
            return reconstruction
        return (reconstruction - x).pow(2).flatten(1).mean(1)  # as AnomalyDetector's "recon" score (pool 1)


    def _vrnn_decode(self, z: Tensor) -> Tensor:
        """VRNN.decode with the batch read from the shape (traced, so it stays dynamic); the model's length."""
        model = self.model
        latents = z.reshape(z.shape[0], model.length, model.config.latent_dim)
        decoded = model._unroll(latents, model.length, z.shape[0], draw=False)[0]
        if model.config.recon_loss == "mse":
            decoded = model._gaussian(decoded)[0]
        return model.to_data_space(decoded.reshape(z.shape[0], model.length, *model.step_shape))


def sampling_refusal(model) -> str:
    """Why sampling from ``model`` cannot be exported (one line)."""
    name = model.name
    if name == "vqvae":
        return (
            f"sampling a {name} cannot be exported: its PixelCNN prior draws the code grid one position at a time, each "
            "draw conditioned on the ones before, from random numbers the exported program could not be checked "
            "against; export --part decoder and feed it codes sampled in Python (model.sample_codes)"
        )
    if name == "vrnn":
        return (
            f"sampling a {name} cannot be exported: it draws each step at random and feeds it back into its recurrence, "
            "so the exported program could not be checked against PyTorch; export --part decoder and feed it latents"
        )
    return (
        f"sampling cannot be exported: it draws random numbers the exported program could not be checked against; "
        f"export --part decoder and feed it codes drawn from the {name}'s prior"
    )


def _check_request(model, format: str, part: str) -> None:
    if format not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}; got {format!r}")
    if part == "sample":
        raise ExportError(sampling_refusal(model))
    if part not in PARTS:
        raise InputError(f"--part must be one of {', '.join(PARTS)}; got {part!r}")


def _load(run_or_model, data_dir) -> tuple[Any, Path | None]:
    from autoencoders.models.base import Autoencoder

    if isinstance(run_or_model, Autoencoder):
        return run_or_model, None
    from autoencoders.io import load

    return load(run_or_model), Path(run_or_model)


def _test_items(model, run: Path | None, data_dir, count: int, seed: int) -> tuple[Tensor, Tensor | None, str]:
    """A batch of the run's test items (with labels), or random items in the model's value range."""
    if run is not None:
        from autoencoders.io import read_config

        if read_config(run).get("data"):
            from autoencoders.uses.items import first_test_items

            try:
                items, labels = first_test_items(run, count, data_dir)
            except InputError as error:
                logger.info("the run's test data could not be read (%s); checking on random items", str(error).split("\n")[0])
            else:
                if len(items):
                    return items.float(), labels, "test items"
    generator = torch.Generator().manual_seed(seed)
    low, high = model.config.value_range
    items = low + (high - low) * torch.rand((count, *model.config.input_shape), generator=generator)
    labels = None
    classes = model.config.num_classes
    if classes:
        labels = torch.randint(0, classes, (count,), generator=generator)
    return items, labels, "random items"


def _example(model, part: str, items: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """The part's input for ``items``: the items themselves, or their codes for the decoder."""
    labels = labels.long() if labels is not None and model.conditional else None
    if part == "decoder":
        with torch.no_grad():
            return model.encode(items, labels), labels
    return items, labels


def _export_bytes(module: nn.Module, format: str, part: str, example: tuple[Tensor, ...], input_names: list[str]) -> bytes:
    output_name = OUTPUT_NAMES[part]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values, the legacy exporter's deprecation
        if format == "torchscript":
            traced = torch.jit.trace(module, example, check_trace=False)
            torch.jit.save(traced, buffer)
        else:
            try:
                import onnx  # noqa: F401 - the exporter needs it
            except ImportError as error:
                raise ImportError("ONNX export needs the onnx package: pip install 'autoencoders[export]'") from error
            axes = {name: {0: "batch"} for name in [*input_names, output_name]}
            torch.onnx.export(
                module, example, buffer, dynamo=False, input_names=input_names, output_names=[output_name],
                dynamic_axes=axes, opset_version=OPSET,
            )
    return buffer.getvalue()


def _run_exported(data: bytes, format: str, inputs: dict[str, Tensor], output_name: str) -> tuple[np.ndarray, list[str], list[str]]:
    """Run the exported program just made (from its bytes) on ``inputs``: (output, input names, output names)."""
    if format == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in favour of torch.export
            loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")  # the bytes this call made, never a file
        with torch.no_grad():
            output = loaded(*inputs.values())
        return output.numpy(), list(inputs), [output_name]
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError("checking an ONNX export needs onnxruntime: pip install 'autoencoders[export]'") from error
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    names = [entry.name for entry in session.get_inputs()]
    feed = {name: inputs[name].numpy() for name in names}
    outputs = session.run(None, feed)
    return outputs[0], names, [entry.name for entry in session.get_outputs()]


def export_model(
    run_or_model, path: str | Path, format: str = "onnx", part: str = "reconstruct", data_dir=None,
    items: Tensor | None = None, labels: Tensor | None = None, tolerance: float = TOLERANCE, seed: int = 0,
) -> ExportResult:
    """Export ``part`` of a model (a run folder, a saved-model folder or a model) to ``path`` as ``format``.

    The exported program is first run on ``items`` (default: up to 64 of the run's test items, else random items)
    and compared with PyTorch; an ``ExportError`` refuses it, writing nothing, when they differ by more than
    ``tolerance``. Returns what was written and the largest difference."""
    model, run = _load(run_or_model, data_dir)
    _check_request(model, format, part)
    path = Path(path)
    if path.is_dir():
        raise InputError(f"-o names a file to write; {path} is a folder")
    if items is None:
        items, labels, source = _test_items(model, run, data_dir, CHECK_ITEMS, seed)
    else:
        items, source = items.float(), "given items"
    if len(items) < 1:
        raise InputError("the export is checked on at least one item; got none")
    shape = tuple(model.config.input_shape)
    if tuple(items.shape[1:]) != shape:
        raise InputError(f"the model takes items of shape {shape}; got a batch of shape {tuple(items.shape)}")
    if model.conditional and labels is None:
        raise InputError(f"the {model.name} is conditional: the check needs the items' labels")

    training = model.training
    exported = model if next(model.parameters()).device.type == "cpu" else copy.deepcopy(model).cpu()
    exported.eval()
    try:
        first, first_labels = _example(exported, part, items, labels)
        module = ExportedPart(exported, part).eval()
        trace_inputs = (first[:TRACE_ITEMS],) + (() if first_labels is None else (first_labels[:TRACE_ITEMS],))
        input_names = ["codes" if part == "decoder" else "inputs"] + ([] if first_labels is None else ["labels"])
        try:
            data = _export_bytes(module, format, part, trace_inputs, input_names)
        except (ImportError, InputError):
            raise
        except Exception as error:  # noqa: BLE001 - the exporters raise many kinds; say which part failed and why
            reason = " ".join(str(error).split())[:300] or type(error).__name__
            raise ExportError(f"the {part} of a {model.name} cannot be exported to {format}: {reason}") from error
        with torch.no_grad():
            expected = module(first, first_labels)
        feed = dict(zip(input_names, (first,) + (() if first_labels is None else (first_labels,))))
        try:
            actual, names, output_names = _run_exported(data, format, feed, OUTPUT_NAMES[part])
        except ImportError:
            raise
        except Exception as error:  # noqa: BLE001 - ONNX Runtime's and TorchScript's failures have many types
            reason = " ".join(str(error).split())[:300] or type(error).__name__
            raise ExportError(
                f"the exported {part} of a {model.name} (traced on a batch of {TRACE_ITEMS}) does not run on a batch of "
                f"{len(first)}: {reason}; the file was not written"
                + (" (try --format torchscript)" if format == "onnx" else "")
            ) from error
    finally:
        model.train(training)
    expected_array = expected.detach().cpu().numpy()
    if actual.shape != expected_array.shape:
        raise ExportError(
            f"the exported {part} gives outputs of shape {actual.shape} for a batch of {len(first)}, PyTorch "
            f"{expected_array.shape}; the file was not written"
        )
    difference = float(np.abs(actual.astype(np.float64) - expected_array.astype(np.float64)).max()) if actual.size else 0.0
    if not difference <= tolerance:
        raise ExportError(
            f"the exported {part} differs from PyTorch by up to {difference:.3g} on {len(first)} {source} "
            f"(more than {tolerance:g}); the file was not written"
        )
    atomic_write_bytes(path, data)
    return ExportResult(path, format, part, difference, len(first), source, names, output_names, len(data))
