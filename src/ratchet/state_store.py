"""The batch state store: the ledger's events and each batch's catalog status in one database.

SQLAlchemy, so the backend is a URL: by default sqlite under the project (ratchet-state.db, WAL,
synchronous=FULL), and any SQLAlchemy URL (PostgreSQL in production) through RATCHET_STATE_URL, so
workers on several machines share the state without sharing a folder. Credentials belong in the
environment, not in params.yaml (which is committed). One project's rows are keyed by its MLflow
experiment name (params `project.experiment`), so several projects can share one database.

Each transition is one transaction: the newest event of the arrival is read, compared with the
state the caller moved from (compare-and-set: a concurrent writer makes it fail, never interleave),
the event inserted and the batch's status upserted. An existing ledger.jsonl is imported on first
use (in one transaction) and renamed ledger.jsonl.imported.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import (JSON, Column, Integer, MetaData, String, Table, Text, create_engine, event, insert,
                        select, text, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from ratchet.paths import ProjectPaths

if TYPE_CHECKING:   # batch_state imports this module
    from ratchet.batch_state import BatchEvent, BatchState

log = logging.getLogger("ratchet")

STATE_URL_ENV = "RATCHET_STATE_URL"

metadata = MetaData()
events_table = Table(
    "batch_events", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("project", String(200), nullable=False, index=True),
    Column("arrival", Integer, nullable=False),
    Column("batch_id", String(64), nullable=False),
    Column("file", Text, nullable=False),
    Column("state", String(32), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("metrics", JSON, nullable=False),
    Column("details", JSON, nullable=False),
    Column("at", String(40), nullable=False),
)
status_table = Table(
    "batch_status", metadata,
    Column("project", String(200), primary_key=True),
    Column("batch_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
)

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


class StateStoreError(RuntimeError):
    """The state store refused a write (another writer moved the arrival first) or holds a bad row."""


def state_url(paths: ProjectPaths) -> str:
    return os.environ.get(STATE_URL_ENV) or f"sqlite:///{paths.state_db}"


def project_key(paths: ProjectPaths) -> str:
    try:
        params = yaml.safe_load(paths.params.read_text()) or {}
        return str((params.get("project") or {}).get("experiment") or "ratchet")
    except (OSError, yaml.YAMLError):
        return "ratchet"


def engine_for(url: str) -> Engine:
    with _engines_lock:
        if url not in _engines:
            engine = create_engine(url, future=True)
            if engine.dialect.name == "sqlite":
                _configure_sqlite(engine)
            metadata.create_all(engine)
            _engines[url] = engine
        return _engines[url]


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(connection, _record) -> None:  # noqa: ANN001 - DB-API connection
        connection.isolation_level = None   # SQLAlchemy's "begin" below issues BEGIN itself
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:  # noqa: ANN001
        # take the write lock at BEGIN: the read-compare-insert of a transition cannot interleave
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class SqlEventLog:
    """The `EventLog` of ratchet.batch_state in a database (see the module docstring)."""

    def __init__(self, paths: ProjectPaths, url: str | None = None) -> None:
        self.paths = paths
        self.url = url or state_url(paths)
        self.project = project_key(paths)
        self.engine = engine_for(self.url)
        self._import_jsonl_ledger()

    # the EventLog protocol ---------------------------------------------------------------------
    def append(self, event_: "BatchEvent", expected: "BatchState | None | object" = ...,
               status: str | None = None) -> None:
        """Insert one event; with `expected`, only if the arrival's newest state still is that
        (None: the arrival is new); with `status`, the batch's catalog status in the same transaction."""
        with self.engine.begin() as connection:
            self._serialise(connection)
            if expected is not ...:
                newest = connection.execute(
                    select(events_table.c.state).where(events_table.c.project == self.project,
                                                       events_table.c.arrival == event_.arrival)
                    .order_by(events_table.c.seq.desc()).limit(1)).scalar()
                if newest != (None if expected is None else str(expected)):
                    raise StateStoreError(f"arrival {event_.arrival} is {newest or 'new'} in the state store, not "
                                          f"{expected or 'new'}: another run moved it first; nothing written")
            connection.execute(insert(events_table).values(project=self.project, **_row(event_)))
            if status is not None:
                self._set_status(connection, event_.batch_id, status)

    def _serialise(self, connection) -> None:  # noqa: ANN001
        """One writer of this project's rows at a time, for the rest of the transaction: sqlite's
        BEGIN IMMEDIATE does it for sqlite (see _configure_sqlite); PostgreSQL takes an advisory
        lock on the project (not run in ratchet's tests: only sqlite is)."""
        if self.engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:project))"), {"project": self.project})

    def events(self) -> list["BatchEvent"]:
        from ratchet.batch_state import BatchEvent, BatchState, LedgerError

        with self.engine.connect() as connection:
            rows = connection.execute(select(events_table).where(events_table.c.project == self.project)
                                      .order_by(events_table.c.seq)).mappings().all()
        events = []
        for row in rows:
            try:
                metrics, details = _mapping(row["metrics"]), _mapping(row["details"])
                events.append(BatchEvent(arrival=int(row["arrival"]), batch_id=str(row["batch_id"]),
                                         file=str(row["file"]), state=BatchState(row["state"]),
                                         reason=str(row["reason"] or ""), metrics=metrics, details=details,
                                         at=str(row["at"])))
            except (TypeError, ValueError) as error:
                raise LedgerError(f"{self.url}: table batch_events, row seq={row['seq']} (arrival {row['arrival']}, "
                                  f"batch {row['batch_id']}) is not a ledger event: {error}") from None
        return events

    # catalog status ----------------------------------------------------------------------------
    def statuses(self) -> dict[str, str]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(status_table.c.batch_id, status_table.c.status)
                                      .where(status_table.c.project == self.project)).all()
        return {batch_id: status for batch_id, status in rows}

    def set_statuses(self, statuses: dict[str, str]) -> None:
        with self.engine.begin() as connection:
            for batch_id, status in statuses.items():
                self._set_status(connection, batch_id, status)

    def _set_status(self, connection, batch_id: str, status: str) -> None:  # noqa: ANN001
        changed = connection.execute(update(status_table).where(
            status_table.c.project == self.project, status_table.c.batch_id == batch_id).values(status=status))
        if changed.rowcount == 0:
            try:
                with connection.begin_nested():
                    connection.execute(insert(status_table).values(project=self.project, batch_id=batch_id,
                                                                   status=status))
            except IntegrityError:   # inserted by a concurrent writer meanwhile
                connection.execute(update(status_table).where(
                    status_table.c.project == self.project, status_table.c.batch_id == batch_id)
                    .values(status=status))

    # migration ---------------------------------------------------------------------------------
    def _import_jsonl_ledger(self) -> None:
        from ratchet.batch_state import JsonLinesLog

        legacy = self.paths.ledger
        if not legacy.exists():
            return
        imported = JsonLinesLog(legacy).events()
        with self.engine.begin() as connection:
            present = connection.execute(select(events_table.c.seq).where(
                events_table.c.project == self.project).limit(1)).first()
            if present is None and imported:
                connection.execute(insert(events_table), [{"project": self.project, **_row(e)} for e in imported])
        target = legacy.with_name(legacy.name + ".imported")
        legacy.rename(target)
        log.warning("state store: %d ledger event(s) imported from %s into %s (the file is kept as %s)",
                    len(imported) if present is None else 0, legacy, self.url, target.name)


def _row(event_: "BatchEvent") -> dict[str, Any]:
    raw = asdict(event_)
    return {**raw, "state": str(event_.state), "metrics": _jsonable(raw["metrics"]),
            "details": _jsonable(raw["details"])}


def _jsonable(value: dict) -> dict:
    return json.loads(json.dumps(value, default=str))


def _mapping(value: object) -> dict:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, found {type(value).__name__}")
    return value


def export_jsonl(events: list["BatchEvent"], target: Path | None = None) -> str:
    """The ledger as JSON Lines (one event a line, oldest first): the human-readable export."""
    text = "".join(json.dumps({**asdict(e), "state": str(e.state)}, sort_keys=True) + "\n" for e in events)
    if target is not None:
        target.write_text(text, encoding="utf-8")
    return text

