"""The sentences a token model remembers for replay: up to a number per entity type, as trained.

Saved as one parquet file in the model's folder (MEMORY_FILE), so the memory always goes with the
weights it was trained with: a promotion, a rollback or a hand promotion moves both together.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ratchet import atomic
from ratchet.config import Settings
from ratchet.entities.tags import entity_types_of

MEMORY_FILE = "replay-memory.parquet"   # in a token model's folder: the memory that goes with its weights


class SentenceMemory:
    """Earlier sentences kept for replay: up to `per_type` of each entity type, as they were trained."""

    def __init__(self, per_type: int, seed: int = 0) -> None:
        self.per_type = per_type
        self.seed = seed
        self.by_type: dict[str, pd.DataFrame] = {}

    def add(self, sentences: pd.DataFrame, types: list[str]) -> None:
        """Keep sentences that show each of `types` (their tags as trained, pseudo-labels included)."""
        for kind in types:
            has = sentences[sentences["tags"].map(lambda tags: kind in entity_types_of(tags))]
            if len(has) > self.per_type:
                has = has.sample(self.per_type, random_state=self.seed)
            self.by_type[kind] = has.reset_index(drop=True)

    def save(self, path: Path) -> None:
        """One parquet file: every kept sentence with the type it is kept for."""
        frames = [frame[["id", "tokens", "tags"]].assign(type=kind) for kind, frame in self.by_type.items()]
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["id", "tokens", "tags", "type"])
        atomic.write_parquet(path, rows)

    @classmethod
    def load(cls, path: Path, per_type: int, seed: int = 0) -> "SentenceMemory":
        """The memory saved at `path` (empty when there is none), kept to `per_type` sentences a type."""
        memory = cls(per_type, seed)
        if path.exists():
            rows = pd.read_parquet(path)
            for column in ("tokens", "tags"):
                rows[column] = rows[column].map(list)
            for kind, frame in rows.groupby("type", sort=True):
                kept = frame.drop(columns="type")
                if len(kept) > per_type:
                    kept = kept.sample(per_type, random_state=seed)
                memory.by_type[str(kind)] = kept.reset_index(drop=True)
        return memory

    def sample(self, per_type: int, seed: int) -> pd.DataFrame:
        """Up to `per_type` sentences of each remembered type, no sentence twice."""
        picked = [frame.sample(min(per_type, len(frame)), random_state=seed) for frame in self.by_type.values()
                  if per_type > 0 and len(frame)]
        if not picked:
            return pd.DataFrame(columns=["id", "tokens", "tags"])
        return pd.concat(picked, ignore_index=True).drop_duplicates("id").reset_index(drop=True)


def memory_per_type(settings: Settings) -> int:
    """Sentences the memory keeps per entity type: the buffer shared by every declared type."""
    return max(1, settings.continual.replay.buffer_size // len(settings.data.entity_types))
