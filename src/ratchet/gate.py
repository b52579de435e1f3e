"""The promotion decision: candidate against champion on the same eval splits, check by check.

A rejection is an outcome, not an error: decide() always returns a GateResult with reasons.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ratchet.config import GateSettings


@dataclass(frozen=True)
class Check:
    name: str
    split: str
    value: float
    threshold: float
    passed: bool
    reason: str


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: list[Check]
    champion_version: str | None

    def failing(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        if self.passed:
            return f"passed all {len(self.checks)} checks"
        return "; ".join(c.reason for c in self.failing())

    def to_dict(self) -> dict:
        checks = sorted(self.checks, key=lambda c: c.passed)  # failing checks first
        return {"passed": self.passed, "champion_version": self.champion_version,
                "summary": self.summary(), "checks": [asdict(c) for c in checks]}


def _pts(value: float) -> str:
    return f"{value * 100:+.1f} pts"


def decide(evaluation: dict, settings: GateSettings) -> GateResult:
    """Apply the gate to an eval report (metrics/eval.json's content)."""
    checks: list[Check] = []
    for name, split in sorted(evaluation["splits"].items()):
        candidate = split["candidate"]["accuracy"]
        champion = split["champion"]["accuracy"] if split.get("champion") else None
        if split["role"] == "old":
            if champion is None:
                continue
            drop = champion - candidate
            ok = drop <= settings.max_old_split_drop + 1e-12
            checks.append(Check(
                name="old_split_drop", split=name, value=round(drop, 6), threshold=settings.max_old_split_drop,
                passed=ok,
                reason=(f"old split {name}: accuracy {champion:.3f} -> {candidate:.3f} "
                        f"({_pts(-drop)}; allowed drop {settings.max_old_split_drop * 100:.1f} pts)")))
            continue
        ok = candidate >= settings.min_new_split_accuracy
        checks.append(Check(
            name="new_split_floor", split=name, value=round(candidate, 6),
            threshold=settings.min_new_split_accuracy, passed=ok,
            reason=(f"new split {name}: accuracy {candidate:.3f} "
                    f"{'>=' if ok else '<'} floor {settings.min_new_split_accuracy:.3f}")))
        if champion is not None:
            gain = candidate - champion
            ok = gain >= settings.new_split_min_gain - 1e-12
            checks.append(Check(
                name="new_split_gain", split=name, value=round(gain, 6), threshold=settings.new_split_min_gain,
                passed=ok,
                reason=(f"new split {name}: accuracy {champion:.3f} -> {candidate:.3f} "
                        f"({_pts(gain)}; required {_pts(settings.new_split_min_gain)})")))
    if not checks:
        checks.append(Check(name="has_checks", split="", value=0, threshold=1, passed=False,
                            reason="no eval split to judge the candidate on"))
    return GateResult(passed=all(c.passed for c in checks), checks=checks,
                      champion_version=evaluation.get("champion_version"))
