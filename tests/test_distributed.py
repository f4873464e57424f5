"""Training on several processes and machines: Lightning's DDP on CPU (gloo), launched as on a cluster.

Each test starts its processes itself, as a cluster's launcher would on two machines: the same script, with
MASTER_ADDR/MASTER_PORT naming rank 0's address and NODE_RANK 0 and 1, so the two "machines" are two processes
here, joined over the loopback interface."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import autoencoders
from autoencoders.io import load

# every process saves the weights it ended with, so the test can compare the replicas (test code, not the library's)
SCRIPT = """
import sys, json, torch
from pathlib import Path
import autoencoders
from autoencoders.training.module import AutoencoderModule

def save_replica(module):
    torch.save(module.model.state_dict(), f"{sys.argv[1]}/replica-{module.global_rank}-{Path(module.trainer.default_root_dir).name}.pt")

AutoencoderModule.on_train_end = save_replica
for run in json.loads(sys.argv[2]):
    autoencoders.train(**run)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_two_nodes(tmp_path: Path, runs: list[dict]) -> None:
    """The runs, one after another, on two one-process "machines" (num_nodes=2, devices=1)."""
    script = tmp_path / "train_on_a_node.py"
    script.write_text(SCRIPT)
    port = free_port()
    processes = []
    for node in (0, 1):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "NODE_RANK": str(node), "LOCAL_RANK": "0",
               "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
        # each "machine" trains into its own folder, as on machines without a shared disk: only rank 0's is written
        node_runs = [{**run, "out": str(tmp_path / f"node{node}" / run["out"])} for run in runs]
        processes.append(subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), json.dumps(node_runs)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    for node, (process, output) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f"node {node} failed:\n{output[-3000:]}"


@pytest.fixture
def deterministic_items(tmp_path) -> Path:
    # 260 items: 208 train, 26 val, 26 test; even counts, so two processes share every split exactly
    path = tmp_path / "items.npy"
    np.save(path, np.random.default_rng(0).normal(size=(260, 6)).astype(np.float32))
    return path


def test_two_machines_train_one_model_and_follow_the_curve_of_one_process_with_twice_the_batch(deterministic_items, tmp_path):
    common = dict(model="ae", data=str(deterministic_items), hidden=[16], latent_dim=3, epochs=3, seed=4, progress=False)
    # the two machines read the array batch by batch (streamed); the single process holds it in memory
    launch_two_nodes(tmp_path, [{**common, "out": "run", "batch_size": 16, "settings": {
        "training.num_nodes": 2, "training.accelerator": "cpu", "training.log_every": 1, "data.stream": True}}])
    run = tmp_path / "node0" / "run"
    assert not (tmp_path / "node1" / "run").exists()  # rank 0 alone writes the run folder
    training = json.loads((run / "config.json").read_text())["training"]
    assert training["num_nodes"] == 2 and training["steps_done"] == 3 * 7  # 104 items per process, batches of 16
    first, second = (torch.load(tmp_path / f"replica-{rank}-run.pt", weights_only=True) for rank in (0, 1))
    saved = load(run).state_dict()
    assert all(torch.equal(first[key], second[key]) and torch.equal(first[key], saved[key]) for key in saved)

    # the gradients were averaged over both processes: the run is that of one process with batches of 32
    single = autoencoders.train(**{**common, "out": tmp_path / "single", "batch_size": 32, "settings": {"training.log_every": 1}})
    together, alone = (pd.read_csv(folder / "metrics.csv")["val/loss"].dropna().to_numpy() for folder in (run, single))
    assert len(together) == len(alone) == 3
    np.testing.assert_allclose(together, alone, rtol=1e-4)
    single_weights = load(single).state_dict()
    assert all(torch.allclose(saved[key], single_weights[key], atol=1e-4) for key in saved)


PLAYERS = [  # (family, model settings): every family with more than one player, in its kinds
    ("aae", {"prior": "mog"}), ("aae", {"supervised": True}), ("aae-semi", {"labels": 40}), ("aae-cluster", {}), ("acai", {}),
    ("factor-vae", {"code_memory": 2}), ("vqvae", {"prior_start": 2, "codebook_size": 8}),
]


def test_every_model_with_several_players_trains_on_two_processes(tmp_path):
    runs = [
        {"model": name, "data": "digits", "out": f"{name}-{index}", "hidden": [16], "latent_dim": 4, "max_steps": 4,
         "batch_size": 32, "limit": 200, "progress": False,
         "settings": {"training.num_nodes": 2, "training.accelerator": "cpu", **settings}}
        for index, (name, settings) in enumerate(PLAYERS)
    ]
    launch_two_nodes(tmp_path, runs)
    for run in runs:
        folder = tmp_path / "node0" / run["out"]
        assert json.loads((folder / "config.json").read_text())["training"]["steps_done"] == 4, run["out"]
        first, second = (torch.load(tmp_path / f"replica-{rank}-{run['out']}.pt", weights_only=True) for rank in (0, 1))
        saved = load(folder).state_dict()
        # the replicas stayed one model, the one rank 0 saved
        assert all(torch.equal(first[key], second[key]) and torch.equal(first[key], saved[key]) for key in saved), run["out"]
