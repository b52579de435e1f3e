"""The batch state machine: legal moves only, the ledger appended (never rewritten), the catalog
status a projection of the ledger."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ratchet import store
from ratchet.batch_state import (TRANSITIONS, BatchState, BatchStates, IllegalTransition, JsonLinesLog,
                                 LedgerError)
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
    states = BatchStates(paths, JsonLinesLog(paths.ledger))
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
    states = BatchStates(paths, JsonLinesLog(paths.ledger))
    states.move(1, "b-1", "one.csv", S.RECEIVED)
    with paths.ledger.open("a") as handle:
        handle.write('{"arrival": 1, "batch_')          # a crash mid-append
    assert [e.state for e in states.events()] == ["received"]
    paths.ledger.write_text('{"arrival": 1}\n' + paths.ledger.read_text())
    with pytest.raises(LedgerError, match="line 1 is not a ledger event"):
        states.events()


def test_the_state_store_is_a_database_with_one_transaction_per_transition(tmp_path):
    import sqlite3

    from ratchet.state_store import SqlEventLog, StateStoreError

    paths = project(tmp_path)
    states = BatchStates(paths)
    states.move(1, "b-1", "one.csv", S.RECEIVED)
    states.move(1, "b-1", "one.csv", S.ACCEPTED, "train now")
    with sqlite3.connect(paths.state_db) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT status FROM batch_status WHERE batch_id = 'b-1'").fetchone()[0] == "pending"
    assert store.batches_with_status(paths, "pending") == ["reference", "b-1"], "the catalog's copy follows"
    # a second writer that read the arrival before the move above is refused, never interleaved
    stale = BatchStates(paths).current()[0]
    log = SqlEventLog(paths)
    with pytest.raises(StateStoreError, match="another run moved it first"):
        log.append(stale, expected=S.RECEIVED)
    assert [e.state for e in states.events()] == ["received", "accepted"], "nothing written"


def test_an_old_jsonl_ledger_is_imported_once_and_a_bad_row_is_named(tmp_path):
    import sqlite3

    paths = project(tmp_path)
    old = BatchStates(paths, JsonLinesLog(paths.ledger))
    old.move(1, "b-1", "one.csv", S.RECEIVED)
    old.move(1, "b-1", "one.csv", S.ACCEPTED, "train now")
    states = BatchStates(paths)
    assert [(e.arrival, e.state, e.reason) for e in states.events()] == [(1, "received", ""),
                                                                        (1, "accepted", "train now")]
    assert not paths.ledger.exists() and paths.ledger.with_name("ledger.jsonl.imported").exists()
    assert len(BatchStates(paths).events()) == 2, "imported once"
    with sqlite3.connect(paths.state_db) as db:
        db.execute("UPDATE batch_events SET state = 'lost-in-space' WHERE seq = 2")
    with pytest.raises(LedgerError, match=r"row seq=2 \(arrival 1, batch b-1\)"):
        states.events()
