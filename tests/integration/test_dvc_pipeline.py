"""dvc repro on a real DVC repo: skips when nothing changed, reproduces the same metrics on CPU."""

from __future__ import annotations

import json

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
    dvc_repo.repro(paths.root)
    assert (paths.root / "dvc.lock").read_text() == lock_before

    dvc_repo.run_dvc(paths.root, "repro", "--force", capture=True)
    assert json.loads(paths.eval_metrics.read_text()) == first
    assert (paths.root / "dvc.lock").read_text() == lock_before, "same seeds, same outputs, same hashes"
