"""Recovery decisions of a batch's life, from the ledger and the catalog alone."""

import shutil
from pathlib import Path

from ratchet import recovery, store
from ratchet.batch_state import BatchState, BatchStates
from ratchet.paths import ProjectPaths
from ratchet.project import Project
from tests.conftest import synthetic_frame

REPO = Path(__file__).resolve().parents[2]


def project(tmp_path) -> Project:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    paths = ProjectPaths.at(tmp_path)
    frame = synthetic_frame({"red": 10, "green": 10}).assign(label=lambda f: f["label"].map(
        {"red": "business", "green": "politics"}))
    store.create_reference(paths, frame, source="test", eval_fraction=0.25)
    return Project.load(tmp_path)


def test_first_champion_is_needed_and_recorded_once(tmp_path):
    loaded = project(tmp_path)
    assert recovery.needs_first_champion(loaded)
    assert not recovery.has_unfinished_training(loaded)
    recovery.open_reference_arrival(loaded)
    recovery.open_reference_arrival(loaded)
    assert [(e.batch_id, e.state) for e in BatchStates(loaded.paths).current()] == [("reference", "accepted")]
    assert recovery.has_unfinished_training(loaded)


def test_accumulated_batches_wait_but_a_crashed_training_resumes(tmp_path):
    loaded = project(tmp_path)
    paths = loaded.paths
    states = BatchStates(paths)
    states.move(1, "reference", "data/reference", BatchState.PROMOTED, "first champion")
    assert store.batches_with_status(paths, "trained") == ["reference"], "the catalog follows the ledger"
    store.accept_batch(paths, "b-1", synthetic_frame({"red": 10}), "one.csv", 0.25)
    states.move(2, "b-1", "one.csv", BatchState.RECEIVED)
    states.move(2, "b-1", "one.csv", BatchState.ACCUMULATED, "waiting")
    assert not recovery.has_unfinished_training(loaded)
    store.accept_batch(paths, "b-2", synthetic_frame({"red": 10}, prefix="two"), "two.csv", 0.25)
    states.move(3, "b-2", "two.csv", BatchState.RECEIVED)
    states.move(3, "b-2", "two.csv", BatchState.ACCEPTED, "policy says train")
    assert recovery.has_unfinished_training(loaded), "accepted for training but never concluded"
    states.move_batches(["b-1", "b-2"], BatchState.REJECTED, "gate said no",
                        from_states=[BatchState.ACCEPTED, BatchState.ACCUMULATED])
    assert not recovery.has_unfinished_training(loaded)
    assert store.batches_with_status(paths, "rejected") == ["b-1", "b-2"]
