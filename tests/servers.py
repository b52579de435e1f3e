"""Real servers on loopback for the tests: a free port, waiting for health, a restartable
`mlflow server`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(**extra: str) -> dict[str, str]:
    """This environment with the venv's scripts first on PATH (servers spawn their own tools)."""
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]), **extra}


def wait_for_http(url: str, process: subprocess.Popen, log: Path, what: str, timeout_s: float = 120) -> None:
    """Until `url` answers; fails the test, with the server's log, if it dies or takes too long."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (it was started in a session of its own)."""
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


class TrackingServer:
    """A real `mlflow server` on loopback (sqlite backend, proxied artifacts) that can be stopped
    and started again on the same port with the same store."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url, self.artifacts = f"http://127.0.0.1:{self.port}", folder / "server-artifacts"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.folder / "mlflow-server.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
             "--artifacts-destination", self.artifacts.as_uri()],
            stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
            # No job runner: its huey consumer processes serve MLflow's GenAI jobs, which ratchet does
            # not use (measured: ~4 CPU-s a server start and polling after it, 70 CPU-s a suite).
            env=server_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))
        wait_for_http(f"{self.url}/health", self.process, log, "mlflow server")

    def stop(self) -> None:
        stop(self.process)
