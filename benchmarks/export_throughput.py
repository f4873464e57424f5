"""Scoring throughput of an exported model: ONNX Runtime against PyTorch eager (issue 41).

A conv AE on MNIST-shaped items (1x28x28, the library's default conv channels, latent 32), untrained: its
weights do not change the work, so throughput needs no training. Its `score` part (per-item mean squared
reconstruction error, as `autoencoders detect`'s recon score) is exported with `export_model` (checked against
PyTorch within 1e-4), then the same batch of 1024 random items is scored by ONNX Runtime (CPU provider) and by
PyTorch eager under inference_mode, both on one thread, alternating, several rounds; medians reported.

    python benchmarks/export_throughput.py [--rounds 7] [--items 1024] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result, write_table  # noqa: E402

SECTION = "Export: ONNX Runtime against PyTorch (benchmarks/export_throughput.py)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--items", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import onnxruntime
    import torch

    from autoencoders.models.ae import AE, AEConfig
    from autoencoders.uses.export import ExportedPart, export_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = AE(AEConfig(input_shape=(1, 28, 28), arch="conv", latent_dim=32)).eval()
    items = torch.rand(args.items, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ae-score.onnx"
        exported = export_model(model, path, "onnx", "score", items=items[:64])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        size = path.stat().st_size
    scorer = ExportedPart(model, "score").eval()
    feed = {"inputs": items.numpy()}

    def run_torch():
        with torch.inference_mode():
            return scorer(items).numpy()

    def run_onnx():
        return session.run(None, feed)[0]

    difference = float(np.abs(run_torch().astype(np.float64) - run_onnx().astype(np.float64)).max())
    run_torch(), run_onnx()  # warm-up
    times = {"pytorch": [], "onnxruntime": []}
    for _ in range(args.rounds):
        for name, function in (("pytorch", run_torch), ("onnxruntime", run_onnx)):
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    rates = {name: args.items / seconds for name, seconds in medians.items()}
    result = {
        "model": "conv AE, 1x28x28, default conv channels, latent 32, untrained (throughput does not depend on weights)",
        "part": "score", "items": args.items, "threads": args.threads, "rounds": args.rounds,
        "onnx_bytes": size, "export_check_max_difference": exported.max_difference,
        "max_difference_on_batch": difference,
        "seconds_median": medians, "items_per_second": rates,
        "onnxruntime_over_pytorch": rates["onnxruntime"] / rates["pytorch"],
        "onnxruntime": onnxruntime.__version__,
    }
    path = write_result("export_throughput", result)
    table = (
        f"Scoring (`--part score`) a batch of {args.items} MNIST-shaped items (random values) with a conv AE "
        f"(default conv channels, latent 32; untrained, which does not change the work), on {args.threads} thread(s) "
        f"of a {os.cpu_count()}-core CPU machine (shared with other jobs while measured), "
        f"median of {args.rounds} alternating rounds; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}. "
        f"Largest score difference between the two: {difference:.2g}.\n\n"
        "| runtime | seconds per batch | items / s | relative |\n|---|---|---|---|\n"
        + "".join(
            f"| {'PyTorch eager (inference_mode)' if name == 'pytorch' else 'ONNX Runtime (CPU provider)'} | "
            f"{medians[name]:.4f} | {rates[name]:,.0f} | {rates[name] / rates['pytorch']:.2f}x |\n"
            for name in ("pytorch", "onnxruntime")
        )
    )
    write_table(SECTION, table)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
