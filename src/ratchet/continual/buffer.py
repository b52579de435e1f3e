"""The replay buffer: a bounded, persisted sample of what the champion has learned, with lineage.

Every row remembers where it came from (`batch_id`), when it entered (`entered_at`, the increment
counter) and why it was kept (`reason`). Two ways to choose what stays within the size budget:

- class_balanced: the budget is shared evenly over the classes seen so far (a class with fewer
  examples gives its unused share to the others); within a class, a seeded random choice.
- reservoir: classic reservoir sampling over the whole stream, so every example ever offered has
  the same chance to be in the buffer, whatever its class.

The buffer is data/replay/buffer.parquet (so DVC versions it with everything else) plus
buffer.json: its settings, the reservoir's running count and a summary by label and by batch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ratchet import atomic

BUFFER_COLUMNS = ["id", "text", "label", "batch_id", "entered_at", "reason"]


class BufferError(RuntimeError):
    pass


def _typed(rows: pd.DataFrame) -> pd.DataFrame:
    """Buffer rows with stable column types, whatever frame (or empty frame) they came from."""
    return rows[BUFFER_COLUMNS].astype({"id": str, "text": str, "label": str, "batch_id": str,
                                        "entered_at": "int64", "reason": str}).reset_index(drop=True)


def _balanced_quota(available: dict[str, int], budget: int) -> dict[str, int]:
    """Share `budget` evenly over the labels; a label with fewer rows gives the rest to the others."""
    quota = {label: 0 for label in available}
    remaining = min(budget, sum(available.values()))
    while remaining > 0:
        open_labels = [label for label in sorted(available) if quota[label] < available[label]]
        share, extra = divmod(remaining, len(open_labels))
        for position, label in enumerate(open_labels):
            take = min(share + (1 if position < extra else 0), available[label] - quota[label])
            quota[label] += take
            remaining -= take
    return quota


def class_balanced_sample(pool: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Up to `n` rows of `pool`, spread as evenly as possible over its labels; deterministic per seed."""
    if n <= 0 or pool.empty:
        return pool.iloc[:0]
    groups = {label: g.sample(frac=1.0, random_state=seed) for label, g in pool.groupby("label", sort=True)}
    quota = _balanced_quota({label: len(g) for label, g in groups.items()}, n)
    return pd.concat([groups[label].iloc[:quota[label]] for label in groups]).reset_index(drop=True)


@dataclass
class ReplayBuffer:
    selection: str
    budget: int
    rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=BUFFER_COLUMNS))
    seen: int = 0            # examples ever offered (reservoir sampling needs the count)
    increments: int = 0      # how many batches have been added

    @property
    def labels(self) -> set[str]:
        return set(self.rows["label"])

    def add(self, frame: pd.DataFrame, batch_id: str, seed: int) -> None:
        """Offer the train rows of a batch the champion has just learned."""
        if self.selection == "none" or self.budget == 0 or frame.empty:
            self.increments += 1
            return
        missing = {"text", "label"} - set(frame.columns)
        if missing:
            raise BufferError(f"rows offered to the replay buffer lack column(s) {sorted(missing)}")
        offered = frame.assign(batch_id=batch_id, entered_at=self.increments)
        if "id" not in offered:
            offered = offered.assign(id=[f"{batch_id}-{i}" for i in range(len(offered))])
        if self.selection == "reservoir":
            self._reservoir(offered, seed)
        else:
            self._rebalance(offered, seed)
        self.increments += 1

    def _rebalance(self, offered: pd.DataFrame, seed: int) -> None:
        fresh = offered.sample(frac=1.0, random_state=seed + self.increments)
        pool = pd.concat([self.rows, fresh.assign(reason="")], ignore_index=True)
        quota = _balanced_quota(pool["label"].value_counts().to_dict(), self.budget)
        chosen = []
        for label, group in pool.groupby("label", sort=True):
            # Rows already kept stay first, so a class only loses examples when its share shrinks.
            take = group.iloc[:quota[label]].copy()
            is_new = take["reason"] == ""
            take.loc[is_new, "reason"] = (f"class_balanced: {quota[label]} of {len(group)} {label!r} "
                                          f"examples fit the class share of a {self.budget}-example budget")
            chosen.append(take)
        self.rows = _typed(pd.concat(chosen, ignore_index=True))
        self.seen += len(offered)

    def _reservoir(self, offered: pd.DataFrame, seed: int) -> None:
        rng = random.Random(f"{seed}:{self.increments}")
        rows = self.rows.to_dict("records")
        for record in offered.to_dict("records"):
            self.seen += 1
            if len(rows) < self.budget:
                rows.append({**record, "reason": f"reservoir: filling, example {self.seen}"})
                continue
            slot = rng.randrange(self.seen)
            if slot < self.budget:
                rows[slot] = {**record, "reason": f"reservoir: replaced slot {slot} at example {self.seen} "
                                                  f"(kept with probability {self.budget}/{self.seen})"}
        self.rows = _typed(pd.DataFrame(rows, columns=BUFFER_COLUMNS))

    def replay_sample(self, per_class: int, seed: int) -> pd.DataFrame:
        """Rows to mix into a training set: up to `per_class` of every class in the buffer."""
        if self.rows.empty or per_class == 0:
            return self.rows.iloc[:0]
        picked = [g.sample(n=min(per_class, len(g)), random_state=seed) for _, g in
                  self.rows.groupby("label", sort=True)]
        return pd.concat(picked).reset_index(drop=True)

    def replay_and_validation(self, per_class: int, validation_per_class: int,
                              seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(rows replayed in the mix, held-out old rows for early stopping), each up to so many per class."""
        replay = self.replay_sample(per_class, seed)
        taken = set(zip(replay["batch_id"], replay["id"]))
        keep = pd.Series([(b, i) not in taken for b, i in zip(self.rows["batch_id"], self.rows["id"])],
                         index=self.rows.index, dtype=bool)
        rest = ReplayBuffer(selection=self.selection, budget=self.budget, rows=self.rows[keep])
        return replay, rest.replay_sample(validation_per_class, seed)

    # persistence --------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_parquet(folder / "buffer.parquet", _typed(self.rows))
        atomic.write_json(folder / "buffer.json", {
            "selection": self.selection, "budget": self.budget, "seen": self.seen,
            "increments": self.increments, "size": len(self.rows),
            "by_label": {str(k): int(v) for k, v in self.rows["label"].value_counts().sort_index().items()},
            "by_batch": {str(k): int(v) for k, v in self.rows["batch_id"].value_counts().sort_index().items()},
        })

    @classmethod
    def load(cls, folder: Path, selection: str, budget: int) -> "ReplayBuffer":
        """The buffer in `folder` (an empty one if there is none yet), resized to today's settings."""
        meta_path, rows_path = folder / "buffer.json", folder / "buffer.parquet"
        if not meta_path.exists():
            return cls(selection=selection, budget=budget)
        meta = atomic.read_json(meta_path)
        rows = pd.read_parquet(rows_path)
        missing = set(BUFFER_COLUMNS) - set(rows.columns)
        if missing:
            raise BufferError(f"{rows_path} lacks column(s) {sorted(missing)}: not a ratchet replay buffer")
        buffer = cls(selection=selection, budget=budget, rows=_typed(rows),
                     seen=int(meta["seen"]), increments=int(meta["increments"]))
        if len(buffer.rows) > budget:  # the budget was lowered in params.yaml: shrink, keep balance
            buffer.rows = _typed(class_balanced_sample(buffer.rows, budget, seed=buffer.increments))
        return buffer
