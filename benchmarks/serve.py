"""Serving throughput and latency: `autoencoders serve` against the library's in-process batched scoring (issue 41).

A conv AE trained on MNIST (default conv channels, latent 32; trained here for --train-minutes of CPU time when
benchmarks/runs/serve-ae holds no run yet) and an AnomalyDetector (recon score) fitted on 2000 training images
with it, saved to benchmarks/runs/serve-detector. The same --items MNIST test images are scored

- in process: ``AnomalyDetector.anomaly_score`` on all of them at once (the library's batched scoring, batches of
  1024);
- over HTTP: the real command (`autoencoders serve`, a subprocess on a free loopback port) with --clients
  concurrent clients, each sending one image per request as a PNG to /score, until every image was scored once
  (bounded in count, and in time by --seconds);

the two back to back, --rounds times (other jobs on the shared cores change the speed of both several-fold within
minutes: the ratio is taken per round, then its median); then one client alone for --single requests.

The clients are asyncio tasks on raw keep-alive HTTP/1.1 connections (one per client): a lean load generator,
so that the two shared cores are spent on the server rather than on building requests; each response is parsed
and its score checked against the in-process one. Reported: requests per second against images per second in
process, p50 and p99 latency, the batches the server formed (from /v1/models), and /proc/loadavg before and after.

    nice -n 10 python benchmarks/serve.py [--items 4000] [--clients 32] [--single 300] [--max-batch 64]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, data_dir, write_result, write_table  # noqa: E402

SECTION = "Serving: `autoencoders serve` against in-process scoring (benchmarks/serve.py)"
RUN = ROOT / "runs" / "serve-ae"
DETECTOR = ROOT / "runs" / "serve-detector"


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank ``share`` quantile of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def prepare(train_minutes: float) -> None:
    """The run (trained once) and its detector (fitted once)."""
    import autoencoders

    if not (RUN / "model.safetensors").exists():
        minutes = f"00:00:{int(train_minutes):02d}:{int(train_minutes % 1 * 60):02d}"
        autoencoders.train("ae", "mnist", RUN, arch="conv", latent_dim=32, epochs=100, batch_size=128, seed=0,
                           data_dir=data_dir(), progress=False, overwrite=True,
                           settings={"training.max_time": minutes})
    if not (DETECTOR / "detector.safetensors").exists():
        train = autoencoders.load_dataset("mnist", data_dir=data_dir()).train[:2000]
        autoencoders.AnomalyDetector(model=str(RUN), scores="recon").fit(train).save_pretrained(DETECTOR)


def png_bytes(images) -> list[bytes]:
    from PIL import Image

    pixels = (images[:, 0].numpy() * 255).round().astype("uint8")
    out = []
    for item in pixels:
        buffer = io.BytesIO()
        Image.fromarray(item).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, max_batch: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "autoencoders.cli", "serve", str(DETECTOR), "--port", str(port),
               "--max-batch", str(max_batch)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start within 120 s")


async def _request(reader, writer, port: int, body: bytes) -> tuple[int, bytes]:
    """One POST /score on a kept-alive connection: (status, body)."""
    writer.write(
        f"POST /v1/models/serve-detector/score HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    return status, await reader.readexactly(length)


async def load(port: int, bodies: list[bytes], clients: int, seconds: float) -> tuple[list[float], dict[int, float], float]:
    """``clients`` connections sending ``bodies`` (each once) as fast as answered: latencies, scores, wall time."""
    queue = list(range(len(bodies)))[::-1]
    latencies: list[float] = []
    scores: dict[int, float] = {}
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue and time.perf_counter() < deadline:
                index = queue.pop()
                start = time.perf_counter()
                status, body = await _request(reader, writer, port, bodies[index])
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    raise RuntimeError(f"status {status}: {body[:200]!r}")
                scores[index] = json.loads(body)["scores"][0]
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, scores, time.perf_counter() - start


def batching_stats(port: int) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as response:
        return json.loads(response.read())["models"][0]["stats"]["score"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000, help="test images, each sent once by the concurrent clients")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--single", type=int, default=300, help="requests of the lone client")
    parser.add_argument("--seconds", type=float, default=120.0, help="bound on each load's time")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of in-process then served scoring")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--train-minutes", type=float, default=4.0)
    args = parser.parse_args()

    import numpy as np
    import torch

    import autoencoders
    from autoencoders.uses.anomaly import AnomalyDetector

    load_before = loadavg()
    prepare(args.train_minutes)
    images = autoencoders.load_dataset("mnist", data_dir=data_dir()).test[: args.items]
    images = (images * 255).round() / 255  # what a PNG holds: the server reads the same values
    bodies = png_bytes(images)
    detector = AnomalyDetector.from_pretrained(DETECTOR)
    expected = detector.anomaly_score(images)

    port = free_port()
    server = start_server(port, args.max_batch)
    rounds = []  # per round: in-process items/s, then served requests/s, back to back under the same load
    latencies: list[float] = []
    try:
        asyncio.run(load(port, bodies[:64], 8, 30))  # warm-up: connections, the first batches
        warm = batching_stats(port)
        for _ in range(args.rounds):
            start = time.perf_counter()
            detector.anomaly_score(images)
            in_process = len(images) / (time.perf_counter() - start)
            times, scores, wall = asyncio.run(load(port, bodies, args.clients, args.seconds))
            latencies += times
            rounds.append({"in_process": in_process, "served": len(times) / wall, "loadavg": loadavg()})
        stats = batching_stats(port)
        single, _, single_wall = asyncio.run(load(port, bodies[: args.single], 1, args.seconds))
    finally:
        server.terminate()
        server.wait(timeout=30)
    load_after = loadavg()

    got = np.array([scores[index] for index in sorted(scores)])
    difference = float(np.abs(got - expected[sorted(scores)]).max())
    ratio = statistics.median(entry["served"] / entry["in_process"] for entry in rounds)
    in_process = statistics.median(entry["in_process"] for entry in rounds)
    served = statistics.median(entry["served"] for entry in rounds)
    batches = stats["batches"] - warm["batches"]
    result = {
        "model": "conv AE on MNIST (default conv channels, latent 32) + AnomalyDetector(scores='recon')",
        "run": str(RUN.relative_to(ROOT.parent)), "items": len(images), "clients": args.clients,
        "max_batch": args.max_batch, "rounds": rounds, "in_process_items_per_second": in_process,
        "served_requests_per_second": served, "served_over_in_process": ratio,
        "latency_ms": {"p50": 1000 * percentile(latencies, 0.5), "p99": 1000 * percentile(latencies, 0.99)},
        "single_client": {"requests": len(single), "seconds": single_wall,
                          "latency_ms": {"p50": 1000 * percentile(single, 0.5), "p99": 1000 * percentile(single, 0.99)}},
        "batches": batches, "mean_batch": (stats["requests"] - warm["requests"]) / max(batches, 1),
        "largest_batch": stats["largest_batch"], "max_score_difference": difference,
        "torch_threads": torch.get_num_threads(), "loadavg_before": load_before, "loadavg_after": load_after,
    }
    path = write_result("serve", result)
    table = (
        f"{len(images)} MNIST test images scored by a conv AE's saved detector (recon score), on a {os.cpu_count()}-core "
        f"CPU machine shared with other jobs (`/proc/loadavg` before: {load_before}; after: {load_after}); the server "
        f"(`autoencoders serve`, `--max-batch {args.max_batch}`) and the load generator share the cores. {args.rounds} "
        "rounds, each scoring the images in process and then over HTTP, back to back (the load of the other jobs "
        "changes the speed of both several-fold within minutes, so the ratio is taken per round; medians shown). "
        f"Scores over HTTP match the in-process ones within {difference:.1g}.\n\n"
        "| | items / s (median) | p50 latency | p99 latency |\n|---|---|---|---|\n"
        f"| in process, `anomaly_score` on all {len(images)} at once | {in_process:,.0f} | — | — |\n"
        f"| served, {args.clients} concurrent clients, one PNG per request | {served:,.0f} (median ratio to in process: "
        f"**{ratio:.0%}**) | {result['latency_ms']['p50']:.1f} ms | {result['latency_ms']['p99']:.1f} ms |\n"
        f"| served, one client | {len(single) / single_wall:,.0f} | **{result['single_client']['latency_ms']['p50']:.2f} ms** | "
        f"{result['single_client']['latency_ms']['p99']:.2f} ms |\n\n"
        f"Per round (in process / served items per second): "
        + ", ".join(f"{entry['in_process']:,.0f} / {entry['served']:,.0f}" for entry in rounds)
        + f". Under the {args.clients} clients the server ran {batches} batches, {result['mean_batch']:.1f} requests "
        f"each on average (largest {stats['largest_batch']})."
    )
    write_table(SECTION, table)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
