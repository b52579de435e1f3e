"""Candidate and champion taggers on the same annotated sentences: the eval report the gate reads.

The token-classification counterpart of ratchet.comparison, producing the same records, so one
gate (ratchet.gate) and one accuracy matrix serve both tasks. Each eval split is scored over the
entity types its batch tags (a batch annotates only its own types; the others are `O` in it):

  accuracy            entity micro F1 (seqeval, strict IOB2) over those types: the split's score
  macro_f1            the mean of their per-type F1
  per_class_recall    per-type F1 (what the gate's per-class check reads)
  paired counts       over the split's gold entities: found exactly by the champion and not the
                      candidate (a negative flip), or the reverse; per type too (McNemar's test)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from ratchet.comparison import Evaluation, summarize
from ratchet.entities.metrics import EntityScores, entity_scores, only_types
from ratchet.entities.tags import EntitySpan, spans
from ratchet.predictions import SplitPredictions, predict_on_suite
from ratchet.records import (
    ChampionManifest,
    ClassScores,
    ModelScores,
    PairCount,
    PairedCounts,
    SplitComparison,
    SplitRole,
)

if TYPE_CHECKING:   # the evaluate stage scores predictions without importing torch
    from ratchet.entities.tagger import Tagger

ENTITY_F1 = "entity F1"


@dataclass(frozen=True)
class SentenceSplit:
    name: str
    role: SplitRole
    frame: pd.DataFrame          # id, tokens, tags
    types: list[str]             # the entity types this split's batch tags


def model_scores(scores: EntityScores, sentences: int) -> ModelScores:
    return ModelScores(n=sentences, accuracy=scores.micro_f1, macro_f1=scores.macro_f1,
                       per_class_recall={t: s.f1 for t, s in scores.per_type.items()},
                       per_class={t: ClassScores(precision=s.precision, recall=s.recall, f1=s.f1, support=s.support)
                                  for t, s in scores.per_type.items()})


def _gold(frame: pd.DataFrame, types: set[str]) -> list[tuple[int, EntitySpan]]:
    return [(row, span) for row, (tokens, tags) in enumerate(zip(frame["tokens"], frame["tags"]))
            for span in spans(tokens, only_types(tags, types))]


def _found(predicted: list[list[str]], frame: pd.DataFrame) -> set[tuple[int, int, int, str]]:
    return {(row, s.start, s.end, s.type) for row, (tokens, tags) in enumerate(zip(frame["tokens"], predicted))
            for s in spans(tokens, tags)}


def paired_entities(frame: pd.DataFrame, types: list[str], champion: list[list[str]],
                    candidate: list[list[str]]) -> PairedCounts:
    """Gold entities found exactly by one model and not the other, overall and per type."""
    gold = _gold(frame, set(types))
    by_champion, by_candidate = _found(champion, frame), _found(candidate, frame)

    def count(entities: list[tuple[int, EntitySpan]]) -> PairCount:
        keys = [(row, s.start, s.end, s.type) for row, s in entities]
        return PairCount(n=len(keys), champion_only=sum(k in by_champion and k not in by_candidate for k in keys),
                         candidate_only=sum(k in by_candidate and k not in by_champion for k in keys))

    return PairedCounts(**count(gold).model_dump(),
                        per_class={t: count([g for g in gold if g[1].type == t]) for t in types})


def compare_sentence_predictions(suite: list[SentenceSplit], predictions: dict[str, SplitPredictions]
                                 ) -> dict[str, SplitComparison]:
    splits = {}
    for split in suite:
        truth = list(split.frame["tags"])
        candidate_says, champion_says = predictions[split.name].candidate, predictions[split.name].champion
        splits[split.name] = SplitComparison(
            role=split.role, n=len(truth),
            candidate=model_scores(entity_scores(truth, candidate_says, split.types), len(truth)),
            champion=(model_scores(entity_scores(truth, champion_says, split.types), len(truth))
                      if champion_says is not None else None),
            paired=(paired_entities(split.frame, split.types, champion_says, candidate_says)
                    if champion_says is not None else None))
    return splits


def summarize_entities(splits: dict[str, SplitComparison], manifest: ChampionManifest | None) -> Evaluation:
    """The eval report of a candidate tagger against the champion, in entity F1 (chance level 0)."""
    return summarize(splits, manifest, 0.0, ENTITY_F1)


def evaluate_tagger(candidate: Tagger, champion: Tagger | None, manifest: ChampionManifest | None,
                    suite: list[SentenceSplit], batch_size: int) -> Evaluation:
    """Predict with both taggers, then the eval report (a hand promotion's path)."""
    predictions = predict_on_suite(candidate, champion, suite, "tokens", batch_size)
    return summarize_entities(compare_sentence_predictions(suite, predictions), manifest)
