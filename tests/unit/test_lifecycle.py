"""Reconciliation decisions of the batch lifecycle, from the ledger and the catalog alone."""

import shutil
from pathlib import Path

from ratchet import lifecycle, store
from ratchet.batches import Ledger
from ratchet.paths import ProjectPaths
from tests.conftest import synthetic_frame

REPO = Path(__file__).resolve().parents[2]


def project(tmp_path) -> ProjectPaths:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    paths = ProjectPaths.at(tmp_path)
    frame = synthetic_frame({"red": 10, "green": 10}).assign(label=lambda f: f["label"].map(
        {"red": "business", "green": "politics"}))
    store.create_reference(paths, frame, source="test", eval_fraction=0.25)
    return paths


def test_first_champion_is_needed_and_recorded_once(tmp_path):
    paths = project(tmp_path)
    root = str(paths.root)
    assert lifecycle.needs_first_champion(root)
    assert not lifecycle.has_unfinished_training(root)
    lifecycle.open_reference_arrival(root)
    lifecycle.open_reference_arrival(root)
    assert [(e.batch_id, e.state) for e in Ledger(paths.ledger).current()] == [("reference", "accepted")]
    assert lifecycle.has_unfinished_training(root)


def test_accumulated_batches_wait_but_a_crashed_training_resumes(tmp_path):
    paths = project(tmp_path)
    root = str(paths.root)
    store.set_status(paths, ["reference"], "trained")
    ledger = Ledger(paths.ledger)
    store.accept_batch(paths, "b-1", synthetic_frame({"red": 10}), "one.csv", 0.25)
    ledger.record(1, "b-1", "one.csv", "accumulated", "waiting")
    assert not lifecycle.has_unfinished_training(root)
    store.accept_batch(paths, "b-2", synthetic_frame({"red": 10}, prefix="two"), "two.csv", 0.25)
    ledger.record(2, "b-2", "two.csv", "accepted", "policy says train")
    assert lifecycle.has_unfinished_training(root), "accepted for training but never concluded"
    store.set_status(paths, ["b-1", "b-2"], "rejected")
    assert not lifecycle.has_unfinished_training(root)
