"""Training throughput and peak memory: the library's Lightning loop vs a minimal hand-written loop.

The same VAE (MLP 784-512-16 / 16-512-784, Bernoulli decoder), the same MNIST training tensors, the same
batching (TensorBatches, batch 64), the same optimizer, one epoch each. Each variant runs in a fresh
process, alternating, several rounds; we report medians. The library epoch is timed from Lightning's
on_train_epoch_start to the start of the validation pass (its set-up and validation are reported apart,
as the end-to-end time of ``autoencoders.train``). Peak memory: the rise of the process's peak resident
set (VmHWM) over its resident set just before training.

    python benchmarks/throughput.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_dir, write_result, write_table  # noqa: E402

HIDDEN, LATENT, BATCH = (512,), 16, 64


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def run_minimal() -> dict:
    import torch

    from autoencoders.data import TensorBatches, load_dataset
    from autoencoders.models.vae import VAE, VAEConfig

    torch.manual_seed(0)
    dataset = load_dataset("mnist", data_dir=data_dir())
    model = VAE(VAEConfig(input_shape=(1, 28, 28), hidden=HIDDEN, latent_dim=LATENT, recon_loss="bce"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
    batches = TensorBatches(dataset.train, None, batch_size=BATCH, shuffle=True, seed=0)
    baseline = _rss_kib("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    steps = 0
    for x, _ in batches:
        loss = model.loss(x)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
    seconds = time.perf_counter() - started
    return {"epoch_seconds": seconds, "steps": steps, "peak_rise_mib": (_rss_kib("VmHWM") - baseline) / 1024}


def run_library() -> dict:
    import tempfile

    import lightning.pytorch as pl

    import autoencoders
    from autoencoders.training import callbacks as run_callbacks

    timings: dict = {}

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            timings["baseline"] = _rss_kib("VmRSS")
            _reset_peak()
            timings["start"] = time.perf_counter()

        def on_validation_start(self, trainer, module):  # the minimal loop does not validate
            self.stop(module)

        def on_train_epoch_end(self, trainer, module):
            self.stop(module)

        def stop(self, module):
            if "epoch_seconds" not in timings:
                timings["epoch_seconds"] = time.perf_counter() - timings["start"]
                timings["peak_rise_mib"] = (_rss_kib("VmHWM") - timings["baseline"]) / 1024
                timings["steps"] = module.step

    original = run_callbacks.build_callbacks
    run_callbacks.build_callbacks = lambda *args: [*original(*args), EpochTimer()]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        autoencoders.train(
            "vae", "mnist", Path(out) / "run", hidden=HIDDEN, latent_dim=LATENT, batch_size=BATCH, epochs=1,
            data_dir=data_dir(), progress=False, settings={"recon_loss": "bce"},
        )
    timings["end_to_end_seconds"] = time.perf_counter() - started
    timings.pop("start"), timings.pop("baseline")
    return timings


def table(result: dict, rounds: int) -> str:
    minimal, library = result["median"]["minimal"], result["median"]["library"]
    steps = minimal["steps"]
    spread = {v: ", ".join(f"{r['epoch_seconds']:.2f}" for r in runs) for v, runs in result["rounds"].items()}
    return f"""VAE MLP 784-512-16 / 16-512-784, MNIST training split ({steps} batches of {BATCH}), one epoch, median
of {rounds} alternating rounds, each in a fresh process, 2 CPU cores.

| loop | epoch seconds | steps/s | peak memory rise (MiB) |
| --- | ---: | ---: | ---: |
| minimal hand-written PyTorch loop | {minimal['epoch_seconds']:.2f} | {steps / minimal['epoch_seconds']:.0f} | {minimal['peak_rise_mib']:.1f} |
| autoencoders (Lightning) | {library['epoch_seconds']:.2f} | {library['steps'] / library['epoch_seconds']:.0f} | {library['peak_rise_mib']:.1f} |

Throughput ratio (library / minimal): **{result['throughput_ratio']:.3f}** (target ≥ 0.9). Peak memory ratio:
**{result['peak_memory_ratio']:.2f}** (target ≤ 1.5). End-to-end `autoencoders.train` including data loading,
validation, checkpoints and saving: {library['end_to_end_seconds']:.1f} s.

Epoch seconds per round: minimal {spread['minimal']}; library {spread['library']}. Single runs on this
shared 2-core machine vary by about ±20 %, so only medians of several rounds mean anything; earlier 3- and
5-round runs in the same session gave ratios from 0.74 to 0.89."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", choices=["minimal", "library"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # child process: one measurement, as JSON on the last line
        print(json.dumps(run_minimal() if args.variant == "minimal" else run_library()))
        return
    measured: dict[str, list[dict]] = {"minimal": [], "library": []}
    for round_index in range(args.rounds):
        for variant in ("minimal", "library") if round_index % 2 == 0 else ("library", "minimal"):
            output = subprocess.run(
                [sys.executable, __file__, "--variant", variant], check=True, capture_output=True, text=True
            ).stdout
            measured[variant].append(json.loads(output.strip().splitlines()[-1]))
            print(variant, measured[variant][-1], flush=True)
    median = {v: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for v, runs in measured.items()}
    ratio = median["minimal"]["epoch_seconds"] / median["library"]["epoch_seconds"]
    memory_ratio = median["library"]["peak_rise_mib"] / max(median["minimal"]["peak_rise_mib"], 1e-9)
    result = {"rounds": measured, "median": median, "throughput_ratio": ratio, "peak_memory_ratio": memory_ratio,
              "targets": {"throughput_ratio": ">= 0.9", "peak_memory_ratio": "<= 1.5"}}
    write_result("throughput", result)
    write_table("Training throughput (benchmarks/throughput.py)", table(result, args.rounds))
    print(json.dumps({"throughput_ratio": ratio, "peak_memory_ratio": memory_ratio}))


if __name__ == "__main__":
    main()
