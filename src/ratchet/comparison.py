"""Candidate and champion on the same labeled examples: the evaluation report the gate reads.

One function for every judgement: the evaluate stage (each candidate of the pipeline) and
`ratchet promote` (any registered version, by hand) both build the report through `summarize`
from `compare_predictions`, so a hand promotion is gated on the same kind of report, BWT and FWT
included. The pipeline's predictions come from the train stage (ratchet.predictions), which holds
torch already; a hand promotion predicts here (`evaluate_candidate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from ratchet.evaluation import (
    average_accuracy,
    increments,
    paired_counts,
    split_metrics,
)
from ratchet.predictions import SplitPredictions, predict_on_suite
from ratchet.records import (
    CandidateSummary,
    ChampionManifest,
    EvalReport,
    Miss,
    SplitComparison,
    SplitRole,
)

if TYPE_CHECKING:   # the evaluate stage compares predictions without importing torch
    from ratchet.modeling import Classifier


@dataclass(frozen=True)
class EvalSplit:
    name: str
    role: SplitRole
    frame: pd.DataFrame          # id, text, label


@dataclass(frozen=True)
class Evaluation:
    report: EvalReport
    increments: list[dict]       # average accuracy, BWT, FWT per promoted step, then the candidate
    history_models: list[str]    # the accuracy matrix's rows: promoted steps' models, then "candidate"
    matrix: list[dict[str, float]]


def compare_predictions(suite: list[EvalSplit], predictions: dict[str, SplitPredictions]
                        ) -> dict[str, SplitComparison]:
    """Per split: metrics of each model and the paired counts."""
    splits = {}
    for split in suite:
        frame = split.frame
        texts, truth = frame["text"].tolist(), frame["label"].tolist()
        candidate_says, champion_says = predictions[split.name].candidate, predictions[split.name].champion
        misses = [Miss(id=str(i), text=t[:120], label=y, predicted=p)
                  for i, t, y, p in zip(frame["id"], texts, truth, candidate_says) if y != p] \
            if split.role == "canary" else []
        splits[split.name] = SplitComparison(
            role=split.role, n=len(frame), candidate=split_metrics(truth, candidate_says),
            champion=split_metrics(truth, champion_says) if champion_says is not None else None,
            paired=paired_counts(truth, champion_says, candidate_says) if champion_says is not None else None,
            candidate_misses=misses)
    return splits


def evaluate_candidate(candidate: Classifier, champion: Classifier | None, manifest: ChampionManifest | None,
                       suite: list[EvalSplit], n_labels: int, batch_size: int) -> Evaluation:
    """The eval report of `candidate` against the champion (`manifest` its data/champion manifest)."""
    predictions = predict_on_suite(candidate, champion, suite, "text", batch_size)
    return summarize(compare_predictions(suite, predictions), manifest, 1.0 / n_labels)


def summarize(splits: dict[str, SplitComparison], manifest: ChampionManifest | None, chance_level: float,
              metric: str = "accuracy") -> Evaluation:
    """The eval report from per-split comparisons: the accuracy matrix row, average, BWT and FWT.

    `metric` names what a split's score is (accuracy, or entity F1 in a token project)."""
    candidate_row = {name: s.candidate.accuracy for name, s in splits.items() if s.role != "canary"}
    before_now = {name: s.champion.accuracy for name, s in splits.items() if s.role == "new" and s.champion}
    history = list(manifest.history) if manifest else []
    steps = increments(history, candidate_row, before_now, chance_level)
    report = EvalReport(champion_version=manifest.version if manifest else None, metric=metric,
                        candidate=CandidateSummary(average_accuracy=round(average_accuracy(candidate_row), 6),
                                                   bwt=steps[-1]["bwt"], fwt=steps[-1]["fwt"]),
                        splits=splits)
    return Evaluation(report=report, increments=steps, history_models=[h.model for h in history] + ["candidate"],
                      matrix=[h.accuracy for h in history] + [candidate_row])
