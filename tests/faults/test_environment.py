"""The environment fails, not the batch: the tracking server away during registration, a full disk
during an atomic write, the same file three times, a corrupted state-store row."""

from __future__ import annotations

import os
import sqlite3
import time

from typer.testing import CliRunner

from ratchet import dvc_repo, faultpoints, registry, store
from ratchet.batch_state import BatchStates
from ratchet.config import load_settings
from tests.conftest import synthetic_frame
from tests.faults.conftest import finish, start_run
from tests.integration.conftest import drop, make_project, project_with_champion
from tests.servers import TrackingServer

OUTAGE_S = 30


def test_the_tracking_server_stopped_during_registration_loses_no_batch(tmp_path, tiny_model_dir, fault_env):
    """The batch here is the reference set, whose candidate (the first champion) registers through
    the same step as every batch's: the server goes away as it registers and is back 30 s later."""
    server = TrackingServer(tmp_path)
    server.start()
    env = {**fault_env, "MLFLOW_TRACKING_URI": server.url}
    # MLflow's client retries its requests with backoff, and the register step retries 6 s, 12 s,
    # 24 s apart on top: between them the registration outlasts the outage
    paths = make_project(tmp_path / "project", tiny_model_dir,
                         {"orchestration.io_retries": 3, "orchestration.io_retry_delay_s": 6})
    reached = tmp_path / "reached"
    process = start_run(paths, env, "before_register:sleep", RATCHET_FAULT_SLEEP_S="5",
                        RATCHET_FAULT_REACHED=str(reached))
    deadline = time.monotonic() + 240
    while not reached.exists():
        assert process.poll() is None and time.monotonic() < deadline, finish(process, 10).output[-3000:]
        time.sleep(0.2)
    server.stop()                       # the server goes away as the batch registers...
    time.sleep(OUTAGE_S)
    server.start()                      # ...and comes back 30 s later
    back_at_ms = time.time() * 1000
    try:
        result = finish(process)
        if result.returncode != 0:      # the run gave up: the batch waits, the next run finishes it
            assert "the next `ratchet run` resumes it" in result.output, result.output[-4000:]
            result = finish(start_run(paths, env))
        assert result.returncode == 0, result.output[-4000:]
        states = {e.file: e.state for e in BatchStates(paths).current()}
        assert states == {"data/reference": "promoted"}, states
        os.environ["MLFLOW_TRACKING_URI"] = server.url
        settings = load_settings(paths.params)
        assert registry.champion_version(paths, settings) == store.champion_manifest(paths).version == "1"
        import mlflow

        version = mlflow.MlflowClient(tracking_uri=server.url).get_model_version("ratchet", "1")
        assert version.creation_timestamp >= back_at_ms, "registered after the outage, not before it"
        assert dvc_repo.status_clean(paths.root)
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        server.stop()


def test_a_full_disk_during_an_atomic_write_keeps_the_previous_state(tmp_path, champion_template, prefect_harness,
                                                                     no_tracking_server, monkeypatch):
    """No small tmpfs can be mounted without privileges, so ENOSPC is injected at the atomic-write
    layer (ratchet.atomic): the catalog write of the accept step fails as a full disk would."""
    from flows.watch import watch

    paths = project_with_champion(champion_template, tmp_path / "project")
    before_md5, before_catalog = dvc_repo.tracked_md5(paths.root), paths.catalog.read_bytes()
    drop(paths, "01-blue.csv", synthetic_frame({"blue": 40}, seed=1, prefix="d"), minute=1)
    faultpoints._fired.clear()
    monkeypatch.setenv("RATCHET_FAULT", "write:catalog.json:enospc")
    monkeypatch.setenv("RATCHET_FAULT_TIMES", "1")
    rows = {r["file"]: r for r in watch(str(paths.root))}
    blue = rows["01-blue.csv"]
    assert blue["state"] == "failed" and "No space left on device" in blue["reason"], blue
    assert paths.catalog.read_bytes() == before_catalog, "the catalog as it was"
    assert dvc_repo.tracked_md5(paths.root) == before_md5 and dvc_repo.status_clean(paths.root)
    assert (paths.quarantine / blue["batch_id"] / "01-blue.csv").exists(), "the file is kept for a retry"
    assert not list(paths.catalog.parent.glob(".catalog.json.*.tmp")), "no temporary file left behind"


def test_the_same_file_three_times_is_processed_once_and_a_bad_row_is_named(tmp_path, champion_template,
                                                                            prefect_harness, no_tracking_server):
    from flows.watch import watch
    from ratchet.cli import app

    # the policy waits for more examples: no training needed to see what happens to the copies
    paths = project_with_champion(champion_template, tmp_path / "project",
                                  {"policy.train_on": "min_new_examples", "policy.min_new_examples": 10_000})
    frame = synthetic_frame({"blue": 40}, seed=5, prefix="same")
    for minute, name in enumerate(("01-first.csv", "02-again.csv", "03-once-more.jsonl"), start=1):
        drop(paths, name, frame, minute)
    rows = {r["file"]: r for r in watch(str(paths.root))}
    assert [rows[f]["state"] for f in ("01-first.csv", "02-again.csv", "03-once-more.jsonl")] == \
        ["accumulated", "duplicate", "duplicate"]
    assert len({r["batch_id"] for f, r in rows.items() if f != "data/reference"}) == 1
    assert [e.batch_id for e in store.read_catalog(paths)].count(rows["01-first.csv"]["batch_id"]) == 1

    with sqlite3.connect(paths.state_db) as db:
        db.execute("UPDATE batch_events SET details = '[1, 2]' WHERE seq = (SELECT MAX(seq) FROM batch_events)")
        seq = db.execute("SELECT MAX(seq) FROM batch_events").fetchone()[0]
    result = CliRunner().invoke(app, ["status", "--project", str(paths.root)])
    assert result.exit_code == 2 and f"row seq={seq}" in result.output and "batch_events" in result.output
    assert "Traceback" not in result.output
