"""A batch's one state machine: the states, the legal moves, and the only writer of both records.

Every arrival of a file has a life of events (the ledger); its newest event is its state. Each
accepted batch has a status (pending, trained, rejected) that its state implies. Both live in the
state store (ratchet.state_store: a database, sqlite under the project by default), written by
`BatchStates.move` in one transaction that also checks the arrival still stands where the move
started (compare-and-set). The catalog in data/ (DVC-tracked, read by the pipeline's stages) holds
a copy of the statuses, written right after; a crash between the two is healed by
`project_catalog`, which re-derives every status from the ledger. Nothing else writes either.

| state        | meaning                                                   | next states                  |
|--------------|-----------------------------------------------------------|------------------------------|
| received     | read and hashed; being validated / checked for drift       | received (a resumed run), quarantined, accepted, accumulated, promoted, rejected, failed |
| accumulated  | in data/, waiting for the training policy                  | accepted, promoted, rejected, failed |
| accepted     | in data/, the policy sent it to training                   | promoted, rejected, failed   |
| promoted     | part of the champion                                       | rejected (rolled back)       |
| rejected     | its candidate failed the gate (kept, never trained on)     | promoted (by hand)           |
| quarantined  | failed validation or could not be read                     | (final)                      |
| duplicate    | the same content arrived before                            | (final)                      |
| failed       | an unexpected error ended it (taken out of data/, file in quarantine/), or lost in an interrupted run | received (`ratchet retry`, or dropped again), quarantined (`ratchet drop`) |

A new arrival starts in received, duplicate or quarantined (the reference set: accepted; a batch
put into data/ outside the loop: promoted or rejected, at its first conclusion).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterable, Protocol

from ratchet import store
from ratchet.paths import ProjectPaths

log = logging.getLogger("ratchet")


class BatchState(StrEnum):
    RECEIVED = "received"
    ACCUMULATED = "accumulated"
    ACCEPTED = "accepted"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"
    FAILED = "failed"


S = BatchState
# None: a new arrival. Promoted/rejected from nothing: a batch put into data/ outside the loop
# (`ratchet init`'s reference set, an older project) gets its first event when it is concluded.
TRANSITIONS: dict[BatchState | None, frozenset[BatchState]] = {
    None: frozenset({S.RECEIVED, S.DUPLICATE, S.QUARANTINED, S.ACCEPTED, S.PROMOTED, S.REJECTED}),
    S.RECEIVED: frozenset({S.RECEIVED, S.QUARANTINED, S.ACCEPTED, S.ACCUMULATED, S.PROMOTED, S.REJECTED,
                           S.FAILED}),
    S.ACCUMULATED: frozenset({S.ACCEPTED, S.PROMOTED, S.REJECTED, S.FAILED}),
    S.ACCEPTED: frozenset({S.PROMOTED, S.REJECTED, S.FAILED}),
    S.PROMOTED: frozenset({S.REJECTED}),
    S.REJECTED: frozenset({S.PROMOTED}),
    S.QUARANTINED: frozenset(),
    S.DUPLICATE: frozenset(),
    S.FAILED: frozenset({S.RECEIVED, S.QUARANTINED}),   # retried (or dropped again); dropped for good
}
# Where each batch stands for good (accumulated waits, but is settled until the policy moves it).
TERMINAL = frozenset({S.PROMOTED, S.REJECTED, S.QUARANTINED, S.DUPLICATE, S.FAILED})
# content seen in one of these makes a new arrival of it a duplicate (a failed one is processed again)
SETTLED = (TERMINAL - {S.FAILED}) | {S.ACCUMULATED, S.ACCEPTED}
# The catalog status each state implies for an accepted batch (other states leave it as it is).
CATALOG_STATUS: dict[BatchState, store.BatchStatus] = {
    S.ACCUMULATED: "pending", S.ACCEPTED: "pending", S.PROMOTED: "trained", S.REJECTED: "rejected"}


class IllegalTransition(RuntimeError):
    """A move the state machine does not allow (a bug, or records edited by hand)."""


class LedgerError(ValueError):
    """A ledger event that cannot be read; names the file and line."""


@dataclass(frozen=True)
class BatchEvent:
    """One event in an arrival's life; the newest event of an arrival is its current state."""

    arrival: int
    batch_id: str
    file: str
    state: BatchState
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


_ANY = ...


class EventLog(Protocol):
    """Where events are kept: appended one at a time, read back in order.

    `expected`: the state the arrival must still stand in (None: new), checked in the same
    transaction as the write where the backend can; `status`: the batch's catalog status, written
    in that transaction too.
    """

    def append(self, event: BatchEvent, expected: BatchState | None | object = _ANY,
               status: str | None = None) -> None: ...

    def events(self) -> list[BatchEvent]: ...


class JsonLinesLog:
    """ledger.jsonl: one event a line, appended (flushed and fsynced), never rewritten. The format
    of older projects (imported into the state store on first use) and of `ratchet ledger`'s export;
    it holds no statuses and checks no `expected` state (one writer: the project's run lock).

    A torn last line (a crash mid-append) is skipped with a warning; any other unreadable line is
    an error that names it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, event: BatchEvent, expected: BatchState | None | object = _ANY,
               status: str | None = None) -> None:
        line = json.dumps({**asdict(event), "state": str(event.state)}, sort_keys=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def events(self) -> list[BatchEvent]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        lines = text.split("\n")
        events = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                events.append(BatchEvent(**{**raw, "state": BatchState(raw["state"])}))
            except (json.JSONDecodeError, TypeError, KeyError, ValueError) as error:
                if number == len(lines) and not text.endswith("\n"):
                    log.warning("%s: line %d is a torn write (an interrupted append); ignored", self.path, number)
                    continue
                raise LedgerError(f"{self.path}: line {number} is not a ledger event: {error}") from None
        return events


class BatchStates:
    """The state machine over one project's ledger and catalog."""

    def __init__(self, paths: ProjectPaths, log_: EventLog | None = None) -> None:
        from ratchet.state_store import SqlEventLog

        self.paths = paths
        self.log = log_ or SqlEventLog(paths)

    # reading ----------------------------------------------------------------------------------
    def events(self) -> list[BatchEvent]:
        return self.log.events()

    def current(self) -> list[BatchEvent]:
        """The newest event of every arrival, in arrival order."""
        newest: dict[int, BatchEvent] = {}
        for event in self.events():
            newest[event.arrival] = event
        return [newest[a] for a in sorted(newest)]

    def of_arrival(self, arrival: int) -> BatchEvent | None:
        return next((e for e in self.current() if e.arrival == arrival), None)

    def seen(self, batch_id: str) -> BatchEvent | None:
        """The first non-duplicate arrival of this content, if any."""
        return next((e for e in self.current() if e.batch_id == batch_id and e.state != S.DUPLICATE), None)

    def next_arrival(self) -> int:
        return max((e.arrival for e in self.events()), default=0) + 1

    # the one writer -----------------------------------------------------------------------------
    def move(self, arrival: int, batch_id: str, file: str, to: BatchState, reason: str = "",
             metrics: dict[str, Any] | None = None, details: dict[str, Any] | None = None) -> BatchEvent:
        """Move one arrival to `to` (a new arrival when it has no event yet); raises IllegalTransition."""
        current = self.of_arrival(arrival)
        self._check(arrival, current.state if current else None, to)
        event = BatchEvent(arrival=arrival, batch_id=batch_id, file=file, state=BatchState(to), reason=reason,
                           metrics=metrics or {}, details=details or {})
        self.log.append(event, expected=current.state if current else None, status=CATALOG_STATUS.get(to))
        log.info("ledger: %s (%s) -> %s%s", batch_id, file, event.state, f": {reason}" if reason else "")
        if to in CATALOG_STATUS:
            self.project_catalog([batch_id])
        return event

    def move_batches(self, batch_ids: Iterable[str], to: BatchState, reason: str, from_states: Iterable[BatchState],
                     update=lambda event: ({}, {})) -> list[BatchEvent]:
        """Move every arrival of these batches that stands in one of `from_states` to `to`.

        `update(event)` returns (metrics, details) merged into the event's own; the catalog is
        written once for all of them.
        """
        wanted, sources = set(batch_ids), set(from_states)
        moved = []
        current = self.current()
        known = {e.batch_id for e in current}
        sources_of = {e.batch_id: e.source for e in store.read_catalog(self.paths)}
        arrival = self.next_arrival()
        for batch_id in sorted(wanted - known):   # in data/ without an arrival: its first event
            self._check(arrival, None, to)
            self.log.append(BatchEvent(arrival=arrival, batch_id=batch_id, file=sources_of.get(batch_id, batch_id),
                                       state=to, reason=reason), expected=None, status=CATALOG_STATUS.get(to))
            arrival += 1
        for event in current:
            if event.batch_id not in wanted or event.state not in sources:
                continue
            self._check(event.arrival, event.state, to)
            metrics, details = update(event)
            new = BatchEvent(arrival=event.arrival, batch_id=event.batch_id, file=event.file, state=to,
                             reason=reason, metrics={**event.metrics, **metrics}, details={**event.details, **details})
            self.log.append(new, expected=event.state, status=CATALOG_STATUS.get(to))
            log.info("ledger: %s (%s) -> %s: %s", new.batch_id, new.file, to, reason)
            moved.append(new)
        if to in CATALOG_STATUS:
            self.project_catalog(wanted)
        return moved

    def project_catalog(self, batch_ids: Iterable[str] | None = None) -> list[str]:
        """Write the catalog status every (or each named) batch's ledger state implies; returns the
        batches whose status changed (after a crash between the ledger and the catalog)."""
        entries = store.read_catalog(self.paths)
        if not entries:
            return []
        wanted = None if batch_ids is None else set(batch_ids)
        state_of = {e.batch_id: e.state for e in self.current() if e.state != S.DUPLICATE}
        changed = []
        for entry in entries:
            implied = CATALOG_STATUS.get(state_of.get(entry.batch_id))
            if (wanted is None or entry.batch_id in wanted) and implied and implied != entry.status:
                entry.status = implied
                changed.append(entry.batch_id)
        if changed:
            store.write_catalog(self.paths, entries)
        set_statuses = getattr(self.log, "set_statuses", None)
        if set_statuses is not None and wanted is None:   # the store's copy follows the ledger too
            set_statuses({e.batch_id: e.status for e in entries})
        return changed

    @staticmethod
    def _check(arrival: int, current: BatchState | None, to: BatchState) -> None:
        if BatchState(to) not in TRANSITIONS[current]:
            where = f"state {current}" if current else "no state (a new arrival)"
            raise IllegalTransition(f"arrival {arrival}: {where} cannot move to {to}; allowed: "
                                    f"{', '.join(sorted(TRANSITIONS[current])) or 'none (final)'}")
