"""Entity-level scores with seqeval in strict IOB2 mode: an entity counts only when its span and type match.

Micro F1 pools every entity; macro F1 is the unweighted mean of per-type F1 over the types asked
for (`types`), so a rare type weighs as much as a frequent one and a type the model never finds
counts as 0 rather than dropping out.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from ratchet.entities.tags import OUTSIDE, split_tag


@dataclass(frozen=True)
class TypeScore:
    precision: float
    recall: float
    f1: float
    support: int          # entities of this type in the reference


@dataclass(frozen=True)
class EntityScores:
    micro_f1: float
    macro_f1: float
    per_type: dict[str, TypeScore]
    entities: int         # reference entities of the types scored

    def macro_over(self, types: list[str]) -> float:
        """Macro F1 over a subset of the scored types (one step's types, say)."""
        return sum(self.per_type[t].f1 for t in types) / len(types) if types else 0.0


def only_types(tags: list[str], types: set[str]) -> list[str]:
    """The sequence with every entity of another type turned to `O` (what a model knowing `types` should say)."""
    return [tag if tag == OUTSIDE or split_tag(tag)[1] in types else OUTSIDE for tag in tags]


def entity_scores(reference: list[list[str]], predicted: list[list[str]], types: list[str]) -> EntityScores:
    """Scores over `types`: entities of other types are left out of both sides."""
    if len(reference) != len(predicted):
        raise ValueError(f"{len(reference)} reference sentences but {len(predicted)} predicted")
    keep = set(types)
    truth = [only_types(t, keep) for t in reference]
    guess = [only_types(p, keep) for p in predicted]
    report = classification_report(truth, guess, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    per_type = {}
    for kind in types:
        row = report.get(kind)
        per_type[kind] = (TypeScore(float(row["precision"]), float(row["recall"]), float(row["f1-score"]),
                                    int(row["support"])) if row else TypeScore(0.0, 0.0, 0.0, 0))
    micro = report.get("micro avg", {}).get("f1-score", 0.0)
    return EntityScores(micro_f1=float(micro), macro_f1=sum(s.f1 for s in per_type.values()) / max(1, len(types)),
                        per_type=per_type, entities=sum(s.support for s in per_type.values()))
