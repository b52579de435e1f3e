"""The batch state machine: legal moves only, the ledger appended (never rewritten), the catalog
status a projection of the ledger."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ratchet import store
from ratchet.batch_state import TRANSITIONS, BatchState, BatchStates, IllegalTransition, LedgerError
from ratchet.paths import ProjectPaths
from tests.conftest import synthetic_frame

REPO = Path(__file__).resolve().parents[2]
S = BatchState


def project(tmp_path) -> ProjectPaths:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    paths = ProjectPaths.at(tmp_path)
    store.create_reference(paths, synthetic_frame({"red": 10, "green": 10}), source="test", eval_fraction=0.25)
    store.accept_batch(paths, "b-1", synthetic_frame({"blue": 10}, prefix="b1"), "one.csv", 0.25)
    return paths


def test_the_ledger_keeps_history_and_reports_the_newest_state(tmp_path):
    states = BatchStates(project(tmp_path))
    states.move(1, "b-1", "one.csv", S.RECEIVED)
    states.move(1, "b-1", "one.csv", S.ACCEPTED, "train now")
    states.move(1, "b-1", "one.csv", S.PROMOTED, "ok")
    states.move(2, "b-1", "again.csv", S.DUPLICATE, "same content")
    assert len(states.events()) == 4
    assert [(e.arrival, e.state) for e in states.current()] == [(1, "promoted"), (2, "duplicate")]
    assert states.seen("b-1").file == "one.csv"
    assert states.next_arrival() == 3


def test_appending_never_rewrites_what_is_there(tmp_path):
    paths = project(tmp_path)
    states = BatchStates(paths)
    states.move(1, "b-1", "one.csv", S.RECEIVED)
    before = paths.ledger.read_bytes()
    inode = paths.ledger.stat().st_ino
    states.move(1, "b-1", "one.csv", S.ACCUMULATED, "waiting")
    after = paths.ledger.read_bytes()
    assert after.startswith(before) and after.count(b"\n") == 2
    assert paths.ledger.stat().st_ino == inode, "appended in place, not replaced by a rewritten copy"


def test_illegal_moves_raise_and_change_nothing(tmp_path):
    paths = project(tmp_path)
    states = BatchStates(paths)
    states.move(1, "b-1", "one.csv", S.RECEIVED)
    states.move(1, "b-1", "one.csv", S.QUARANTINED, "no text column")
    with pytest.raises(IllegalTransition, match="quarantined cannot move to promoted"):
        states.move(1, "b-1", "one.csv", S.PROMOTED)
    with pytest.raises(IllegalTransition, match="no state .* cannot move to accumulated"):
        states.move(2, "b-2", "two.csv", S.ACCUMULATED)
    assert [e.state for e in states.events()] == ["received", "quarantined"]
    assert TRANSITIONS[S.FAILED] == {S.RECEIVED, S.QUARANTINED}, "a failed batch is retried or dropped"
    assert all(S.FAILED in TRANSITIONS[s] for s in (S.RECEIVED, S.ACCUMULATED, S.ACCEPTED)), \
        "an error anywhere before the conclusion can end a batch failed"
    for final in (S.QUARANTINED, S.DUPLICATE):
        assert TRANSITIONS[final] == frozenset(), f"{final} is final"


def test_the_catalog_follows_the_ledger_and_is_healed_from_it(tmp_path):
    paths = project(tmp_path)
    states = BatchStates(paths)
    states.move(1, "b-1", "one.csv", S.RECEIVED)
    states.move(1, "b-1", "one.csv", S.ACCEPTED)
    assert store.batches_with_status(paths, "pending") == ["reference", "b-1"]
    states.move(1, "b-1", "one.csv", S.PROMOTED)
    assert store.batches_with_status(paths, "trained") == ["b-1"]
    # a crash between the two writes: the ledger says rejected, the catalog still says trained
    states.log.append(states.current()[0].__class__(arrival=1, batch_id="b-1", file="one.csv", state=S.REJECTED))
    assert store.batches_with_status(paths, "trained") == ["b-1"]
    assert states.project_catalog() == ["b-1"]
    assert store.batches_with_status(paths, "rejected") == ["b-1"]
    assert states.project_catalog() == [], "nothing left to heal"


def test_a_batch_without_an_arrival_gets_one_at_its_conclusion(tmp_path):
    paths = project(tmp_path)
    states = BatchStates(paths)
    moved = states.move_batches(["reference"], S.PROMOTED, "first champion", from_states=[S.ACCEPTED])
    assert moved == [] and [(e.batch_id, e.state, e.file) for e in states.current()] == [
        ("reference", "promoted", "test")]
    assert store.batches_with_status(paths, "trained") == ["reference"]


def test_a_torn_last_line_is_skipped_and_any_other_bad_line_is_named(tmp_path):
    paths = project(tmp_path)
    states = BatchStates(paths)
    states.move(1, "b-1", "one.csv", S.RECEIVED)
    with paths.ledger.open("a") as handle:
        handle.write('{"arrival": 1, "batch_')          # a crash mid-append
    assert [e.state for e in states.events()] == ["received"]
    paths.ledger.write_text('{"arrival": 1}\n' + paths.ledger.read_text())
    with pytest.raises(LedgerError, match="line 1 is not a ledger event"):
        states.events()
