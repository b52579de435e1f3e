"""One writer at a time: exclusive lock files in the project.

MLflow aliases are last-writer-wins with no compare-and-set, and data/champion/ is a folder: a
promotion, a rollback and a `ratchet promote` must not interleave (`champion_lock`). Two `dvc repro`
runs in one project fail on DVC's own lock (dvc #10465, #5795), so trainings queue on
`training_lock`. Each lock is an flock on a file in the project root, so it holds across processes
on one machine and is released when its holder dies, however it dies (for workers on several
machines, Prefect's global concurrency limit `orchestration.training_limit` queues trainings, and
the project should live on storage that honours flock).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ratchet.paths import ProjectPaths

log = logging.getLogger("ratchet")


class LockTimeout(RuntimeError):
    pass


@contextmanager
def _project_lock(lock_file: Path, timeout_s: float | None, holder: str) -> Iterator[None]:
    handle = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    waited = False
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() > deadline:
                    raise LockTimeout(f"another {holder} has held {lock_file} for over "
                                      f"{timeout_s:.0f}s; nothing changed") from None
                if not waited:
                    log.info("waiting for another %s to finish (%s)", holder, lock_file)
                    waited = True
                time.sleep(0.2)
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)


@contextmanager
def champion_lock(paths: ProjectPaths, timeout_s: float = 120.0) -> Iterator[None]:
    with _project_lock(paths.root / ".ratchet.lock", timeout_s, "promotion or rollback"):
        yield


@contextmanager
def training_lock(paths: ProjectPaths, timeout_s: float | None = None) -> Iterator[None]:
    """Held around `dvc repro`: a second training waits (by default as long as it takes)."""
    with _project_lock(paths.root / ".ratchet-training.lock", timeout_s, "training (dvc repro)"):
        yield
