"""Recovery: a crashed flow run resumes after its last finished task, I/O steps retry without
registering twice, and the ledger (not Prefect's run state) reconciles half-finished batches."""

from __future__ import annotations

import json
import shutil

import pytest

from ratchet import dvc_repo, lifecycle, registry, store
from ratchet.batches import Ledger
from ratchet.config import load_settings
from tests.conftest import synthetic_frame
from tests.integration.conftest import drop, make_project


def test_a_retried_flow_run_resumes_after_its_last_finished_task(tmp_path, tiny_model_dir, prefect_harness,
                                                                no_tracking_server, monkeypatch):
    from flows.watch import watch

    paths = make_project(tmp_path / "project", tiny_model_dir, {"orchestration.io_retry_delay_s": 0})
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
    rows = watch.with_options(retries=1, retry_delay_seconds=0)(str(paths.root))

    assert {r["file"]: r["state"] for r in rows} == {"data/reference": "promoted", "01-blue.csv": "promoted"}
    assert len(trainings) == 2, "the retried flow run reused the finished `dvc repro` of the first champion"
    settings = load_settings(paths.params)
    import mlflow

    uri = f"sqlite:///{paths.mlflow_db}"
    versions = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions(
        f"name = '{settings.project.registered_model}'")
    assert sorted(int(v.version) for v in versions) == [1, 2], "each attempt registered once despite retries"
    records = list(paths.prefect_results.iterdir())
    assert records, "task results persisted"
    for record in records:
        assert json.loads(record.read_bytes())["metadata"]["serializer"]["type"] == "ratchet-json"


def test_reconcile_finishes_what_an_interrupted_run_left(tmp_path, tiny_model_dir, no_tracking_server):
    from ratchet.validation import quarantine

    paths = make_project(tmp_path / "project", tiny_model_dir)
    root = str(paths.root)
    accepted = drop(paths, "01-accepted.csv", synthetic_frame({"blue": 30}, seed=1, prefix="a"), minute=1)
    quarantined = drop(paths, "02-quarantined.csv", synthetic_frame({"red": 30}, seed=2, prefix="q"), minute=2)
    lost = drop(paths, "03-lost.csv", synthetic_frame({"green": 30}, seed=3, prefix="l"), minute=3)
    lost_copy = lost.read_bytes()
    arrivals = {p.name: lifecycle.receive(root, str(p)) for p in (accepted, quarantined, lost)}

    # killed after data/ took the batch and the file was archived, before the ledger said so
    first = arrivals["01-accepted.csv"]
    _, frame = lifecycle._load_batch(accepted, load_settings(paths.params))
    store.accept_batch(paths, first.batch_id, frame, source=first.file, eval_fraction=0.25)
    (paths.archive / first.batch_id).mkdir(parents=True)
    shutil.move(str(accepted), paths.archive / first.batch_id / first.file)
    # killed after the quarantine, before the ledger
    second = arrivals["02-quarantined.csv"]
    quarantine(quarantined, paths.quarantine / second.batch_id, second.batch_id, "label column empty", None)
    # the file vanished
    lost.unlink()

    fixed = lifecycle.reconcile(root)
    assert len(fixed) == 3
    states = {e.file: e for e in Ledger(paths.ledger).current()}
    assert states["01-accepted.csv"].state == "accepted"  # every_batch: the flow trains it next
    assert lifecycle.has_unfinished_training(root)
    assert states["02-quarantined.csv"].state == "quarantined"
    assert states["02-quarantined.csv"].reason == "label column empty"
    assert states["03-lost.csv"].state == "failed" and "drop it into incoming/ again" in states["03-lost.csv"].reason
    assert lifecycle.reconcile(root) == [], "nothing left to fix"

    # the lost file dropped again is processed under its old arrival, not called a duplicate
    (paths.incoming / "03-lost.csv").write_bytes(lost_copy)
    again = lifecycle.receive(root, str(paths.incoming / "03-lost.csv"))
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
    root = str(paths.root)

    assert sorted(lifecycle.fetch_remote(root)) == ["a.csv", "b.jsonl"]
    assert (paths.incoming / "a.csv").read_bytes() == (bucket / "a.csv").read_bytes()
    assert (bucket / "a.csv").exists(), "the source is never modified"
    assert lifecycle.fetch_remote(root) == [], "fetched once"
    (paths.incoming / "a.csv").unlink()
    synthetic_frame({"blue": 25}, seed=3, prefix="z").to_csv(bucket / "a.csv", index=False)
    assert lifecycle.fetch_remote(root) == ["a.csv"], "a rewritten object is fetched again"

    with pytest.raises(RemoteIncomingError, match="no such prefix"):
        from ratchet.remote_incoming import fetch_incoming

        fetch_incoming(paths, (tmp_path / "nowhere").as_uri())
