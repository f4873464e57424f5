"""Data larger than memory and training on several processes: peak memory and speed.

1. An AE on a 2 GB float32 .npy (500,000 x 1000), streamed (read batch by batch), against the same training on
   an in-memory 200 MB slice of it (its first 50,000 rows): peak resident memory and steps/s, in alternating
   fresh processes (``ROUNDS`` rounds; medians), so both sides see the same load on the shared cores.
2. A 5 GB Parquet table (6.25M rows x 100 float64 columns, row groups of 131,072 rows): ``train`` (cache, one
   statistics pass, streamed batches) and ``detect`` on every row, each in a fresh process: peak memory, time.
3. DDP on the 2 cores: samples/s of 2 processes (1 thread each, batch 128 each) against 1 process (1 thread,
   batch 128), on the in-memory slice.
4. ``compress`` of the 2 GB .npy with an AE trained on the slice (1000-256-16, its default quantization step),
   then ``decompress`` of the file back into a 2 GB .npy, each in a fresh process: peak memory, time, bytes. Both
   go chunk by chunk (format 4); reading the array whole, as a file of one chunk is read, would hold its 2 GB.
   The same for a folder of PNGs (MNIST's training digits, in 100 subfolders) decompressed into a folder.
5. ``--saved-detector`` (on its own): ``detect`` with a saved detector on a table of the same kind as part 2
   (``--table-rows``, default 2,000,000: 2 GB): the default ``AnomalyDetector()`` (bagged-ae, isolation score) is
   fitted on its first ``DETECTOR_FIT_ROWS`` rows and saved, in one process; then, in a fresh one, it scores
   every row (read in chunks from the table's cache, its raw columns scaled by the detector's saved statistics)
   and writes the scores as Parquet row groups: peak memory, time.

Each part runs in its own process; peak memory is its VmHWM (the whole process: Python, torch and all). Parts 1
and 2 run torch on one thread (``--threads``): on cores shared with other jobs, a second OpenMP thread makes
every parallel op wait for a descheduled partner (the in-memory batch gather, ``index_select`` of 256 rows,
took 16-33 ms with 2 threads at load 5 on 2 cores, 1 ms with one), which would decide the comparison.
Steps are bounded so that the whole benchmark takes about 10-15 minutes. The data is generated into a folder
under /tmp and removed at the end. Run it with ``nice``; /proc/loadavg is recorded before and after.

    nice -n 10 python benchmarks/scale.py [--steps 300] [--only compress]
    nice -n 10 python benchmarks/scale.py --saved-detector [--table-rows 2000000]

``--only compress`` runs part 4 alone (with the array it needs) and updates its numbers in the last results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_dir, write_result, write_table  # noqa: E402

ARRAY_ROWS, ARRAY_COLUMNS, SLICE_ROWS = 500_000, 1000, 50_000
TABLE_ROWS, TABLE_COLUMNS, ROW_GROUP = 6_250_000, 100, 131_072
DETECTOR_FIT_ROWS, DETECTOR_TABLE_ROWS = 10_000, 2_000_000
WARM_UP = 20  # steps before the clock starts (start-up, first allocations)
ROUNDS = 4  # streamed and in-memory runs, alternating: a step takes ~15 ms, so the load of the moment matters
RSS_LIMIT_ARRAY, RSS_LIMIT_TABLE, SPEED_RATIO = 1.2e9, 1.5e9, 0.8
RESULT = Path(__file__).resolve().parent / "results" / "scale.json"


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


# -- data --------------------------------------------------------------------------------------------------------
def make_array(path: Path, rows: int, seed: int = 0) -> None:
    """Low-rank items plus noise (an AE has something to learn), written chunk by chunk (never whole in memory)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(16, ARRAY_COLUMNS)).astype(np.float32) / 4
    header = {"descr": "<f4", "fortran_order": False, "shape": (rows, ARRAY_COLUMNS)}
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        for start in range(0, rows, 20_000):
            count = min(20_000, rows - start)
            chunk = rng.normal(size=(count, 16)).astype(np.float32) @ mixing
            chunk += 0.1 * rng.standard_normal(size=chunk.shape, dtype=np.float32)
            handle.write(chunk.tobytes())


def make_table(path: Path, rows: int = TABLE_ROWS) -> None:
    """Low-rank rows plus noise, 0.5 % of them moved far in a few columns, written row group by row group."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    mixing = rng.normal(size=(8, TABLE_COLUMNS))
    names = [f"f{index}" for index in range(TABLE_COLUMNS)]
    schema = pa.schema([(name, pa.float64()) for name in names])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            count = min(ROW_GROUP, rows - start)
            values = rng.normal(size=(count, 8)) @ mixing + 0.3 * rng.normal(size=(count, TABLE_COLUMNS))
            odd = rng.random(count) < 0.005
            values[odd, :5] += 6.0
            writer.write_table(pa.Table.from_arrays(list(values.T), schema=schema), row_group_size=ROW_GROUP)


# -- one part, in its own process --------------------------------------------------------------------------------
def _timed_training(**arguments) -> dict:
    """``autoencoders.train`` with the time of every training step recorded: steps/s after ``WARM_UP`` steps,
    from the median step (an epoch's end adds validation and checkpoint writes to one step; the in-memory
    slice has several epoch ends in a run, the streamed array none)."""
    import numpy as np

    import autoencoders
    from autoencoders.training.module import AutoencoderModule

    stamps: list[float] = []
    AutoencoderModule.on_train_batch_end = lambda self, *args: stamps.append(time.perf_counter())
    started = time.perf_counter()
    run = autoencoders.train(**arguments)
    total = time.perf_counter() - started
    durations = np.diff(stamps[WARM_UP:])
    return {
        "run": str(run), "steps": len(stamps), "seconds": round(total, 2),
        "steps_per_s": round(1.0 / float(np.median(durations)), 3),
        "mean_steps_per_s": round(1.0 / float(durations.mean()), 3),
        "peak_rss_bytes": _peak_rss(),
    }


def part(name: str, folder: Path, steps: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    common = dict(model="ae", hidden=(256,), latent_dim=16, batch_size=256, max_steps=steps, progress=False, seed=0)
    if name == "array-streamed":
        return _timed_training(data=str(folder / "array.npy"), out=folder / "runs" / f"streamed-{time.time_ns()}",
                               settings={"data.stream": True}, **common)
    if name == "array-in-memory":
        return _timed_training(data=str(folder / "slice.npy"), out=folder / "runs" / f"memory-{time.time_ns()}",
                               settings={"data.stream": False}, **common)
    if name == "table-train":
        return _timed_training(model="ae", data=str(folder / "table.parquet"), out=folder / "runs" / "table", hidden=(64,),
                               latent_dim=8, batch_size=256, max_steps=steps, progress=False, seed=0)
    if name == "table-detect":
        from autoencoders.uses.detect import detect

        started = time.perf_counter()
        flagged = detect(folder / "runs" / "table", folder / "table.parquet", contamination=0.005, output=folder / "scores.parquet")
        summary = flagged.attrs["summary"]
        return {"seconds": round(time.perf_counter() - started, 2), "items": summary["items"], "outliers": summary["outliers"],
                "peak_rss_bytes": _peak_rss()}
    if name == "table-fit-detector":
        import pyarrow.parquet as pq

        from autoencoders.uses.anomaly import AnomalyDetector

        started = time.perf_counter()
        first = next(pq.ParquetFile(folder / "table.parquet").iter_batches(batch_size=DETECTOR_FIT_ROWS)).to_pandas()
        AnomalyDetector(contamination=0.005).fit(first).save_pretrained(folder / "detector")
        return {"seconds": round(time.perf_counter() - started, 2), "rows": len(first), "peak_rss_bytes": _peak_rss()}
    if name == "table-detect-saved":
        from autoencoders.uses.detect import detect

        started, load = time.perf_counter(), _loadavg()
        flagged = detect(folder / "detector", folder / "table.parquet", output=folder / "scores-saved.parquet")
        summary = flagged.attrs["summary"]
        return {"seconds": round(time.perf_counter() - started, 2), "items": summary["items"], "outliers": summary["outliers"],
                "threshold_from": summary["threshold_from"], "output_bytes": (folder / "scores-saved.parquet").stat().st_size,
                "peak_rss_bytes": _peak_rss(), "loadavg_before": load, "loadavg_after": _loadavg()}
    if name.startswith(("compress-", "decompress-")):
        return compress_step(name, folder, steps)
    if name in ("ddp-1", "ddp-2"):
        processes = int(name[-1])
        torch.set_num_threads(1)  # each process one thread: 2 processes use both cores, 1 process one
        settings = {"data.stream": False, "training.accelerator": "cpu"}
        if processes == 2:
            settings.update({"training.devices": 2, "training.strategy": "ddp"})
        result = _timed_training(model="ae", data=str(folder / "slice.npy"), out=folder / "runs" / name, hidden=(256,),
                                 latent_dim=16, batch_size=128, max_steps=steps, progress=False, seed=0, settings=settings)
        return {**result, "samples_per_s": round(result["steps_per_s"] * 128 * processes, 1)}
    raise ValueError(name)


# part 4: per kind of input, the run that compresses it, the input, the compressed file and what it decodes into
COMPRESSED = {"array": ("compress", "array.npy", "array.aec", "decoded.npy"),
              "images": ("images", "digits", "digits.aec", "decoded")}


def compress_step(name: str, folder: Path, steps: int) -> dict:
    """``compress-train-KIND``: the run that compresses the input (an AE on the array's slice, or on
    MNIST, whose training digits are then written as a folder of PNGs), its tables fitted and kept in it;
    ``compress-KIND`` and ``decompress-KIND``: the command on the input, or on its file."""
    from autoencoders.uses.compress import Codec, compress_files, decompress_file

    action, kind = name.split("-")[-2:]
    run_name, source, file, decoded = COMPRESSED[kind]
    run, step_file = folder / "runs" / run_name, folder / f"{kind}-step.json"
    started = time.perf_counter()
    if action == "train":
        import autoencoders

        data = {"data": str(folder / "slice.npy"), "settings": {"data.stream": False}} if kind == "array" else {
            "data": "mnist", "data_dir": data_dir()}
        autoencoders.train(out=run, model="ae", hidden=(256,), latent_dim=16, batch_size=256, max_steps=steps,
                           progress=False, seed=0, **data)
        step = Codec.from_run(run, data_dir=data_dir()).step
        step_file.write_text(json.dumps(step))
        if kind == "images":
            _write_digits(folder / source)
        return {"step": step}
    if action == "compress":
        # at the step the run's tables were fitted for: without --step, an ae's tables are fitted again on its
        # training data (its default step is found from their codes)
        step = json.loads(step_file.read_text())
        items, size = compress_files(run, [folder / source], folder / file, step=step, data_dir=data_dir())
        return {"items": items, "bytes": size, "seconds": round(time.perf_counter() - started, 1), "peak_rss_bytes": _peak_rss()}
    import numpy as np

    written = decompress_file(run, folder / file, folder / decoded, data_dir=data_dir())
    seconds = round(time.perf_counter() - started, 1)  # removing the output is not timed (ext4 discards are slow)
    if kind == "array":
        result = {"shape": list(np.load(written[0], mmap_mode="r").shape), "output_bytes": written[0].stat().st_size}
        written[0].unlink()
    else:
        result = {"files": len(written), "output_bytes": sum(path.stat().st_size for path in written)}
        shutil.rmtree(folder / decoded)
    return {**result, "seconds": seconds, "peak_rss_bytes": _peak_rss()}


def _write_digits(folder: Path) -> None:
    """MNIST's training digits as PNGs, a hundred folders of them (00/00000.png, ...)."""
    from PIL import Image

    from autoencoders.data import load_dataset

    digits = (load_dataset("mnist", data_dir=data_dir()).train[:, 0] * 255).round().byte().numpy()
    for index, pixels in enumerate(digits):
        path = folder / f"{index % 100:02d}" / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)


def run_part(name: str, folder: Path, steps: int, threads: int) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--part", name, "--folder", str(folder), "--steps", str(steps), "--threads", str(threads)],
        capture_output=True, text=True, check=False,
    )
    if output.returncode != 0:
        raise RuntimeError(f"part {name} failed:\n{output.stdout[-2000:]}\n{output.stderr[-4000:]}")
    result = json.loads(output.stdout.strip().splitlines()[-1])
    print(name, result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--part")
    parser.add_argument("--folder")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the .npy and table parts")
    parser.add_argument("--saved-detector", action="store_true", help="only part 5: detect with a saved detector")
    parser.add_argument("--table-rows", type=int, default=DETECTOR_TABLE_ROWS, help="rows of part 4's table")
    parser.add_argument("--only", choices=["compress"], help="run this part alone, updating the last results")
    options = parser.parse_args()
    if options.part:  # a child: one part, its result as the last line
        result = part(options.part, Path(options.folder), options.steps, options.threads)
        if options.part == "ddp-2" and os.environ.get("LOCAL_RANK", "0") != "0":
            return  # the second DDP process: rank 0 reports
        print(json.dumps(result))
        return
    if options.saved_detector:
        saved_detector(options.table_rows, options.threads)
        return

    folder = Path(tempfile.mkdtemp(prefix="autoencoders-scale-", dir="/tmp"))
    if options.only == "compress":
        try:
            make_array(folder / "array.npy", ARRAY_ROWS)
            _slice(folder)
            compressed = compress_part(folder, options)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        result = {key: value for key, value in json.loads(RESULT.read_text()).items() if key != "machine"}
        write_result("scale", {**result, "compress": compressed})
        write_table("Data larger than memory and DDP (benchmarks/scale.py)", table_markdown({**result, "compress": compressed}))
        print(json.dumps(compressed, indent=2))
        return
    result: dict = {"loadavg_before": _loadavg(), "steps": options.steps, "threads": options.threads}
    started = time.perf_counter()
    try:
        import numpy as np

        make_array(folder / "array.npy", ARRAY_ROWS)
        _slice(folder)
        result["array_bytes"] = (folder / "array.npy").stat().st_size
        rounds = [
            (run_part("array-streamed", folder, options.steps, options.threads),
             run_part("array-in-memory", folder, options.steps, options.threads))
            for _ in range(ROUNDS)
        ]
        streamed_speed = float(np.median([streamed["steps_per_s"] for streamed, _ in rounds]))
        memory_speed = float(np.median([memory["steps_per_s"] for _, memory in rounds]))
        result["array"] = {
            "rounds": [{"streamed": streamed, "in_memory": memory} for streamed, memory in rounds],
            "streamed_steps_per_s": streamed_speed, "in_memory_steps_per_s": memory_speed,
            "speed_ratio": round(streamed_speed / memory_speed, 3),
            "round_ratios": [round(streamed["steps_per_s"] / memory["steps_per_s"], 3) for streamed, memory in rounds],
            "streamed_peak_rss_bytes": max(streamed["peak_rss_bytes"] for streamed, _ in rounds),
            "in_memory_peak_rss_bytes": max(memory["peak_rss_bytes"] for _, memory in rounds),
        }
        result["ddp"] = {
            "one_process": run_part("ddp-1", folder, options.steps, options.threads),
            "two_processes": run_part("ddp-2", folder, options.steps, options.threads),
        }
        result["ddp"]["samples_ratio"] = round(
            result["ddp"]["two_processes"]["samples_per_s"] / result["ddp"]["one_process"]["samples_per_s"], 3)
        result["compress"] = compress_part(folder, options)
        (folder / "array.npy").unlink()  # room for the table

        made = time.perf_counter()
        make_table(folder / "table.parquet")
        result["table"] = {"bytes": (folder / "table.parquet").stat().st_size, "rows": TABLE_ROWS, "columns": TABLE_COLUMNS,
                           "generation_seconds": round(time.perf_counter() - made, 1)}
        result["table"]["train"] = run_part("table-train", folder, options.steps, options.threads)
        result["table"]["detect"] = run_part("table-detect", folder, options.steps, options.threads)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result["loadavg_after"] = _loadavg()
    result["minutes"] = round((time.perf_counter() - started) / 60, 1)
    write_result("scale", result)
    write_table("Data larger than memory and DDP (benchmarks/scale.py)", table_markdown(result))
    print(json.dumps(result, indent=2))


def saved_detector(rows: int, threads: int) -> None:
    """Part 5: a table of ``rows`` rows, the default detector fitted and saved, then ``detect`` with it."""
    folder = Path(tempfile.mkdtemp(prefix="autoencoders-scale-", dir="/tmp"))
    result: dict = {"loadavg_before": _loadavg(), "threads": threads}
    started = time.perf_counter()
    try:
        make_table(folder / "table.parquet", rows)
        result["table"] = {"bytes": (folder / "table.parquet").stat().st_size, "rows": rows, "columns": TABLE_COLUMNS,
                           "generation_seconds": round(time.perf_counter() - started, 1)}
        result["fit"] = run_part("table-fit-detector", folder, 0, threads)
        result["detect"] = run_part("table-detect-saved", folder, 0, threads)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result["loadavg_after"] = _loadavg()
    result["minutes"] = round((time.perf_counter() - started) / 60, 1)
    write_result("scale_saved_detector", result)
    write_table("Detect with a saved detector on a large Parquet table (benchmarks/scale.py --saved-detector)",
                saved_detector_markdown(result))
    print(json.dumps(result, indent=2))


def saved_detector_markdown(result: dict) -> str:
    table, fit, detect = result["table"], result["fit"], result["detect"]
    gb = 1e9
    return f"""
A {table['bytes'] / gb:.2f} GB Parquet table ({table['rows']:,} rows x {table['columns']} float64 columns, generated as
part 2's, row groups of {ROW_GROUP:,} rows). The default `AnomalyDetector(contamination=0.005)` (bagged-ae, isolation
score) fitted on its first {fit['rows']:,} rows (DataFrame, named columns) and saved ({fit['seconds']:.0f} s); then, in a
fresh process, `detect DETECTOR --data table.parquet -o scores.parquet`: the table read once into its float32
cache, every row scored and explained in chunks of 16,384 rows (its raw columns scaled by the detector's saved
statistics), the scores written as Parquet row groups ({detect['output_bytes'] / 1e6:.0f} MB). Peak memory is the
process's VmHWM (Python, torch and all). Torch on {result['threads']} thread; 2 CPU cores shared with other jobs, load
average {detect['loadavg_before'].split()[0]} before the detect process, {detect['loadavg_after'].split()[0]} after.

| measurement | value | target | met? |
|---|---|---|---|
| `detect` with a saved detector on all {detect['items']:,} rows: peak memory | {detect['peak_rss_bytes'] / gb:.2f} GB | ≤ {RSS_LIMIT_TABLE / gb} GB | {'yes' if detect['peak_rss_bytes'] <= RSS_LIMIT_TABLE else '**no**'} |
| time (cache, scoring pass, explaining and writing pass) | {detect['seconds']:.0f} s | — | — |
| rows flagged ({detect['threshold_from']}) | {detect['outliers']:,} | — | — |

Rerun: `nice -n 10 python benchmarks/scale.py --saved-detector --table-rows {table['rows']}`.
"""


def _slice(folder: Path) -> None:
    import numpy as np

    np.save(folder / "slice.npy", np.load(folder / "array.npy", mmap_mode="r")[:SLICE_ROWS])


def compress_part(folder: Path, options) -> dict:
    """Part 4: for the array, then a folder of PNGs, train the compressing run, then compress the input and
    decompress its file, each in a fresh process."""
    before = _loadavg()
    result: dict = {}
    for kind in COMPRESSED:
        trained = run_part(f"compress-train-{kind}", folder, options.steps, options.threads)
        measured = {"step": trained["step"], **{action: run_part(f"{action}-{kind}", folder, options.steps, options.threads)
                                               for action in ("compress", "decompress")}}
        if kind == "array":
            result.update(measured)
        else:
            result[kind] = measured
    return {"loadavg_before": before, "loadavg_after": _loadavg(), **result}


def table_markdown(result: dict) -> str:
    array, table, ddp, packed = result["array"], result["table"], result["ddp"], result["compress"]
    compressed, decompressed = packed["compress"], packed["decompress"]
    images = packed["images"]
    gb = 1e9
    return f"""
An AE (1000-256-16, batch 256, {result['steps']} steps) on a {array_gb(result)} GB float32 `.npy` of 500,000 x 1000,
streamed (`data.stream=true`: rows read batch by batch from the file), against the same training on an in-memory
200 MB slice of it (50,000 rows); {len(array['rounds'])} alternating rounds of fresh processes, medians (ratios per
round: {', '.join(f'{ratio:.2f}' for ratio in array['round_ratios'])}). Torch on {result['threads']} thread per process. Then a
{table['bytes'] / gb:.2f} GB Parquet table ({table['rows']:,} rows x {table['columns']} float64 columns) trained on
({result['steps']} steps, AE 100-64-8) and every row scored by `detect`; then DDP on the 2 cores. Peak memory is
the process's VmHWM (Python, torch and all). 2 shared CPU cores; load average {result['loadavg_before'].split()[0]}
before, {result['loadavg_after'].split()[0]} after. Last, `compress` of the 2 GB `.npy` with an AE trained on the slice
(1000-256-16, step {packed['step']:g}) and `decompress` of its file into a 2 GB `.npy`, chunk by chunk, each in a
fresh process, then the same for MNIST's training digits as a folder of PNGs (an AE 784-256-16 trained on MNIST,
step {images['step']:g}); load average {packed['loadavg_before'].split()[0]} before, {packed['loadavg_after'].split()[0]}
after. A file of one chunk would hold every item: 2 GB of float32 for the array.

| measurement | value | target | met? |
|---|---|---|---|
| 2 GB `.npy`, streamed: peak memory | {array['streamed_peak_rss_bytes'] / gb:.2f} GB | ≤ {RSS_LIMIT_ARRAY / gb} GB | {'yes' if array['streamed_peak_rss_bytes'] <= RSS_LIMIT_ARRAY else '**no**'} |
| 2 GB `.npy`, streamed: steps/s vs in-memory 200 MB slice | {array['streamed_steps_per_s']:.2f} vs {array['in_memory_steps_per_s']:.2f} (ratio {array['speed_ratio']:.2f}) | ≥ {SPEED_RATIO} | {'yes' if array['speed_ratio'] >= SPEED_RATIO else '**no**'} |
| in-memory 200 MB slice: peak memory | {array['in_memory_peak_rss_bytes'] / gb:.2f} GB | — | — |
| 5 GB Parquet: `train` peak memory, time (cache + statistics + {result['steps']} steps) | {table['train']['peak_rss_bytes'] / gb:.2f} GB, {table['train']['seconds']:.0f} s | ≤ {RSS_LIMIT_TABLE / gb} GB | {'yes' if table['train']['peak_rss_bytes'] <= RSS_LIMIT_TABLE else '**no**'} |
| 5 GB Parquet: `detect` on all {table['detect']['items']:,} rows: peak memory, time | {table['detect']['peak_rss_bytes'] / gb:.2f} GB, {table['detect']['seconds']:.0f} s | ≤ {RSS_LIMIT_TABLE / gb} GB | {'yes' if table['detect']['peak_rss_bytes'] <= RSS_LIMIT_TABLE else '**no**'} |
| 2 GB `.npy`: `compress` (format 4, chunk by chunk): peak memory, time, file | {compressed['peak_rss_bytes'] / gb:.2f} GB, {compressed['seconds']:.0f} s, {compressed['bytes'] / 1e6:.1f} MB ({compressed['bytes'] / compressed['items']:.1f} bytes per item) | ≤ {RSS_LIMIT_ARRAY / gb} GB | {'yes' if compressed['peak_rss_bytes'] <= RSS_LIMIT_ARRAY else '**no**'} |
| its file: `decompress` into a {decompressed['output_bytes'] / gb:.1f} GB `.npy`: peak memory, time | {decompressed['peak_rss_bytes'] / gb:.2f} GB, {decompressed['seconds']:.0f} s | ≤ {RSS_LIMIT_ARRAY / gb} GB | {'yes' if decompressed['peak_rss_bytes'] <= RSS_LIMIT_ARRAY else '**no**'} |
| a folder of {images['compress']['items']:,} MNIST PNGs: `compress`: peak memory, time, file | {images['compress']['peak_rss_bytes'] / gb:.2f} GB, {images['compress']['seconds']:.0f} s, {images['compress']['bytes'] / 1e6:.1f} MB ({images['compress']['bytes'] / images['compress']['items']:.1f} bytes per image, names included) | ≤ {RSS_LIMIT_ARRAY / gb} GB | {'yes' if images['compress']['peak_rss_bytes'] <= RSS_LIMIT_ARRAY else '**no**'} |
| its file: `decompress` into a folder of {images['decompress']['files']:,} PNGs of the same names: peak memory, time | {images['decompress']['peak_rss_bytes'] / gb:.2f} GB, {images['decompress']['seconds']:.0f} s | ≤ {RSS_LIMIT_ARRAY / gb} GB | {'yes' if images['decompress']['peak_rss_bytes'] <= RSS_LIMIT_ARRAY else '**no**'} |
| DDP, 2 processes vs 1 process, 1 thread and batch 128 each: samples/s | {ddp['two_processes']['samples_per_s']:.0f} vs {ddp['one_process']['samples_per_s']:.0f} (ratio {ddp['samples_ratio']:.2f}) | reported | — |
"""


def array_gb(result: dict) -> str:
    return f"{result['array_bytes'] / 1e9:.1f}"


if __name__ == "__main__":
    main()
