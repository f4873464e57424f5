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
minutes: the ratio is taken per round, then its median). Each round then times --single requests of one client
alone, and the same images scored one at a time in process (``anomaly_score`` of one image): the latency the
load of the moment leaves even without HTTP. All of it for each --threads count, the server's and the in-process
scoring's alike (on two cores shared with other jobs one thread is the faster for both).

The clients are asyncio tasks on raw keep-alive HTTP/1.1 connections (one per client): a lean load generator,
so that the two shared cores are spent on the server rather than on building requests; each response is parsed
and its score checked against the in-process one. Reported: requests per second against images per second in
process, p50 and p99 latency, the batches the server formed (from /v1/models), and /proc/loadavg before and after.

    nice -n 10 python benchmarks/serve.py [--items 2000] [--clients 32] [--single 100] [--rounds 7] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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


def start_server(port: int, max_batch: int, threads: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "autoencoders.cli", "serve", str(DETECTOR), "--port", str(port),
               "--max-batch", str(max_batch), "--threads", str(threads)]
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


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batching_stats(port: int) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as response:
        return json.loads(response.read())["models"][0]["stats"]["score"]


def measure(detector, images, bodies, expected, threads: int, args) -> dict:
    """Rounds of in-process scoring and served scoring on ``threads`` torch threads (both sides alike)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    port = free_port()
    server = start_server(port, args.max_batch, threads)
    rounds = []  # per round: in-process items/s, then served requests/s, back to back under the same load
    latencies: list[float] = []
    batches = batched = 0  # batches the server ran under the concurrent clients, and the requests they held
    try:
        asyncio.run(load(port, bodies[:64], 8, 30))  # warm-up: connections, the first batches
        for _ in range(args.rounds):
            start, cpu = time.perf_counter(), time.process_time()
            detector.anomaly_score(images)
            in_process = len(images) / (time.perf_counter() - start)
            in_process_cpu = (time.process_time() - cpu) / len(images)
            before, cpu = batching_stats(port), cpu_seconds(server.pid)
            times, scores, wall = asyncio.run(load(port, bodies, args.clients, args.seconds))
            server_cpu = (cpu_seconds(server.pid) - cpu) / len(times)
            latencies += times
            stats = batching_stats(port)
            batches += stats["batches"] - before["batches"]
            batched += stats["requests"] - before["requests"]
            alone, _, _ = asyncio.run(load(port, bodies[: args.single], 1, args.seconds))
            one_by_one = []
            for index in range(args.single):
                start = time.perf_counter()
                detector.anomaly_score(images[index : index + 1])
                one_by_one.append(time.perf_counter() - start)
            rounds.append({"in_process": in_process, "served": len(times) / wall,
                           "in_process_cpu_ms_per_item": 1000 * in_process_cpu, "server_cpu_ms_per_request": 1000 * server_cpu,
                           "single_p50_ms": 1000 * percentile(alone, 0.5), "single_p99_ms": 1000 * percentile(alone, 0.99),
                           "in_process_one_image_p50_ms": 1000 * percentile(one_by_one, 0.5), "loadavg": loadavg()})
    finally:
        server.terminate()
        server.wait(timeout=30)
    got = np.array([scores[index] for index in sorted(scores)])
    return {
        "threads": threads, "rounds": rounds,
        "in_process_items_per_second": statistics.median(entry["in_process"] for entry in rounds),
        "served_requests_per_second": statistics.median(entry["served"] for entry in rounds),
        "served_over_in_process": statistics.median(entry["served"] / entry["in_process"] for entry in rounds),
        "latency_ms": {"p50": 1000 * percentile(latencies, 0.5), "p99": 1000 * percentile(latencies, 0.99)},
        "single_client_latency_ms": {"p50": statistics.median(entry["single_p50_ms"] for entry in rounds),
                                     "p99": statistics.median(entry["single_p99_ms"] for entry in rounds)},
        "in_process_one_image_p50_ms": statistics.median(entry["in_process_one_image_p50_ms"] for entry in rounds),
        "in_process_cpu_ms_per_item": statistics.median(entry["in_process_cpu_ms_per_item"] for entry in rounds),
        "server_cpu_ms_per_request": statistics.median(entry["server_cpu_ms_per_request"] for entry in rounds),
        "batches": batches, "mean_batch": batched / max(batches, 1), "largest_batch": stats["largest_batch"],
        "max_score_difference": float(np.abs(got - expected[sorted(scores)]).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000, help="test images, each sent once by the concurrent clients")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--single", type=int, default=100, help="requests of the lone client, per round")
    parser.add_argument("--seconds", type=float, default=120.0, help="bound on each load's time")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of in-process then served scoring")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--threads", default="1,2", help="torch thread counts to measure, server and in process alike")
    parser.add_argument("--train-minutes", type=float, default=4.0)
    args = parser.parse_args()

    import fastapi
    import uvicorn

    import autoencoders
    from autoencoders.uses.anomaly import AnomalyDetector

    load_before = loadavg()
    prepare(args.train_minutes)
    images = autoencoders.load_dataset("mnist", data_dir=data_dir()).test[: args.items]
    images = (images * 255).round() / 255  # what a PNG holds: the server reads the same values
    bodies = png_bytes(images)
    detector = AnomalyDetector.from_pretrained(DETECTOR)
    expected = detector.anomaly_score(images)
    settings = [measure(detector, images, bodies, expected, int(threads), args) for threads in args.threads.split(",")]
    load_after = loadavg()

    result = {
        "model": "conv AE on MNIST (default conv channels, latent 32) + AnomalyDetector(scores='recon')",
        "run": str(RUN.relative_to(ROOT.parent)), "items": len(images), "clients": args.clients,
        "max_batch": args.max_batch, "settings": settings, "loadavg_before": load_before, "loadavg_after": load_after,
        "uvicorn": uvicorn.__version__, "fastapi": fastapi.__version__,
        "event_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http_parser": "httptools" if importlib.util.find_spec("httptools") else "h11",
    }
    path = write_result("serve", result)
    difference = max(setting["max_score_difference"] for setting in settings)
    rows = "".join(
        f"| {setting['threads']} | {setting['in_process_items_per_second']:,.0f} | "
        f"{setting['served_requests_per_second']:,.0f} | **{setting['served_over_in_process']:.0%}** | "
        f"{setting['latency_ms']['p50']:.1f} / {setting['latency_ms']['p99']:.1f} ms | "
        f"**{setting['single_client_latency_ms']['p50']:.2f}** / {setting['single_client_latency_ms']['p99']:.2f} ms | "
        f"{setting['in_process_one_image_p50_ms']:.2f} ms | {setting['mean_batch']:.1f} (largest {setting['largest_batch']}) | "
        f"{setting['server_cpu_ms_per_request']:.2f} / {setting['in_process_cpu_ms_per_item']:.2f} ms |\n"
        for setting in settings
    )
    per_round = "; ".join(
        f"{setting['threads']} thread(s): " + ", ".join(
            f"{entry['in_process']:,.0f} / {entry['served']:,.0f}" for entry in setting["rounds"])
        for setting in settings
    )
    table = (
        f"{len(images)} MNIST test images scored by a conv AE's saved detector (recon score) on a {os.cpu_count()}-core "
        f"CPU machine shared with other jobs (`/proc/loadavg` before: {load_before}; after: {load_after}). The server "
        f"(`autoencoders serve --max-batch {args.max_batch} --threads N`, uvicorn {uvicorn.__version__} with "
        f"{result['http_parser']} and {result['event_loop']}) and the load generator share the cores. For each thread "
        f"count N (the server's and the in-process scoring's alike), {args.rounds} rounds, each scoring the images in "
        f"process (`anomaly_score` on all {len(images)} at once), then over HTTP ({args.clients} concurrent clients, one "
        f"PNG per request), then {args.single} requests of one client alone and the same images scored one at a time in "
        "process; the load of the other jobs changes the speed of both sides several-fold within minutes, so the ratio "
        f"is taken per round (medians shown). Scores over HTTP match the in-process ones within {difference:.1g}.\n\n"
        "| torch threads | in process, items / s | served, requests / s | served / in process | p50 / p99, 32 clients "
        "| p50 / p99, one client | in process, one image p50 | requests per batch | CPU: server per request / in process per image |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + rows +
        f"\nPer round, in process / served items per second: {per_round}. The CPU column is what bounds the ratio on "
        "busy cores: the server's CPU time per request (HTTP, reading the PNG, the framework, its share of a batch; all "
        "its threads) against the in-process CPU time per image."
    )
    write_table(SECTION, table)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
