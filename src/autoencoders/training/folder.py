"""The run folder a training writes: one writer at a time, never replaced silently, no half-written files left.

``claim_run_folder`` is held for the whole of a training. It refuses a folder that already holds a run unless
the run is resumed or ``overwrite`` is given (then the old run's files are removed first, so no folder mixes two
runs), refuses a second writer while the first trains (a lock file under ``fcntl.flock``: the kernel lets go of
it when its process dies, so a killed training leaves no lock that blocks the next one; the file names the
holder's pid for the message), and removes the temporary files that interrupted atomic writes left behind.

Under DDP every process runs the training call; only the launching process (rank 0 of node 0) claims the folder,
and only it writes into it (``trainer.is_global_zero``), on one machine or several.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Iterator

from autoencoders.errors import InputError

log = logging.getLogger("autoencoders")

LOCK_FILE = ".lock"
# what a training and the commands after it write into a run folder; --overwrite removes exactly these
RUN_ENTRIES = (
    "config.json", "model.safetensors", "metrics.csv", "metrics.json", "hparams.yaml", "checkpoints", "pictures",
    "report.html", "anomaly", "compression", "tensorboard", "mlruns",
)
# a folder holding any of these holds a run (finished, or interrupted and resumable)
RUN_MARKERS = ("config.json", "model.safetensors", "checkpoints")


def holds_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in RUN_MARKERS)


def launching_process() -> bool:
    """Whether this is the process a user started, not a DDP worker that Lightning (or torchrun) started for it,
    nor the process of another machine (NODE_RANK; SLURM_PROCID: ``srun`` starts every rank itself)."""
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


@contextlib.contextmanager
def claim_run_folder(folder: Path, resume: bool = False, overwrite: bool = False) -> Iterator[None]:
    """Hold ``folder`` for one training: see the module's docstring."""
    if resume and overwrite:
        raise InputError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    if not launching_process():
        yield
        return
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out {folder} is a file, not a folder; name a folder for the run")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with _locked(folder):
            _prepare(folder, resume, overwrite)
            yield
    finally:
        if created and not any(folder.iterdir()):  # refused or failed before writing anything: leave no trace
            folder.rmdir()


def _prepare(folder: Path, resume: bool, overwrite: bool) -> None:
    if holds_run(folder) and not (resume or overwrite):
        raise InputError(
            f"{folder} already holds a run; continue it with --resume, replace it with --overwrite, "
            "or train into another --out folder"
        )
    if overwrite and holds_run(folder):
        for name in RUN_ENTRIES:
            path = folder / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        log.info("removed the earlier run in %s (--overwrite)", folder)
    _remove_partial_writes(folder)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    path = folder / LOCK_FILE
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() if path.exists() else "another process"
            os.close(descriptor)
            raise InputError(
                f"{folder} is being trained by {holder}; wait for that training to end (or stop it), "
                "or train into another --out folder"
            ) from None
        # the holder before us may have removed the file between our open and our lock: lock the file that is there
        if path.exists() and os.stat(path).st_ino == os.fstat(descriptor).st_ino:
            break
        os.close(descriptor)
    previous = os.read(descriptor, 200).decode(errors="replace").strip()
    if previous:
        log.info("%s was locked by %s, which has ended without unlocking it; taking it over", folder, previous)
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(descriptor)


def _remove_partial_writes(folder: Path) -> None:
    """Temporary files of atomic writes (``.NAME.*.tmp``, see ``files.atomic_write_bytes``) that a killed process left."""
    partial = [path for place in (folder, folder / "checkpoints") if place.is_dir() for path in place.glob(".*.tmp")]
    for path in partial:
        path.unlink(missing_ok=True)
    if partial:
        log.info("removed %d half-written file(s) left by an interrupted write: %s", len(partial), ", ".join(p.name for p in partial))
