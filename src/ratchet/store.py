"""The DVC-tracked data/ layout: the catalog of accepted batches, their splits, and the champion.

data/ is written only by the flow and the CLI (never by a dvc.yaml stage), followed by `dvc add data`.

    data/catalog.json                 every accepted batch in acceptance order, with its status
    data/reference/{train,eval}.parquet
    data/batches/<batch_id>/{train,eval}.parquet
    data/champion/                    the promoted model (weights + ratchet_model.json)

A batch's status: `pending` (accepted, not yet trained on), `trained` (part of the champion's
knowledge: replayed and used as an old eval split), `rejected` (its candidate failed the gate;
kept, but never trained on or evaluated again).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from ratchet import atomic, records
from ratchet.config import ReplaySettings
from ratchet.continual.buffer import ReplayBuffer
from ratchet.paths import ProjectPaths
from ratchet.records import ChampionManifest

BatchStatus = Literal["pending", "trained", "rejected"]
SPLIT_COLUMNS = ["id", "text", "label"]
SENTENCE_SPLIT_COLUMNS = ["id", "tokens", "tags"]   # a token-classification batch: one row per sentence
CHAMPION_MANIFEST = "ratchet_model.json"


@dataclass
class CatalogEntry:
    batch_id: str
    source: str
    status: BatchStatus
    n_train: int
    n_eval: int
    label_counts: dict[str, int]


class CatalogError(RuntimeError):
    pass


def read_catalog(paths: ProjectPaths) -> list[CatalogEntry]:
    if not paths.catalog.exists():
        return []
    return [CatalogEntry(**item) for item in atomic.read_json(paths.catalog)["batches"]]


def write_catalog(paths: ProjectPaths, entries: list[CatalogEntry]) -> None:
    atomic.write_json(paths.catalog, {"batches": [asdict(e) for e in entries]})


def set_status(paths: ProjectPaths, batch_ids: list[str], status: BatchStatus) -> None:
    entries = read_catalog(paths)
    known = {e.batch_id for e in entries}
    missing = sorted(set(batch_ids) - known)
    if missing:
        raise CatalogError(f"{paths.catalog}: unknown batch id(s) {missing}")
    for entry in entries:
        if entry.batch_id in batch_ids:
            entry.status = status
    write_catalog(paths, entries)


def batches_with_status(paths: ProjectPaths, status: BatchStatus) -> list[str]:
    return [e.batch_id for e in read_catalog(paths) if e.status == status]


def _row_key(row_id: str) -> str:
    return hashlib.sha256(row_id.encode()).hexdigest()


def split_train_eval(frame: pd.DataFrame, eval_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic stratified split: within each label, rows ordered by a hash of their id.

    The same rows always land in the same split, whatever the file's row order.
    """
    frame = frame[SPLIT_COLUMNS].copy()
    frame["_key"] = frame["id"].map(_row_key)
    train_parts, eval_parts = [], []
    for _, group in frame.sort_values("_key").groupby("label", sort=True):
        n_eval = round(len(group) * eval_fraction)
        if len(group) >= 2:
            n_eval = min(max(n_eval, 1), len(group) - 1)
        else:
            n_eval = 0
        eval_parts.append(group.iloc[:n_eval])
        train_parts.append(group.iloc[n_eval:])

    def tidy(parts: list[pd.DataFrame]) -> pd.DataFrame:
        joined = pd.concat(parts) if parts else frame.iloc[:0]
        return joined.sort_values("_key").drop(columns="_key").reset_index(drop=True)

    return tidy(train_parts), tidy(eval_parts)


def split_sentences(frame: pd.DataFrame, eval_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic split of a token batch: sentences ordered by a hash of their id, the first
    `eval_fraction` of them (at least one when there are two or more) held out."""
    frame = frame[SENTENCE_SPLIT_COLUMNS].copy()
    ordered = frame.assign(_key=frame["id"].map(_row_key)).sort_values("_key").drop(columns="_key")
    n_eval = min(max(round(len(ordered) * eval_fraction), 1), len(ordered) - 1) if len(ordered) >= 2 else 0
    return ordered.iloc[n_eval:].reset_index(drop=True), ordered.iloc[:n_eval].reset_index(drop=True)


def is_sentence_frame(frame: pd.DataFrame) -> bool:
    return "tokens" in frame.columns and "tags" in frame.columns


def accept_batch(paths: ProjectPaths, batch_id: str, frame: pd.DataFrame, source: str,
                 eval_fraction: float) -> CatalogEntry:
    """Write the batch's train/eval splits into data/ and list it as pending in the catalog.

    A token batch (columns tokens and tags) is split by sentence; its `label_counts` count the
    entities of each type it tags."""
    entries = read_catalog(paths)
    if any(e.batch_id == batch_id for e in entries):
        raise CatalogError(f"batch {batch_id} is already in {paths.catalog}")
    if is_sentence_frame(frame):
        from ratchet.entities.tags import entity_types_in

        train, evaluation = split_sentences(frame, eval_fraction)
        counts = entity_types_in(frame)
    else:
        train, evaluation = split_train_eval(frame, eval_fraction)
        counts = {str(k): int(v) for k, v in frame["label"].value_counts().items()}
    folder = paths.batch_dir(batch_id)
    atomic.write_parquet(folder / "train.parquet", train)
    atomic.write_parquet(folder / "eval.parquet", evaluation)
    entry = CatalogEntry(batch_id=batch_id, source=source, status="pending", n_train=len(train),
                         n_eval=len(evaluation), label_counts={k: counts[k] for k in sorted(counts)})
    write_catalog(paths, entries + [entry])
    return entry


def remove_batch(paths: ProjectPaths, batch_id: str) -> bool:
    """Take a batch back out of data/ (its splits and its catalog entry): data/ is as it was before
    the batch was accepted. False when it was not there. The reference set cannot be removed."""
    if batch_id == "reference":
        raise CatalogError("the reference set cannot be taken out of data/")
    entries = read_catalog(paths)
    kept = [e for e in entries if e.batch_id != batch_id]
    folder = paths.batch_dir(batch_id)
    if len(kept) == len(entries) and not folder.exists():
        return False
    write_catalog(paths, kept)
    shutil.rmtree(folder, ignore_errors=True)
    return True


def create_reference(paths: ProjectPaths, frame: pd.DataFrame, source: str, eval_fraction: float) -> CatalogEntry:
    """Start a project's data/: the reference set (task 0, pending) and an empty champion folder.

    Deterministic: the same rows give the same bytes, so a committed data.dvc can be rebuilt.
    """
    if paths.catalog.exists():
        raise CatalogError(f"{paths.catalog} exists already: this project has its reference set")
    paths.data.mkdir(parents=True, exist_ok=True)
    entry = accept_batch(paths, "reference", frame, source=source, eval_fraction=eval_fraction)
    write_champion_readme(paths.champion)
    return entry


def read_split(paths: ProjectPaths, batch_id: str, split: Literal["train", "eval"]) -> pd.DataFrame:
    path = paths.batch_dir(batch_id) / f"{split}.parquet"
    if not path.exists():
        raise CatalogError(f"{path} is missing: data/ is incomplete (try `dvc checkout data.dvc`)")
    return read_rows(path)


def read_rows(path: Path) -> pd.DataFrame:
    """A parquet file of rows or sentences; tokens and tags come back as lists (not arrays)."""
    frame = pd.read_parquet(path)
    if is_sentence_frame(frame):
        for column in ("tokens", "tags"):
            frame[column] = frame[column].map(list)
    return frame


def read_reference(paths: ProjectPaths) -> pd.DataFrame:
    """All labeled reference rows, the baseline for drift; `split` says train or eval."""
    return pd.concat([read_split(paths, "reference", "train").assign(split="train"),
                      read_split(paths, "reference", "eval").assign(split="eval")], ignore_index=True)


def champion_manifest(paths: ProjectPaths) -> ChampionManifest | None:
    """data/champion's manifest; None before the first champion."""
    return records.read_optional(paths.champion / CHAMPION_MANIFEST, ChampionManifest)


def install_champion(paths: ProjectPaths, candidate_dir: Path, manifest: ChampionManifest) -> None:
    """Copy a promoted candidate into data/champion/ with its registry facts, atomically.

    The candidate folder (a stage output) is left untouched; the manifest is written into the copy.
    """
    def finish(staging: Path) -> None:
        records.write(staging / CHAMPION_MANIFEST, manifest)
        write_champion_readme(staging)

    atomic.replace_dir(candidate_dir, paths.champion, prepare=finish)


def write_champion_readme(folder: Path) -> None:
    """data/champion/ always exists (dvc.yaml's train stage depends on it), with this note inside."""
    atomic.write_text(folder / "README.md",
                      "The promoted model, copied here by ratchet on promotion; empty of weights until\n"
                      "the first champion. ratchet_model.json names its MLflow version.\n")


def install_replay_buffer(paths: ProjectPaths, next_buffer: Path) -> None:
    """Make the buffer prepared with the promoted candidate the champion's buffer (data/replay/)."""
    if next_buffer.exists():
        atomic.replace_dir(next_buffer, paths.replay_buffer)


def build_replay_buffer(paths: ProjectPaths, replay: ReplaySettings, batch_ids: list[str], seed: int) -> ReplayBuffer:
    """The buffer a champion that learned `batch_ids` (in that order) has: offered batch by batch."""
    buffer = ReplayBuffer(selection=replay.selection, budget=replay.buffer_size)
    for batch_id in batch_ids:
        buffer.add(read_split(paths, batch_id, "train"), batch_id, seed=seed)
    return buffer


def read_canary(paths: ProjectPaths) -> pd.DataFrame:
    """data/canary.csv: must-pass examples. Columns text and label (id optional)."""
    frame = pd.read_csv(paths.canary, dtype=str, keep_default_na=False)
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise CatalogError(f"{paths.canary} lacks column(s) {sorted(missing)} (it has {list(frame.columns)})")
    empty = frame.index[frame["text"].str.strip() == ""].tolist()
    if empty:
        raise CatalogError(f"{paths.canary}: row(s) {[i + 2 for i in empty]} have an empty text")
    if "id" not in frame:
        frame["id"] = [f"canary-{i + 1}" for i in range(len(frame))]
    return frame[["id", "text", "label"]]
