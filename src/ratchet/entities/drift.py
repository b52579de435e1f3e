"""Drift of a batch of sentences against the reference: the text signals that apply, plus entities.

The sentences are read as texts (their tokens joined) for the calibrated surface signals of
ratchet.drift (length, out-of-vocabulary share, ...; the label is whether a sentence has any
entity). Three signals of entities are added, and shown in the same reviewer report:

  entity types      the batch's entity counts per type against the reference's (chi-square test on
                    the 2 x types table; fires below `drift.false_alarm_rate`: one test, not
                    calibrated on draws like the text signals)
  unseen types      types the batch tags that the champion never learned: the verdict is high, as
                    for a text batch with new labels (in the entity-incremental setting that is
                    the reason to train)
  champion F1       the champion's entity F1 on the batch against its F1 on the reference eval
                    split, over the types both annotate and the champion learned; fires when it is
                    more than `drift.max_accuracy_drop` lower. Not computed when no type is shared
                    (a batch that tags only new types says nothing about the old ones: they are `O`)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy.stats import chi2_contingency

from ratchet.config import DriftSettings
from ratchet.drift.detect import DriftResult, SignalResult, detect_drift
from ratchet.entities.metrics import entity_scores
from ratchet.entities.tagger import Tagger
from ratchet.entities.tags import entity_types_in

HAS_ENTITY, NO_ENTITY = "has entities", "no entity"


@dataclass(frozen=True)
class EntityComparison:
    """What the entity section of the report shows."""

    batch_types: dict[str, int]
    reference_types: dict[str, int]
    unseen_types: list[str]
    shared_types: list[str]            # tagged by both and learned by the champion: F1 is read on these
    champion_batch_f1: float | None
    champion_reference_f1: float | None


def as_texts(sentences: pd.DataFrame) -> pd.DataFrame:
    """The sentences as rows of text for the text signals: tokens joined, the label says whether it has entities."""
    return pd.DataFrame({
        "id": sentences["id"].astype(str),
        "text": [" ".join(tokens) for tokens in sentences["tokens"]],
        "label": [HAS_ENTITY if any(tag != "O" for tag in tags) else NO_ENTITY for tags in sentences["tags"]],
        **({"split": sentences["split"]} if "split" in sentences else {}),
    })


def type_distribution_signal(batch: dict[str, int], reference: dict[str, int], alpha: float) -> SignalResult:
    types = sorted(set(batch) | set(reference))
    if len(types) < 2 or not sum(batch.values()) or not sum(reference.values()):
        return SignalResult("entity_types", "entity types (chi-square)", "labels", "p_value", 1.0, alpha, False, 1.0)
    table = [[batch.get(t, 0) for t in types], [reference.get(t, 0) for t in types]]
    p_value = float(chi2_contingency(table).pvalue)
    return SignalResult("entity_types", "entity types (chi-square)", "labels", "p_value", p_value, alpha,
                        p_value < alpha, p_value)


def _f1(tagger: Tagger, sentences: pd.DataFrame, types: list[str]) -> float:
    predicted = tagger.predict(list(sentences["tokens"]))
    return entity_scores(list(sentences["tags"]), predicted, types).micro_f1


def compare_entities(batch: pd.DataFrame, reference: pd.DataFrame, champion: Tagger | None,
                     learned: list[str]) -> EntityComparison:
    batch_types, reference_types = entity_types_in(batch), entity_types_in(reference)
    unseen = sorted(set(batch_types) - set(learned)) if champion is not None else \
        sorted(set(batch_types) - set(reference_types))
    shared = sorted(set(batch_types) & set(reference_types) & set(learned))
    batch_f1 = reference_f1 = None
    if champion is not None and shared:
        eval_rows = reference[reference["split"] == "eval"] if "split" in reference else reference
        batch_f1, reference_f1 = _f1(champion, batch, shared), _f1(champion, eval_rows, shared)
    return EntityComparison(batch_types, reference_types, unseen, shared, batch_f1, reference_f1)


def detect_entity_drift(batch: pd.DataFrame, reference: pd.DataFrame, settings: DriftSettings, out_dir: Path,
                        batch_id: str, champion: Tagger | None, learned: list[str], cache_dir: Path | None,
                        source: str = "") -> DriftResult:
    """The drift report of a token batch (sentences with tokens and tags) against the reference."""
    entities = compare_entities(batch, reference, champion, learned)
    signals = [type_distribution_signal(entities.batch_types, entities.reference_types, settings.false_alarm_rate)]
    if entities.champion_batch_f1 is not None:
        drop = entities.champion_reference_f1 - entities.champion_batch_f1
        signals.append(SignalResult("champion_f1", f"champion entity F1 drop on {', '.join(entities.shared_types)}",
                                    "performance", "score", round(drop, 6), settings.max_accuracy_drop,
                                    drop > settings.max_accuracy_drop))
    return detect_drift(as_texts(batch), as_texts(reference), settings, out_dir, batch_id, cache_dir=cache_dir,
                        known_labels={HAS_ENTITY, NO_ENTITY}, source=source, extra_signals=signals,
                        new_labels=entities.unseen_types, entities=_entity_summary(entities))


def _entity_summary(entities: EntityComparison) -> dict:
    return {"batch_types": entities.batch_types, "reference_types": entities.reference_types,
            "unseen_types": entities.unseen_types, "shared_types": entities.shared_types,
            "champion_batch_f1": entities.champion_batch_f1,
            "champion_reference_f1": entities.champion_reference_f1}
