"""The records that cross module boundaries, and the one place they are written and read.

- EvalReport      metrics/eval.json: candidate and champion on every eval split, paired counts,
                  average accuracy, BWT and FWT (the evaluate stage and `ratchet promote` both
                  build it through ratchet.comparison.evaluate_candidate)
- GateDecision    metrics/gate.json: passed, and every check with value, threshold and reason
- ModelManifest   ratchet_model.json in every saved model folder (what the weights are)
- ChampionManifest  data/champion/ratchet_model.json: a model manifest plus its registry version,
                  every batch it learned and the accuracy history (the rows of the accuracy matrix)

The JSON files are these records serialised (`model_dump(mode="json")`), so the contracts users
and `dvc metrics` read stay as they were; a file that does not match says which key is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ratchet import atomic


class RecordError(ValueError):
    """A record file that is missing or does not have the shape ratchet wrote."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)


# --- evaluation ---------------------------------------------------------------------------------

class ClassScores(_Record):
    precision: float
    recall: float
    f1: float
    support: int


class ModelScores(_Record):
    """One model on one split."""

    n: int
    accuracy: float
    macro_f1: float
    per_class_recall: dict[str, float]
    per_class: dict[str, ClassScores]


class PairCount(_Record):
    n: int
    champion_only: int    # the champion right, the candidate wrong: a negative flip
    candidate_only: int


class PairedCounts(PairCount):
    per_class: dict[str, PairCount]


class Miss(_Record):
    id: str
    text: str
    label: str
    predicted: str


SplitRole = Literal["old", "new", "canary"]
Task = Literal["text-classification", "token-classification"]   # params.yaml `task`
TOKEN_CLASSIFICATION: Task = "token-classification"


class SplitComparison(_Record):
    role: SplitRole
    n: int
    candidate: ModelScores
    champion: ModelScores | None = None
    paired: PairedCounts | None = None
    candidate_misses: list[Miss] = []       # canary rows the candidate got wrong


class CandidateSummary(_Record):
    average_accuracy: float
    bwt: float | None = None
    fwt: float | None = None


class EvalReport(_Record):
    champion_version: str | None
    # what a split's score (`accuracy` of ModelScores) is: accuracy, or in a token project entity F1
    # (micro, strict IOB2, over the types the split tags; per-class scores are then per-type F1 and
    # paired counts count gold entities found exactly)
    metric: Literal["accuracy", "entity F1"] = "accuracy"
    candidate: CandidateSummary
    splits: dict[str, SplitComparison]


# --- the gate -----------------------------------------------------------------------------------

class Check(_Record):
    name: str
    split: str
    value: float
    threshold: float
    passed: bool
    reason: str
    p_value: float | None = None


FORGETTING_CHECKS = frozenset({"old_split_drop", "class_recall_drop", "negative_flip_rate", "old_split_floor"})
LEARNING_CHECKS = frozenset({"new_split_floor", "new_split_gain"})


class GateDecision(_Record):
    passed: bool
    champion_version: str | None
    checks: list[Check]                      # failing checks first
    summary: str = ""
    forgetting: bool = False                 # failed on what the champion knew: more retention may help
    not_learned: bool = False                # failed on the new data: less retention may help

    @classmethod
    def of(cls, checks: list[Check], champion_version: str | None) -> "GateDecision":
        failing = [c for c in checks if not c.passed]
        summary = "; ".join(c.reason for c in failing) if failing else f"passed all {len(checks)} checks"
        return cls(passed=not failing, champion_version=champion_version, summary=summary,
                   forgetting=any(c.name in FORGETTING_CHECKS for c in failing),
                   not_learned=any(c.name in LEARNING_CHECKS for c in failing),
                   checks=sorted(checks, key=lambda c: c.passed))

    def failing(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def retry(self) -> str | None:
        """What the feedback loop should try next: more_retention when only old data failed,
        less_retention when only the new data did; None when it passed, when both failed (no
        retention setting fixes both: look at the batch) or when neither kind of check failed."""
        if self.passed or self.forgetting == self.not_learned:
            return None
        return "more_retention" if self.forgetting else "less_retention"


# --- models -------------------------------------------------------------------------------------

class ModelManifest(_Record):
    kind: Literal["lora", "full"]
    base_model: str
    labels: list[str]
    pooling: str = "cls"
    max_length: int = 128
    finetune: str = ""
    parent_version: str | None = None
    trained_batches: list[str] = []          # in a candidate: this step's batches; in a champion: all
    task: Task = "text-classification"       # token-classification: `labels` are the tags (O, B-X, I-X...)
    entity_types: list[str] = []             # token-classification: the types learned so far (the others
                                             # are never answered); [] in a text classifier


class HistoryStep(_Record):
    """One promoted step: its model's accuracy on every split it knew, and, on the splits that step
    learned, the previous champion's accuracy just before (forward transfer needs it)."""

    model: str
    accuracy: dict[str, float]
    before: dict[str, float] = {}


class ChampionManifest(ModelManifest):
    version: str
    run_id: str
    history: list[HistoryStep] = []


class PromotionRecord(_Record):
    """A promotion in progress, written before anything moves and removed once all has: a run killed
    half way is completed from it by the next (ratchet.champion.finish_promotion)."""

    version: str
    run_id: str
    expected_champion: str | None      # the champion the gate judged against
    batch_ids: list[str]
    reason: str                        # the ledger's reason for the promoted batches
    alias_reason: str                  # the alias history's reason
    manifest: ChampionManifest
    metrics_by_batch: dict[str, dict[str, float]] = {}
    details: dict[str, object] = {}


# --- reading and writing ------------------------------------------------------------------------

R = TypeVar("R", bound=_Record)


def write(path: Path, record: _Record) -> None:
    atomic.write_json(path, record.model_dump(mode="json"))


def read(path: Path, kind: type[R]) -> R:
    if not path.exists():
        raise RecordError(f"{path} is missing (expected a {kind.__name__})")
    return parse(atomic.read_json(path), kind, str(path))


def read_optional(path: Path, kind: type[R]) -> R | None:
    return read(path, kind) if path.exists() else None


def parse(raw: object, kind: type[R], source: str) -> R:
    try:
        return kind.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise RecordError(f"{source} is not a {kind.__name__}: key {key!r}: {first['msg']}") from None
