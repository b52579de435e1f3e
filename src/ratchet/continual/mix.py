"""The rows of one increment: the training mix (new rows + replayed rows) and held-out old rows.

Built once, by `compose_increment`, for both the pipeline (the prepare stage writes it, the train
stage reads it back) and the benchmark, so they train on the same kind of mix. Pure pandas: the
prepare stage imports no model code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import pandas as pd

from ratchet.config import ReplaySettings, TrainSettings
from ratchet.continual.buffer import ReplayBuffer

MIX_COLUMNS = ["id", "text", "label", "source_batch", "replayed"]


@dataclass(frozen=True)
class IncrementData:
    """The rows of one increment. `mix` is the training mix in training order (new rows and
    replayed rows, `replayed` telling which); every frame has `text` and `label` columns."""

    mix: pd.DataFrame
    old_validation: pd.DataFrame     # buffer rows not replayed: early stopping, EWC's Fisher, bias correction
    known_labels: list[str]          # classes the champion has learned (retained); empty at first

    @classmethod
    def from_parts(cls, new: pd.DataFrame, replay: pd.DataFrame, old_validation: pd.DataFrame,
                   known_labels: list[str], seed: int) -> "IncrementData":
        """New rows and replayed rows shuffled together (seeded) into one training mix."""
        def part(frame: pd.DataFrame, replayed: bool) -> pd.DataFrame:
            out = frame.copy()
            if "source_batch" not in out:
                out["source_batch"] = out["batch_id"] if "batch_id" in out else ""
            if "id" not in out:
                out["id"] = [f"row-{i}" for i in range(len(out))]
            return out.assign(replayed=replayed)[MIX_COLUMNS]

        mix = pd.concat([part(new, False), part(replay, True)], ignore_index=True)
        mix = mix.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        return cls(mix=mix, old_validation=old_validation, known_labels=list(known_labels))

    @property
    def new(self) -> pd.DataFrame:
        return self.mix[~self.mix["replayed"]]

    @property
    def replay(self) -> pd.DataFrame:
        return self.mix[self.mix["replayed"]]


def brings_new_classes(new_labels: Iterable[str], known_labels: list[str]) -> list[str]:
    """Classes of an increment the champion has not learned (none for the first increment: no champion)."""
    return sorted(set(new_labels) - set(known_labels)) if known_labels else []


def new_class_floor(train: TrainSettings, new_labels: Iterable[str], known_labels: list[str]) -> int:
    """`train.new_class_min_steps` when the increment brings classes the champion has not learned and
    that floor is above `train.min_steps`; 0 otherwise. The one rule both the step count
    (`increment.steps_floor`) and the replay fill (`floor_rows`) follow."""
    if brings_new_classes(new_labels, known_labels) and train.new_class_min_steps > train.min_steps:
        return train.new_class_min_steps
    return 0


def floor_rows(train: TrainSettings, new_labels: Iterable[str], known_labels: list[str]) -> int:
    """How many training rows the new-class step floor covers in `train.epochs` passes; 0 when it does not apply."""
    return math.ceil(new_class_floor(train, new_labels, known_labels) * train.batch_size / train.epochs)


def compose_increment(new: pd.DataFrame, buffer: ReplayBuffer, replay: ReplaySettings, known_labels: list[str],
                      seed: int, train: TrainSettings) -> IncrementData:
    """The increment the pipeline (prepare stage) and the benchmark train on: the new rows, each
    old class's replay share sampled from the champion's buffer, and held-out old rows. With
    `replay.fill_step_floor`, an increment the new-class step floor stretches replays more of the buffer."""
    old_classes = len(buffer.labels)
    per_class = replay.per_old_class(len(new), new["label"].nunique(), old_classes)
    if old_classes:
        per_class = replay.per_old_class_filling(
            per_class, len(new), old_classes, floor_rows(train, new["label"], known_labels),
            int(buffer.rows["label"].value_counts().min()))
    sample, old_validation = buffer.replay_and_validation(per_class, replay.validation_per_class, seed)
    return IncrementData.from_parts(new, sample, old_validation, known_labels, seed)


def class_balance_weights(labels: list[str], new_labels: set[str]) -> list[float]:
    """Per-example weights that give each class seen only through replay the weight of a mean new class.

    Classes present in the new data keep weight 1, so the label balance of the new data (say 75%
    positive reviews) stays as it is; a replayed-only class with 10 rows next to new classes of
    300 rows weighs as much as one of them. Normalised to mean 1.
    """
    counts = pd.Series(labels).value_counts()
    present = [label for label in counts.index if label in new_labels]
    mean_new = counts[present].mean() if present else counts.mean()
    raw = [1.0 if label in new_labels else mean_new / counts[label] for label in labels]
    scale = len(raw) / sum(raw)
    return [w * scale for w in raw]
