"""One writer at a time for the champion: an exclusive lock file in the project.

MLflow aliases are last-writer-wins with no compare-and-set, and data/champion/ is a folder: a
promotion, a rollback and a `ratchet promote` must not interleave. The lock is an flock on
`.ratchet.lock` in the project root, so it holds across processes on one machine (for workers on
several machines, point the project at shared storage that honours flock, or run one promoter).
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ratchet.paths import ProjectPaths


class LockTimeout(RuntimeError):
    pass


@contextmanager
def champion_lock(paths: ProjectPaths, timeout_s: float = 120.0) -> Iterator[None]:
    lock_file: Path = paths.root / ".ratchet.lock"
    handle = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(f"another promotion or rollback has held {lock_file} for over "
                                      f"{timeout_s:.0f}s; nothing changed") from None
                time.sleep(0.2)
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)
