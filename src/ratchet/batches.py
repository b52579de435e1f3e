"""Incoming batch files: list, read and normalise them, and hash their content (the batch id)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pandas as pd

from ratchet.config import DataSettings

log = logging.getLogger("ratchet")

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json")


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
