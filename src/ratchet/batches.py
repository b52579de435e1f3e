"""Incoming batch files: list, read and normalise them, and hash their content (the batch id)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ratchet.config import DataSettings

log = logging.getLogger("ratchet")

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json", ".conll", ".iob", ".bio")
TOKEN_SUFFIXES = (".conll", ".iob", ".bio")   # sentences of tokens and tags: a token-classification project's
COMPRESSED_SUFFIXES = (".csv.gz", ".jsonl.gz", ".json.gz")
# A gzip file may not expand beyond this (a small .gz can hold gigabytes: a "zip bomb").
MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024


class BatchReadError(ValueError):
    """A batch file could not be read at all (unknown format, corrupt file)."""


@dataclass(frozen=True)
class IgnoredEntry:
    """An entry of incoming/ that is not read as a batch, and why; it is left where it is."""

    name: str
    reason: str


@dataclass(frozen=True)
class IncomingScan:
    batches: list[Path]          # oldest first (arrival order), name as tie-breaker
    ignored: list[IgnoredEntry]


def batch_kind(name: str) -> str | None:
    """The format a file name says (".csv", ".csv.gz", ...), or None when ratchet does not read it."""
    lower = name.lower()
    for suffix in COMPRESSED_SUFFIXES + SUPPORTED_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    return None


def _why_ignored(entry: Path, incoming: Path) -> str | None:
    if entry.is_symlink():
        return "a symbolic link: refused, never followed (copy the file itself into incoming/)"
    if entry.name.startswith("."):
        return "a hidden file (an upload in progress?)"
    if entry.is_dir():
        return "a folder, not a file"
    if not entry.is_file():
        return "not a regular file"
    if entry.resolve().parent != incoming.resolve():
        return "resolves outside incoming/: refused"
    if batch_kind(entry.name) is None:
        supported = ", ".join(SUPPORTED_SUFFIXES + COMPRESSED_SUFFIXES)
        return f"unsupported file type {''.join(entry.suffixes[-2:]) or 'without suffix'!r}; ratchet reads {supported}"
    try:
        with entry.open("rb"):
            pass
    except OSError as error:
        return f"cannot be opened: {error.strerror or error}"
    return None


def scan_incoming(incoming: Path) -> IncomingScan:
    """What waits in incoming/: the batch files, and every other entry with the reason it is ignored."""
    if not incoming.is_dir():
        return IncomingScan([], [])
    batches, ignored = [], []
    for entry in incoming.iterdir():
        reason = _why_ignored(entry, incoming)
        if reason is None:
            batches.append(entry)
        else:
            ignored.append(IgnoredEntry(entry.name, reason))
    batches.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
    return IncomingScan(batches, sorted(ignored, key=lambda e: e.name))


def list_incoming(incoming: Path) -> list[Path]:
    """Batch files waiting in the landing zone, oldest first (arrival order), name as tie-breaker."""
    return scan_incoming(incoming).batches


def _decompressed(path: Path) -> io.BytesIO:
    """A .gz file's content, refused once it expands beyond MAX_DECOMPRESSED_BYTES."""
    out = io.BytesIO()
    with gzip.open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            out.write(chunk)
            if out.tell() > MAX_DECOMPRESSED_BYTES:
                raise BatchReadError(f"{path.name}: expands beyond {MAX_DECOMPRESSED_BYTES // 2**20} MiB "
                                     "uncompressed: refused (split it into smaller batches)")
    out.seek(0)
    return out


def read_raw(path: Path) -> pd.DataFrame:
    """Read CSV, Parquet or JSON Lines (CSV and JSON Lines also gzipped) as found: every column and
    row kept, CSV values as strings. A symbolic link is refused."""
    if path.is_symlink():
        raise BatchReadError(f"{path.name}: a symbolic link; refused, never followed")
    kind = batch_kind(path.name)
    if kind is None:
        raise BatchReadError(f"{path.name}: unsupported file type {path.suffix!r}; use "
                             f"{SUPPORTED_SUFFIXES + COMPRESSED_SUFFIXES}")
    if kind in TOKEN_SUFFIXES:
        raise BatchReadError(f"{path.name}: a CoNLL file of tokens and tags, but this project classifies texts "
                             "(params.yaml task: text-classification); see docs/entities.md")
    try:
        source = _decompressed(path) if kind.endswith(".gz") else path
        base = kind.removesuffix(".gz")
        if base == ".csv":
            return pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[])
        if base == ".parquet":
            return pd.read_parquet(source)
        return pd.read_json(source, lines=True, dtype=False)
    except BatchReadError:
        raise
    except Exception as error:  # noqa: BLE001 - any parser failure is a bad file, named here
        raise BatchReadError(f"{path.name}: cannot be read as {kind[1:]}: {error}") from error


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
        # a scalar label becomes its string; an object or list is kept for validation to name
        frame["label"] = frame["label"].map(
            lambda v: None if v is None or (isinstance(v, float) and v != v)
            else str(v).strip() if isinstance(v, (str, int, float, bool, np.generic)) else v)
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
