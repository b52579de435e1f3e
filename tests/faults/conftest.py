"""The fault-injection suite's tools: real `ratchet run` processes in their own process group, on the
embedded Prefect server, killed with real signals (at named points: ratchet.faultpoints)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ratchet import dvc_repo, registry, store
from ratchet.batch_state import TERMINAL, BatchStates
from ratchet.config import load_settings
from ratchet.paths import ProjectPaths

RUN_TIMEOUT_S = 300


@dataclass
class Finished:
    returncode: int
    output: str
    seconds: float


def _base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RATCHET_FAULT", "MLFLOW_TRACKING_URI",
                                                                    "PREFECT_API_URL"))}
    env.update({"PREFECT_HOME": str(home / "prefect"), "RATCHET_LOCK_DIR": str(home / "locks"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "true",
                "MLFLOW_DISABLE_TELEMETRY": "true", "PREFECT_LOGGING_LEVEL": "WARNING",
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])})
    return env


@pytest.fixture(scope="session")
def fault_env(tmp_path_factory, prefect_harness) -> dict[str, str]:
    """The environment of the suite's runs: one real Prefect server on loopback for all of them
    (the test harness's: a server process of its own, so a run killed with its process group takes
    only itself down, as with a deployment), a machine-wide lock folder of their own, each project's
    own MLflow store. (A run on the embedded server, which dies with it: `embedded_env`.)"""
    from prefect.settings import PREFECT_API_URL

    return {**_base_env(tmp_path_factory.mktemp("fault-env")), "PREFECT_API_URL": PREFECT_API_URL.value()}


@pytest.fixture
def embedded_env(tmp_path) -> dict[str, str]:
    """A fresh Prefect home and no API URL: each run starts (and migrates) its own embedded server."""
    (tmp_path / "embedded").mkdir()
    return _base_env(tmp_path / "embedded")


def start_run(paths: ProjectPaths, env: dict[str, str], fault: str | None = None, **extra: str) -> subprocess.Popen:
    """`ratchet run` as its own process group (so a kill takes the run, its stages and its Prefect
    server together, as a power loss would); `fault` is RATCHET_FAULT (`point:action`)."""
    run_env = {**env, **({"RATCHET_FAULT": fault} if fault else {}), **extra}
    return subprocess.Popen([sys.executable, "-m", "ratchet.cli", "run", "--project", str(paths.root)],
                            env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish(process: subprocess.Popen, timeout_s: float = RUN_TIMEOUT_S) -> Finished:
    started = time.monotonic()
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"ratchet run hung for over {timeout_s}s:\n{output[-4000:]}")
    return Finished(process.returncode, output, time.monotonic() - started)


def run(paths: ProjectPaths, env: dict[str, str], fault: str | None = None, **extra: str) -> Finished:
    return finish(start_run(paths, env, fault, **extra))


def assert_consistent(paths: ProjectPaths) -> None:
    """The promises after any fault and one clean run: every arrival in exactly one terminal state
    (the newest event is the state, so one each by construction: checked is that it is terminal),
    the champion alias equal to data/champion's manifest, data/ clean in DVC, no promotion open."""
    current = BatchStates(paths).current()
    open_ = [(e.file, e.state) for e in current if e.state not in TERMINAL and e.state != "accumulated"]
    assert not open_, f"arrivals not in a terminal state: {open_}"
    settings = load_settings(paths.params)
    manifest = store.champion_manifest(paths)
    assert manifest is not None and registry.champion_version(paths, settings) == manifest.version
    assert dvc_repo.status_clean(paths.root), "data/ differs from data.dvc"
    assert not paths.promotion_record.exists(), "a promotion was left open"


def registered_versions(paths: ProjectPaths) -> list[str]:
    with sqlite3.connect(paths.mlflow_db) as db:
        return [str(v) for (v,) in db.execute("SELECT version FROM model_versions ORDER BY version")]
