"""Offline incremental learning: batches accumulate until enough new examples wait, then train together."""

from __future__ import annotations

from ratchet import store
from ratchet.batches import Ledger
from tests.conftest import synthetic_frame
from tests.integration.conftest import drop, make_project


def test_batches_accumulate_then_train_together(tmp_path, tiny_model_dir, prefect_harness, no_tracking_server):
    from flows.watch import watch

    paths = make_project(tmp_path / "project", tiny_model_dir,
                         {"policy.train_on": "min_new_examples", "policy.min_new_examples": 60})
    drop(paths, "01-blue-part-one.csv", synthetic_frame({"blue": 40}, seed=1, prefix="p1"), minute=1)
    drop(paths, "02-blue-part-two.csv", synthetic_frame({"blue": 40}, seed=2, prefix="p2"), minute=2)
    rows = {row["file"]: row for row in watch(str(paths.root))}

    first, second = rows["01-blue-part-one.csv"], rows["02-blue-part-two.csv"]
    assert first["state"] == second["state"] == "promoted"
    assert first["details"]["version"] == second["details"]["version"], "one candidate for both batches"
    history = [e.state for e in Ledger(paths.ledger).entries() if e.batch_id == first["batch_id"]]
    assert history == ["received", "accumulated", "promoted"]
    assert "30 < 60" in next(e.reason for e in Ledger(paths.ledger).entries()
                             if e.batch_id == first["batch_id"] and e.state == "accumulated")
    assert set(store.batches_with_status(paths, "trained")) == {"reference", first["batch_id"], second["batch_id"]}
    assert store.champion_manifest(paths)["trained_batches"][-2:] == [first["batch_id"], second["batch_id"]]
