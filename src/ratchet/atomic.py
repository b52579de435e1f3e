"""Atomic writes: write beside the target, then rename, so a crash leaves the old file or the new."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ratchet import faultpoints

if TYPE_CHECKING:   # pandas costs 0.4 s to import, and the gate stage's process never needs it
    import pandas as pd


def _temp_beside(target: Path) -> Path:
    faultpoints.reached(f"write:{target.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    return Path(name)


def write_text(target: Path, text: str) -> None:
    temp = _temp_beside(target)
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def write_bytes(target: Path, data: bytes) -> None:
    temp = _temp_beside(target)
    try:
        temp.write_bytes(data)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def write_json(target: Path, payload: Any) -> None:
    write_text(target, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(target: Path, frame: pd.DataFrame) -> None:
    """Deterministic Parquet: same frame and library versions give the same bytes."""
    temp = _temp_beside(target)
    try:
        frame.reset_index(drop=True).to_parquet(temp, index=False, compression="zstd")
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def replace_dir(source: Path, target: Path, prepare: Callable[[Path], None] | None = None) -> None:
    """Copy a folder into place: copy to a sibling, let `prepare` add to the copy, then swap."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    shutil.rmtree(staging)
    shutil.copytree(source, staging)
    if prepare is not None:
        prepare(staging)
    retired = target.with_name(f".{target.name}.old")
    if retired.exists():
        shutil.rmtree(retired)
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    if retired.exists():
        shutil.rmtree(retired)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
