"""Offline incremental learning: batches accumulate until enough new examples wait, then train together."""

from __future__ import annotations

from ratchet import store
from ratchet.continual.buffer import ReplayBuffer
from ratchet.batch_state import BatchStates
from tests.conftest import synthetic_frame
from tests.integration.conftest import drop, project_with_champion


def test_batches_accumulate_train_together_then_roll_back(tmp_path, champion_template, prefect_harness,
                                                         no_tracking_server):
    from flows.watch import watch

    paths = project_with_champion(champion_template, tmp_path / "project",
                                  {"policy.train_on": "min_new_examples", "policy.min_new_examples": 60})
    drop(paths, "01-blue-part-one.csv", synthetic_frame({"blue": 40}, seed=1, prefix="p1"), minute=1)
    drop(paths, "02-blue-part-two.csv", synthetic_frame({"blue": 40}, seed=2, prefix="p2"), minute=2)
    rows = {row["file"]: row for row in watch(str(paths.root))}

    first, second = rows["01-blue-part-one.csv"], rows["02-blue-part-two.csv"]
    assert first["state"] == second["state"] == "promoted"
    assert first["details"]["version"] == second["details"]["version"], "one candidate for both batches"
    history = [e.state for e in BatchStates(paths).events() if e.batch_id == first["batch_id"]]
    assert history == ["received", "accumulated", "promoted"]
    assert "30 < 60" in next(e.reason for e in BatchStates(paths).events()
                             if e.batch_id == first["batch_id"] and e.state == "accumulated")
    assert set(store.batches_with_status(paths, "trained")) == {"reference", first["batch_id"], second["batch_id"]}
    assert store.champion_manifest(paths).trained_batches[-2:] == [first["batch_id"], second["batch_id"]]

    # ...then someone rolls the champion back: data/champion, aliases, catalog and ledger follow.
    from typer.testing import CliRunner

    from ratchet import dvc_repo, registry
    from ratchet.cli import app
    from ratchet.config import load_settings

    rolled_back_version = rows["01-blue-part-one.csv"]["details"]["version"]
    result = CliRunner().invoke(app, ["rollback", "--reason", "complaints from support", "--project", str(paths.root)])
    assert result.exit_code == 0, result.output
    settings = load_settings(paths.params)
    champion = store.champion_manifest(paths)
    assert champion.trained_batches == ["reference"]
    assert champion.version == "1" and champion.kind == "full"
    assert (paths.champion / "model.safetensors").exists()
    assert registry.champion_version(paths, settings) == champion.version != rolled_back_version
    assert registry.previous_version(paths, settings) is None
    assert set(store.batches_with_status(paths, "rejected")) == {first["batch_id"], second["batch_id"]}
    states = {e.file: (e.state, e.reason) for e in BatchStates(paths).current()}
    assert states["01-blue-part-one.csv"][0] == "rejected" and "complaints from support" in states["01-blue-part-one.csv"][1]
    last = registry.alias_history(paths, settings)[-1]
    assert (last.alias, last.from_version, last.to_version) == ("champion", rolled_back_version, champion.version)
    assert dvc_repo.status_clean(paths.root)
    again = CliRunner().invoke(app, ["rollback", "--reason", "twice", "--project", str(paths.root)])
    assert again.exit_code == 2 and "nothing to roll back to" in again.output

    # ...and once the complaint is cleared, the rolled-back version is promoted again, through the gate.
    back = CliRunner().invoke(app, ["promote", rolled_back_version, "--reason", "complaint resolved",
                                    "--project", str(paths.root)])
    assert back.exit_code == 0, back.output
    assert registry.champion_version(paths, settings) == rolled_back_version
    assert set(store.batches_with_status(paths, "trained")) == {"reference", first["batch_id"], second["batch_id"]}
    assert BatchStates(paths).current()[-1].state == "promoted"
    last = registry.alias_history(paths, settings)[-1]
    assert last.to_version == rolled_back_version and "gate passed: complaint resolved" in last.reason
    buffer = ReplayBuffer.load(paths.replay_buffer, "class_balanced", 1000)
    assert set(buffer.rows["batch_id"]) == {"reference", first["batch_id"], second["batch_id"]}
    assert dvc_repo.status_clean(paths.root)


def test_schedule_accumulates_until_a_later_run_finds_the_interval_passed(tmp_path, champion_template, prefect_harness,
                                                                         no_tracking_server):
    from datetime import datetime, timedelta

    from flows.watch import watch

    paths = project_with_champion(champion_template, tmp_path / "project",
                                  {"policy.train_on": "schedule", "policy.every_hours": 1})
    drop(paths, "01-blue.csv", synthetic_frame({"blue": 40}, seed=1, prefix="s1"), minute=1)
    first = {row["file"]: row for row in watch(str(paths.root))}["01-blue.csv"]
    assert first["state"] == "accumulated" and "policy schedule" in first["reason"]  # the first champion is fresh

    # The clock moves on: the last training ended two hours ago. A run with no new file trains the batch.
    import sqlite3

    with sqlite3.connect(paths.state_db) as db:
        for seq, at in db.execute("SELECT seq, at FROM batch_events").fetchall():
            earlier = (datetime.fromisoformat(at) - timedelta(hours=2)).isoformat(timespec="seconds")
            db.execute("UPDATE batch_events SET at = ? WHERE seq = ?", (earlier, seq))
    again = {row["file"]: row for row in watch(str(paths.root))}["01-blue.csv"]
    assert again["state"] == "promoted"
    history = [e.state for e in BatchStates(paths).events() if e.batch_id == first["batch_id"]]
    assert history == ["received", "accumulated", "accepted", "promoted"]
