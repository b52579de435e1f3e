"""Recovery: a crashed flow run resumes after its last finished task, I/O steps retry without
registering twice, and the ledger (not Prefect's run state) reconciles half-finished batches.
Beyond one machine by configuration only: MLflow against a real `mlflow server` on loopback, DVC
pushing data/ to a remote (a local path here; S3 in production, docs/deploy.md)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from ratchet import dvc_repo, intake, recovery, registry, store
from ratchet.batch_state import BatchStates
from ratchet.config import load_settings
from ratchet.project import Project
from tests.conftest import synthetic_frame
from tests.servers import TrackingServer
from tests.integration.conftest import drop, make_project


@pytest.fixture
def mlflow_server(tmp_path):
    server = TrackingServer(tmp_path)
    server.start()
    yield server.url, server.artifacts
    server.stop()


@pytest.mark.slow
def test_a_retried_flow_run_resumes_after_its_last_finished_task(tmp_path, tiny_model_dir, prefect_harness,
                                                                mlflow_server, monkeypatch):
    """Against a real `mlflow server` on loopback and a DVC remote: the register step loses the
    server's answer (retried by the task), then fails for good (the flow run fails and is retried)."""
    from flows.watch import watch

    url, server_artifacts = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    paths = make_project(tmp_path / "project", tiny_model_dir, {"orchestration.io_retry_delay_s": 0})
    remote = tmp_path / "dvc-remote"
    dvc_repo.run_dvc(paths.root, "remote", "add", "-d", "shared", str(remote), capture=True)
    drop(paths, "01-blue.csv", synthetic_frame({"blue": 40}, seed=1, prefix="b1"), minute=1)
    trainings = []
    real_repro, real_log_attempt = dvc_repo.repro, registry.log_attempt
    monkeypatch.setattr(dvc_repo, "repro", lambda root: (trainings.append(root), real_repro(root)))
    calls = []

    def tracking_server_trouble(*args, **kwargs):
        calls.append(1)
        record = real_log_attempt(*args, **kwargs)
        if len(calls) == 1:  # the server logged it, then the answer was lost: the task retries
            raise ConnectionError("tracking server connection reset")
        if len(calls) == 2:  # not transient: the task fails, so does the flow run
            raise RuntimeError("worker lost")
        return record

    monkeypatch.setattr(registry, "log_attempt", tracking_server_trouble)
    rows = {r["file"]: r for r in watch.with_options(retries=1, retry_delay_seconds=0)(str(paths.root))}

    assert {f: r["state"] for f, r in rows.items()} == {"data/reference": "promoted", "01-blue.csv": "promoted"}
    assert len(trainings) == 2, "the retried flow run reused the finished `dvc repro` of the first champion"
    records = list(paths.prefect_results.iterdir())
    assert records, "task results persisted"
    for record in records:
        assert json.loads(record.read_bytes())["metadata"]["serializer"]["type"] == "ratchet-json"

    # the registry lives on the server, not in the project; each attempt registered once
    assert not paths.mlflow_db.exists()
    settings = load_settings(paths.params)
    import mlflow

    versions = mlflow.MlflowClient(tracking_uri=url, registry_uri=url).search_model_versions(
        f"name = '{settings.project.registered_model}'")
    assert sorted(int(v.version) for v in versions) == [1, 2], "each attempt registered once despite retries"
    assert registry.champion_version(paths, settings) == rows["01-blue.csv"]["details"]["version"] == "2"
    assert [e.to_version for e in registry.alias_history(paths, settings) if e.alias == "champion"] == ["1", "2"]
    assert any(server_artifacts.rglob("model.safetensors")), "artifacts went through the server's store"
    model_dir, manifest = registry.download_champion(paths, settings, "2", tmp_path / "scratch")
    assert (model_dir / "ratchet_model.json").exists() and manifest.version == "2"

    # every accepted batch and the new champion were pushed: a fresh checkout pulls the same data/
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("data.dvc", ".dvcignore"):
        shutil.copy(paths.root / name, clone / name)
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    dvc_repo.init(clone)
    dvc_repo.run_dvc(clone, "remote", "add", "-d", "shared", str(remote), capture=True)
    dvc_repo.run_dvc(clone, "pull", "--quiet", capture=True)
    assert dvc_repo.tracked_md5(clone) == dvc_repo.tracked_md5(paths.root)
    assert dvc_repo.status_clean(clone)
    assert (clone / "data" / "champion" / "model.safetensors").read_bytes() == \
        (paths.champion / "model.safetensors").read_bytes()


def test_reconcile_finishes_what_an_interrupted_run_left(tmp_path, tiny_model_dir, no_tracking_server):
    from ratchet.validation import quarantine

    paths = make_project(tmp_path / "project", tiny_model_dir)
    project = Project.load(paths.root)
    accepted = drop(paths, "01-accepted.csv", synthetic_frame({"blue": 30}, seed=1, prefix="a"), minute=1)
    quarantined = drop(paths, "02-quarantined.csv", synthetic_frame({"red": 30}, seed=2, prefix="q"), minute=2)
    lost = drop(paths, "03-lost.csv", synthetic_frame({"green": 30}, seed=3, prefix="l"), minute=3)
    lost_copy = lost.read_bytes()
    arrivals = {p.name: intake.receive(project, str(p)) for p in (accepted, quarantined, lost)}

    # killed after data/ took the batch and the file was archived, before the ledger said so
    first = arrivals["01-accepted.csv"]
    _, frame = intake.load_batch(accepted, project.settings)
    store.accept_batch(paths, first.batch_id, frame, source=first.file, eval_fraction=0.25)
    (paths.archive / first.batch_id).mkdir(parents=True)
    shutil.move(str(accepted), paths.archive / first.batch_id / first.file)
    # killed after the quarantine, before the ledger
    second = arrivals["02-quarantined.csv"]
    quarantine(quarantined, paths.quarantine / second.batch_id, second.batch_id, "label column empty", None)
    # the file vanished
    lost.unlink()

    fixed = recovery.reconcile(project)
    assert len(fixed) == 3
    states = {e.file: e for e in BatchStates(paths).current()}
    assert states["01-accepted.csv"].state == "accepted"  # every_batch: the flow trains it next
    assert recovery.has_unfinished_training(project)
    assert states["02-quarantined.csv"].state == "quarantined"
    assert states["02-quarantined.csv"].reason == "label column empty"
    assert states["03-lost.csv"].state == "failed" and "drop it into incoming/ again" in states["03-lost.csv"].reason
    assert recovery.reconcile(project) == [], "nothing left to fix"

    # the lost file dropped again is processed under its old arrival, not called a duplicate
    (paths.incoming / "03-lost.csv").write_bytes(lost_copy)
    again = intake.receive(project, str(paths.incoming / "03-lost.csv"))
    assert (again.state, again.arrival) == ("received", arrivals["03-lost.csv"].arrival)


def test_new_files_are_fetched_once_from_an_fsspec_url(tmp_path, tiny_model_dir):
    from ratchet.remote_incoming import RemoteIncomingError

    bucket = tmp_path / "bucket" / "prefix"
    bucket.mkdir(parents=True)
    paths = make_project(tmp_path / "project", tiny_model_dir,
                         {"orchestration.incoming_url": bucket.as_uri()})
    synthetic_frame({"blue": 20}, seed=1, prefix="x").to_csv(bucket / "a.csv", index=False)
    synthetic_frame({"red": 20}, seed=2, prefix="y").to_json(bucket / "b.jsonl", orient="records", lines=True)
    (bucket / "notes.txt").write_text("not a batch")
    project = Project.load(paths.root)

    assert sorted(intake.fetch_remote(project)) == ["a.csv", "b.jsonl"]
    assert (paths.incoming / "a.csv").read_bytes() == (bucket / "a.csv").read_bytes()
    assert (bucket / "a.csv").exists(), "the source is never modified"
    assert intake.fetch_remote(project) == [], "fetched once"
    (paths.incoming / "a.csv").unlink()
    synthetic_frame({"blue": 25}, seed=3, prefix="z").to_csv(bucket / "a.csv", index=False)
    assert intake.fetch_remote(project) == ["a.csv"], "a rewritten object is fetched again"

    with pytest.raises(RemoteIncomingError, match="no such prefix"):
        from ratchet.remote_incoming import fetch_incoming

        fetch_incoming(paths, (tmp_path / "nowhere").as_uri())
