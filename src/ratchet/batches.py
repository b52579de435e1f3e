"""Incoming batch files: read and normalise them, hash their content, and keep the ledger of states."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ratchet import atomic
from ratchet.config import DataSettings

log = logging.getLogger("ratchet")

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json")
TERMINAL_STATES = ("promoted", "rejected", "quarantined", "accumulated", "duplicate")


class BatchReadError(ValueError):
    """A batch file could not be read at all (unknown format, corrupt file)."""


def list_incoming(incoming: Path) -> list[Path]:
    """Batch files waiting in the landing zone, oldest first (arrival order), name as tie-breaker."""
    if not incoming.is_dir():
        return []
    files = [p for p in incoming.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def read_raw(path: Path) -> pd.DataFrame:
    """Read CSV, Parquet or JSON Lines as strings, keeping every column and row as found."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=True, dtype=False)
    except Exception as error:  # noqa: BLE001 - any parser failure is a bad file, named below
        raise BatchReadError(f"{path.name}: cannot be read as {suffix[1:]}: {error}") from error
    raise BatchReadError(f"{path.name}: unsupported file type {suffix!r}; use {SUPPORTED_SUFFIXES}")


def normalise(raw: pd.DataFrame, settings: DataSettings, batch_id: str) -> pd.DataFrame:
    """Map the configured columns to `id`, `text`, `label`; trim text; derive ids when absent.

    Columns are matched case-insensitively. A missing text or label column is left missing so that
    validation names it; other columns are kept for drift reports and lineage.
    """
    frame = raw.copy()
    by_lower = {str(column).strip().lower(): column for column in frame.columns}
    renames = {}
    for wanted, canonical in (
        (settings.text_column, "text"),
        (settings.label_column, "label"),
        (settings.id_column, "id"),
    ):
        found = by_lower.get(wanted.lower())
        if found is not None:
            renames[found] = canonical
    frame = frame.rename(columns=renames)
    if "text" in frame.columns:
        frame["text"] = frame["text"].map(lambda v: v.strip() if isinstance(v, str) else v)
    if "label" in frame.columns:
        frame["label"] = frame["label"].map(lambda v: str(v).strip() if v is not None and v == v else None)
    if "id" not in frame.columns:
        frame.insert(0, "id", [f"{batch_id}-{row}" for row in range(len(frame))])
    else:
        frame["id"] = frame["id"].map(lambda v: None if v is None or v != v else str(v))
    return frame.reset_index(drop=True)


def content_hash(raw: pd.DataFrame) -> str:
    """The batch id: a hash of the rows' content, independent of file format and column order."""
    digest = hashlib.sha256()
    columns = sorted(str(c) for c in raw.columns)
    digest.update(json.dumps(columns).encode())
    ordered = raw[[c for c in sorted(raw.columns, key=str)]]
    for row in ordered.itertuples(index=False, name=None):
        digest.update(json.dumps([None if v is None or v != v else str(v) for v in row]).encode())
    return "b-" + digest.hexdigest()[:12]


@dataclass
class LedgerEntry:
    """One event in a batch's life; the newest entry of an arrival is its current state."""

    arrival: int
    batch_id: str
    file: str
    state: str
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


class Ledger:
    """Append-only record of every batch arrival and its states (JSON Lines, rewritten atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[LedgerEntry]:
        if not self.path.exists():
            return []
        entries = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append(LedgerEntry(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as error:
                raise ValueError(f"{self.path}: line {number} is not a ledger entry: {error}") from None
        return entries

    def append(self, entry: LedgerEntry) -> LedgerEntry:
        lines = [json.dumps(asdict(e), sort_keys=True) for e in self.entries()]
        lines.append(json.dumps(asdict(entry), sort_keys=True))
        atomic.write_text(self.path, "\n".join(lines) + "\n")
        log.info("ledger: %s (%s) -> %s%s", entry.batch_id, entry.file, entry.state,
                 f": {entry.reason}" if entry.reason else "")
        return entry

    def next_arrival(self) -> int:
        return max((e.arrival for e in self.entries()), default=0) + 1

    def current(self) -> list[LedgerEntry]:
        """The newest entry of every arrival, in arrival order."""
        newest: dict[int, LedgerEntry] = {}
        for entry in self.entries():
            newest[entry.arrival] = entry
        return [newest[a] for a in sorted(newest)]

    def seen(self, batch_id: str) -> LedgerEntry | None:
        """The first non-duplicate arrival of this content, if any."""
        for entry in self.current():
            if entry.batch_id == batch_id and entry.state != "duplicate":
                return entry
        return None

    def record(self, arrival: int, batch_id: str, file: str, state: str, reason: str = "",
               metrics: dict[str, Any] | None = None, details: dict[str, Any] | None = None) -> LedgerEntry:
        return self.append(LedgerEntry(arrival=arrival, batch_id=batch_id, file=file, state=state,
                                       reason=reason, metrics=metrics or {}, details=details or {}))
