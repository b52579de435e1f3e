"""The promotion decision: candidate against champion on the same examples, check by check.

Checks (thresholds in params.yaml `gate`):
- old_split_drop      every old eval split: accuracy may not drop beyond `max_old_split_drop` when
                      McNemar's exact paired test finds the drop significant, nor beyond
                      `hard_max_old_split_drop` at all;
- class_recall_drop   the same, per class, on the old splits' recall;
- negative_flip_rate  share of old-split examples the champion got right and the candidate gets
                      wrong (regression bugs, Xie et al. 2021), over all old splits together;
- old_split_floor     absolute floor on every old split;
- new_split_floor / new_split_gain   the new data must be learned, and not worse than the champion;
- canary              the must-pass examples of data/canary.csv, when the project has them.

In a token-classification project (EvalReport.metric "entity F1") the same checks read entity F1
over the types a split tags, per-type F1 for per-class recall, and gold entities found exactly (by
one model and not the other) for McNemar's paired counts and the negative flips.

A rejection is an outcome, not an error: decide() always returns a GateDecision (ratchet.records) with reasons.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratchet.config import GateSettings
from ratchet.records import Check, EvalReport, GateDecision, PairCount, SplitComparison


@dataclass(frozen=True)
class Words:
    """How the checks' reasons name what they measure."""

    metric: str      # a split's score
    score: str       # after "old split X"
    kind: str        # a per-class score's owner
    units: str       # what the paired counts count


CLASS_WORDS = Words(metric="accuracy", score="", kind="class", units="examples")
ENTITY_WORDS = Words(metric="entity F1", score=" entity F1", kind="type F1 of", units="entities")


def mcnemar_p_value(champion_only: int, candidate_only: int) -> float:
    """One-sided exact McNemar test: P(at least `champion_only` losses | the two models are equally good).

    Under the null, each discordant example is a fair coin: losses ~ Binomial(discordant, 1/2).
    """
    discordant = champion_only + candidate_only
    if discordant == 0:
        return 1.0
    # imported here: scipy.stats is 0.8 s of the gate stage's start, needed only with discordant pairs
    from scipy.stats import binomtest

    return float(binomtest(champion_only, discordant, 0.5, alternative="greater").pvalue)


def _pts(value: float) -> str:
    return f"{value * 100:+.1f} pts"


def _drop_check(name: str, split: str, label: str, before: float, after: float, paired: PairCount | None,
                allowed: float, ceiling: float, alpha: float) -> Check:
    drop = before - after
    p_value = mcnemar_p_value(paired.champion_only, paired.candidate_only) if paired else None
    significant = p_value is None or p_value < alpha   # without paired counts, judge the drop alone
    beyond_ceiling = drop > ceiling + 1e-12
    failed = beyond_ceiling or (drop > allowed + 1e-12 and significant)
    if beyond_ceiling:
        why = f"beyond the hard ceiling of {ceiling * 100:.1f} pts"
    elif drop > allowed + 1e-12:
        why = (f"more than {allowed * 100:.1f} pts and significant (McNemar p={p_value:.3g} < {alpha})" if failed
               else f"more than {allowed * 100:.1f} pts but within noise (McNemar p={p_value:.3g} ≥ {alpha})")
    else:
        why = f"within the allowed {allowed * 100:.1f} pts"
    return Check(name=name, split=split, value=round(drop, 6), threshold=allowed, passed=not failed,
                 p_value=None if p_value is None else round(p_value, 6),
                 reason=f"{label}: {before:.3f} -> {after:.3f} ({_pts(-drop)}), {why}")


def _old_split_checks(name: str, split: SplitComparison, settings: GateSettings, words: "Words") -> list[Check]:
    candidate, champion, paired = split.candidate, split.champion, split.paired
    checks = [_drop_check("old_split_drop", name, f"old split {name}{words.score}", champion.accuracy, candidate.accuracy,
                          paired, settings.max_old_split_drop, settings.hard_max_old_split_drop,
                          settings.significance)]
    for label, recall_before in sorted(champion.per_class_recall.items()):
        recall_after = candidate.per_class_recall.get(label, 0.0)
        class_paired = paired.per_class.get(label) if paired else None
        checks.append(_drop_check("class_recall_drop", name, f"{words.kind} {label!r} on {name}", recall_before,
                                  recall_after, class_paired, settings.max_class_recall_drop,
                                  settings.hard_max_class_recall_drop, settings.significance))
    floor_ok = candidate.accuracy >= settings.min_old_split_accuracy
    if settings.min_old_split_accuracy > 0:
        checks.append(Check(name="old_split_floor", split=name, value=round(candidate.accuracy, 6),
                            threshold=settings.min_old_split_accuracy, passed=floor_ok,
                            reason=f"old split {name}: {words.metric} {candidate.accuracy:.3f} "
                                   f"{'>=' if floor_ok else '<'} floor {settings.min_old_split_accuracy:.3f}"))
    return checks


def _flip_rate_check(old_splits: dict[str, SplitComparison], settings: GateSettings, words: "Words") -> Check | None:
    counted = [s.paired for s in old_splits.values() if s.paired]
    total = sum(p.n for p in counted)
    if not total:
        return None
    flips = sum(p.champion_only for p in counted)
    rate = flips / total
    ok = rate <= settings.max_negative_flip_rate + 1e-12
    return Check(name="negative_flip_rate", split="old splits", value=round(rate, 6),
                 threshold=settings.max_negative_flip_rate, passed=ok,
                 reason=(f"negative flips: {flips} of {total} old {words.units} the champion got right are now wrong "
                         f"({rate * 100:.1f}%, allowed {settings.max_negative_flip_rate * 100:.1f}%)"))


def _new_split_checks(name: str, split: SplitComparison, settings: GateSettings, words: "Words") -> list[Check]:
    candidate = split.candidate.accuracy
    champion = split.champion.accuracy if split.champion else None
    ok = candidate >= settings.min_new_split_accuracy
    checks = [Check(name="new_split_floor", split=name, value=round(candidate, 6),
                    threshold=settings.min_new_split_accuracy, passed=ok,
                    reason=(f"new split {name}: {words.metric} {candidate:.3f} "
                            f"{'>=' if ok else '<'} floor {settings.min_new_split_accuracy:.3f}"))]
    if champion is not None:
        gain = candidate - champion
        ok = gain >= settings.new_split_min_gain - 1e-12
        checks.append(Check(name="new_split_gain", split=name, value=round(gain, 6),
                            threshold=settings.new_split_min_gain, passed=ok,
                            reason=(f"new split {name}: {words.metric} {champion:.3f} -> {candidate:.3f} "
                                    f"({_pts(gain)}; required {_pts(settings.new_split_min_gain)})")))
    return checks


def _canary_check(split: SplitComparison, settings: GateSettings) -> Check:
    accuracy = split.candidate.accuracy
    ok = accuracy >= settings.canary_min_accuracy - 1e-12
    shown = "; ".join(f"{m.id} ({m.label} read as {m.predicted})" for m in split.candidate_misses[:3])
    return Check(name="canary", split="canary", value=round(accuracy, 6), threshold=settings.canary_min_accuracy,
                 passed=ok, reason=(f"canary: {accuracy:.3f} of the must-pass examples right "
                                    f"(required {settings.canary_min_accuracy:.3f})" + (f"; missed {shown}" if shown else "")))


def decide(evaluation: EvalReport, settings: GateSettings) -> GateDecision:
    """Apply the gate to an eval report (what metrics/eval.json holds). A rejection is a decision
    with reasons, never an exception."""
    checks: list[Check] = []
    words = ENTITY_WORDS if evaluation.metric == "entity F1" else CLASS_WORDS
    old_splits = {n: s for n, s in evaluation.splits.items() if s.role == "old" and s.champion}
    for name, split in sorted(evaluation.splits.items()):
        if split.role == "old" and split.champion:
            checks += _old_split_checks(name, split, settings, words)
        elif split.role == "new":
            checks += _new_split_checks(name, split, settings, words)
        elif split.role == "canary":
            checks.append(_canary_check(split, settings))
    flip = _flip_rate_check(old_splits, settings, words)
    if flip is not None:
        checks.append(flip)
    if not any(c.name.startswith("new_split") or c.name.startswith("old_split") for c in checks):
        checks.append(Check(name="has_checks", split="", value=0, threshold=1, passed=False,
                            reason="no eval split to judge the candidate on"))
    return GateDecision.of(checks, evaluation.champion_version)
