"""Beyond one machine by configuration only: MLflow against a real `mlflow server` on loopback, and
DVC pushing data/ to a remote (a local path here; S3 in production, docs/deploy.md)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ratchet import dvc_repo, registry
from ratchet.config import load_settings
from tests.conftest import synthetic_frame
from tests.integration.conftest import drop, make_project


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    log = (tmp_path / "mlflow-server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", (tmp_path / "server-artifacts").as_uri()],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{(tmp_path / 'mlflow-server.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield url, tmp_path / "server-artifacts"
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


def test_tracking_server_and_dvc_remote(tmp_path, tiny_model_dir, prefect_harness, mlflow_server, monkeypatch):
    from flows.watch import watch

    url, server_artifacts = mlflow_server
    paths = make_project(tmp_path / "project", tiny_model_dir)
    remote = tmp_path / "dvc-remote"
    dvc_repo.run_dvc(paths.root, "remote", "add", "-d", "shared", str(remote), capture=True)
    drop(paths, "01-blue.csv", synthetic_frame({"blue": 40}, seed=1, prefix="b1"), minute=1)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)

    rows = {r["file"]: r for r in watch(str(paths.root))}
    assert rows["01-blue.csv"]["state"] == "promoted"

    # the registry lives on the server, not in the project
    assert not paths.mlflow_db.exists()
    settings = load_settings(paths.params)
    assert registry.champion_version(paths, settings) == rows["01-blue.csv"]["details"]["version"]
    history = registry.alias_history(paths, settings)
    assert [e.to_version for e in history if e.alias == "champion"] == ["1", "2"]
    assert any(server_artifacts.rglob("model.safetensors")), "artifacts went through the server's store"
    with registry_scratch(tmp_path) as scratch:
        model_dir, manifest = registry.download_champion(paths, settings, "2", scratch)
        assert (model_dir / "ratchet_model.json").exists() and manifest["version"] == "2"

    # every accepted batch and the new champion were pushed: a fresh checkout pulls the same data/
    md5 = dvc_repo.tracked_md5(paths.root)
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("data.dvc", ".dvcignore"):
        shutil.copy(paths.root / name, clone / name)
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    dvc_repo.init(clone)
    dvc_repo.run_dvc(clone, "remote", "add", "-d", "shared", str(remote), capture=True)
    dvc_repo.run_dvc(clone, "pull", "--quiet", capture=True)
    assert dvc_repo.tracked_md5(clone) == md5
    assert dvc_repo.status_clean(clone)
    assert (clone / "data" / "champion" / "model.safetensors").read_bytes() == \
        (paths.champion / "model.safetensors").read_bytes()


class registry_scratch:
    def __init__(self, root: Path) -> None:
        self.path = root / "scratch"

    def __enter__(self) -> Path:
        self.path.mkdir()
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path)
