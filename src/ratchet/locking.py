"""One writer at a time: exclusive lock files in the project.

MLflow aliases are last-writer-wins with no compare-and-set, and data/champion/ is a folder: a
promotion, a rollback and a `ratchet promote` must not interleave (`champion_lock`). Two `dvc repro`
runs in one project fail on DVC's own lock (dvc #10465, #5795), so trainings queue on
`training_lock`. Each lock is an flock on a file in the project root (filelock's FileLock), so it holds across processes
on one machine and is released when its holder dies, however it dies (for workers on several
machines, Prefect's global concurrency limit `orchestration.training_limit` queues trainings, and
the project should live on storage that honours flock).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from ratchet.paths import ProjectPaths

log = logging.getLogger("ratchet")


class LockTimeout(RuntimeError):
    pass


@contextmanager
def _project_lock(lock_file: Path, timeout_s: float | None, holder: str) -> Iterator[None]:
    lock = FileLock(lock_file, mode=0o644)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another %s to finish (%s)", holder, lock_file)
        try:
            lock.acquire(timeout=-1 if timeout_s is None else timeout_s, poll_interval=0.2)
        except Timeout:
            raise LockTimeout(f"another {holder} has held {lock_file} for over {timeout_s:.0f}s; "
                              "nothing changed") from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def champion_lock(paths: ProjectPaths, timeout_s: float = 120.0) -> Iterator[None]:
    with _project_lock(paths.root / ".ratchet.lock", timeout_s, "promotion or rollback"):
        yield


@contextmanager
def training_lock(paths: ProjectPaths, timeout_s: float | None = None) -> Iterator[None]:
    """Held around `dvc repro`: a second training waits (by default as long as it takes)."""
    with _project_lock(paths.root / ".ratchet-training.lock", timeout_s, "training (dvc repro)"):
        yield
