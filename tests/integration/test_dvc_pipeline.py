"""dvc repro on a real DVC repo: skips when nothing changed, reproduces the same metrics on CPU."""

from __future__ import annotations

import json

import yaml

from ratchet import dvc_repo
from tests.integration.conftest import make_project


def test_repro_is_idempotent_and_reproducible(tmp_path, tiny_model_dir):
    paths = make_project(tmp_path / "project", tiny_model_dir)
    dvc_repo.repro(paths.root)
    first = json.loads(paths.eval_metrics.read_text())
    assert first["splits"]["reference"]["role"] == "new"
    assert json.loads(paths.gate_result.read_text())["checks"]

    status = dvc_repo.run_dvc(paths.root, "status", "--json", capture=True)
    assert json.loads(status) == {}, "nothing changed, so every stage is up to date"
    lock_before = (paths.root / "dvc.lock").read_text()
    lock_outs_before = lock_outs(paths, "prepare")
    dvc_repo.repro(paths.root)
    assert (paths.root / "dvc.lock").read_text() == lock_before

    dvc_repo.run_dvc(paths.root, "repro", "--force", capture=True)
    assert json.loads(paths.eval_metrics.read_text()) == first, "same seeds on CPU, same metrics"
    # The prepared data is byte-identical; weights are compared through the metrics above, since
    # BLAS may pick a different thread split under load and change the last bits of a float.
    assert lock_outs(paths, "prepare") == lock_outs_before


def lock_outs(paths, stage: str) -> list:
    lock = yaml.safe_load((paths.root / "dvc.lock").read_text())
    return lock["stages"][stage]["outs"]
