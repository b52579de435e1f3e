"""Both models' predictions on the eval suite, as the file the train stage hands the evaluate stage.

The train stage holds torch and the models already: it predicts on the eval suite with the new
candidate and the champion and writes artifacts/eval_predictions.parquet; the evaluate stage
scores those predictions without importing torch (a model load and seconds of imports fewer a
batch). One row per (split, example): split, id, candidate, champion (null with no champion);
a prediction is a label (text classification) or a list of tags (token classification).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import pandas as pd

from ratchet import atomic
from ratchet.paths import ProjectPaths

COLUMNS = ["split", "id", "candidate", "champion"]


@dataclass(frozen=True)
class SplitPredictions:
    """What each model said on one eval split, in the split's row order (champion None: no champion)."""

    candidate: list[Any]
    champion: list[Any] | None


class NamedSplit(Protocol):
    name: str
    frame: pd.DataFrame   # has an id column


class Predictor(Protocol):
    """A Classifier (texts -> labels) or a Tagger (token lists -> tag lists)."""

    def predict(self, inputs: list, batch_size: int) -> list: ...


def predict_on_suite(candidate: Predictor, champion: Predictor | None, suite: Sequence[NamedSplit],
                     inputs: str, batch_size: int) -> dict[str, SplitPredictions]:
    """Both models' predictions on column `inputs` (text, or tokens) of every split of the suite."""
    predictions = {}
    for split in suite:
        rows = list(split.frame[inputs])
        predictions[split.name] = SplitPredictions(
            candidate=candidate.predict(rows, batch_size),
            champion=champion.predict(rows, batch_size) if champion is not None else None)
    return predictions


def write(paths: ProjectPaths, suite: Sequence[NamedSplit], predictions: dict[str, SplitPredictions]) -> None:
    parts = []
    for split in suite:
        said = predictions[split.name]
        parts.append(pd.DataFrame({"split": split.name, "id": split.frame["id"].astype(str).tolist(),
                                   "candidate": said.candidate,
                                   "champion": said.champion if said.champion is not None else None}))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    atomic.write_parquet(paths.eval_predictions, frame)


def read(paths: ProjectPaths, suite: Sequence[NamedSplit], with_champion: bool) -> dict[str, SplitPredictions]:
    """The predictions for `suite`, checked row by row against it: a file written for another suite
    (a stale or hand-edited one) is an error naming the split, not a silently wrong score."""
    source = paths.eval_predictions
    if not source.exists():
        raise FileNotFoundError(f"{source} is missing: the train stage writes it (run `dvc repro`)")
    frame = pd.read_parquet(source)
    if missing := [c for c in COLUMNS if c not in frame.columns]:
        raise ValueError(f"{source} has no column(s) {missing}: it was not written by the train stage")
    by_split = {name: rows for name, rows in frame.groupby("split", sort=False)}
    predictions = {}
    for split in suite:
        rows = by_split.get(split.name)
        if rows is None or rows["id"].tolist() != split.frame["id"].astype(str).tolist():
            raise ValueError(f"{source}: the predictions for split {split.name!r} do not match its rows in "
                             f"{paths.eval_suite} (a stale file: rerun the train stage)")
        for model in ("candidate", "champion") if with_champion else ("candidate",):
            if rows[model].isna().any():
                raise ValueError(f"{source}: split {split.name!r} lacks predictions of the {model}")
        predictions[split.name] = SplitPredictions(
            candidate=_values(rows["candidate"]), champion=_values(rows["champion"]) if with_champion else None)
    return predictions


def _values(column: pd.Series) -> list[Any]:
    """Labels as they are; tag sequences (read back from parquet as arrays) as lists of str."""
    return [value if isinstance(value, str) else [str(tag) for tag in value] for value in column]
