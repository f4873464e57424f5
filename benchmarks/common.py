"""Shared helpers for the benchmark scripts: where data lives, results JSON, the RESULTS.md tables."""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
RESULTS_MD = ROOT / "RESULTS.md"


def data_dir() -> str:
    """$AUTOENCODERS_DATA, else the verified copies in ../shared/data beside the repository."""
    return os.environ.get("AUTOENCODERS_DATA") or str(ROOT.parent.parent / "shared" / "data")


def training_device() -> str:
    """Where ``autoencoders.train`` runs here (its accelerator is "auto"): the GPU's name, else the CPU threads."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    threads = torch.get_num_threads()
    return f"{threads} CPU thread{'s' if threads > 1 else ''}"


def machine() -> dict[str, Any]:
    import torch

    return {
        "training_device": training_device(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**result, "machine": machine()}, indent=2) + "\n")
    return path


def write_table(section: str, markdown: str) -> None:
    """Replace (or add) the section ``## section`` of RESULTS.md with ``markdown``."""
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n\nEvery number here was measured by the script named in its section, on the machine stated.\n"
    block = f"## {section}\n\n{markdown.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(block + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    RESULTS_MD.write_text(text.rstrip() + "\n")
