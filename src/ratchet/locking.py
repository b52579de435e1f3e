"""One writer at a time: exclusive lock files, released by the kernel when their holder dies.

Each lock is an flock on a file (filelock's FileLock): it holds across processes on one machine
and is released the moment its holder dies, however it dies (kill -9 included), so no lock is ever
left behind by a crash. Beside each lock file, `<lock>.holder` names the current holder (pid, host,
since when), so a waiting run says what it waits for.

- `run_lock`: one loop (`ratchet run`, a scheduled watch) per project at a time; a second waits.
- `training_lock`: around `dvc repro` in a project (two repros fail on DVC's own lock: dvc #10465).
- `champion_lock`: promotion, rollback and `ratchet promote` must not interleave (MLflow aliases
  are last-writer-wins with no compare-and-set, and data/champion/ is a folder).
- `machine_training_slot`: one training at a time on this machine, whatever the project (one GPU).
  Workers on several machines share a real Prefect server's concurrency limit instead
  (flows/orchestration.training_slot), whose leases that server expires when a worker dies.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from ratchet.paths import ProjectPaths

log = logging.getLogger("ratchet")

WAIT_REPORT_EVERY_S = 60.0


class LockTimeout(RuntimeError):
    pass


def lock_home() -> Path:
    """Machine-wide locks live here (RATCHET_LOCK_DIR, else ~/.cache/ratchet/locks)."""
    return Path(os.environ.get("RATCHET_LOCK_DIR") or Path.home() / ".cache" / "ratchet" / "locks")


def _holder(lock_file: Path) -> str:
    try:
        record = json.loads(Path(f"{lock_file}.holder").read_text())
        return f"pid {record['pid']} on {record['host']} since {record['since']} ({record['what']})"
    except (OSError, ValueError, KeyError):
        return "a process that has not written its name yet"


@contextmanager
def _exclusive(lock_file: Path, timeout_s: float | None, what: str) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    # one instance per file, counted across threads: a run that holds a lock can take it again
    # (the CLI takes the run lock before Prefect starts, the flow again inside)
    lock = FileLock(lock_file, mode=0o644, is_singleton=True, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        started = time.monotonic()
        while True:
            log.warning("waiting for %s: held by %s (%s); it is released as soon as its holder ends or dies",
                        what, _holder(lock_file), lock_file)
            left = None if timeout_s is None else timeout_s - (time.monotonic() - started)
            if left is not None and left <= 0:
                raise LockTimeout(f"{what}: {lock_file} has been held by {_holder(lock_file)} for over "
                                  f"{timeout_s:.0f}s; nothing changed") from None
            try:
                lock.acquire(timeout=WAIT_REPORT_EVERY_S if left is None else min(left, WAIT_REPORT_EVERY_S),
                             poll_interval=0.2)
                break
            except Timeout:
                continue
    try:
        Path(f"{lock_file}.holder").write_text(json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "what": what,
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
        yield
    finally:
        lock.release()


@contextmanager
def run_lock(paths: ProjectPaths, timeout_s: float | None = None) -> Iterator[None]:
    """One loop per project: a second `ratchet run` waits for the first, then finds what is left."""
    with _exclusive(paths.root / ".ratchet-run.lock", timeout_s, f"the loop of {paths.root}"):
        yield


@contextmanager
def champion_lock(paths: ProjectPaths, timeout_s: float = 120.0) -> Iterator[None]:
    with _exclusive(paths.root / ".ratchet.lock", timeout_s, "promotion or rollback"):
        yield


@contextmanager
def training_lock(paths: ProjectPaths, timeout_s: float | None = None) -> Iterator[None]:
    """Held around `dvc repro`: a second training waits (by default as long as it takes)."""
    with _exclusive(paths.root / ".ratchet-training.lock", timeout_s, "training (dvc repro)"):
        yield


@contextmanager
def machine_training_slot(name: str, timeout_s: float | None = None) -> Iterator[None]:
    """One training at a time on this machine, across projects (`orchestration.training_limit`)."""
    with _exclusive(lock_home() / f"{name}.lock", timeout_s, f"the training slot {name!r} of this machine"):
        yield
