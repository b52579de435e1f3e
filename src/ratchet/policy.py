"""When to train: on every batch (online), or offline once drift, enough new examples or the
schedule says so, never within the cooldown after the last training."""

from __future__ import annotations

from dataclasses import dataclass

from ratchet.config import PolicySettings

SEVERITY_ORDER = ("none", "low", "medium", "high")


@dataclass(frozen=True)
class PolicyDecision:
    train: bool
    reason: str


def should_train(settings: PolicySettings, severity: str, pending_examples: int,
                 hours_since_training: float | None) -> PolicyDecision:
    """`severity`: the drift verdict of the newest batch ("none" when there is none);
    `hours_since_training`: since the last training ended (None: never trained)."""
    since = "never trained" if hours_since_training is None else f"last training {hours_since_training:.1f} h ago"
    if hours_since_training is not None and hours_since_training < settings.cooldown_hours:
        return PolicyDecision(False, f"cooldown: {since} < {settings.cooldown_hours:g} h, accumulating")
    if settings.train_on == "every_batch":
        return PolicyDecision(True, "policy every_batch: train on each accepted batch")
    if settings.train_on == "drift":
        wanted = SEVERITY_ORDER.index(settings.min_severity)
        if SEVERITY_ORDER.index(severity) >= wanted:
            return PolicyDecision(True, f"policy drift: verdict {severity} >= {settings.min_severity}")
        return PolicyDecision(False, f"policy drift: verdict {severity} < {settings.min_severity}, accumulating")
    if settings.train_on == "schedule":
        if hours_since_training is None or hours_since_training >= settings.every_hours:
            return PolicyDecision(True, f"policy schedule: {since}, every {settings.every_hours:g} h")
        return PolicyDecision(False, f"policy schedule: {since} < {settings.every_hours:g} h, accumulating")
    if pending_examples >= settings.min_new_examples:
        return PolicyDecision(True, f"policy min_new_examples: {pending_examples} >= {settings.min_new_examples} "
                                    "new training examples wait")
    return PolicyDecision(False, f"policy min_new_examples: {pending_examples} < {settings.min_new_examples} "
                                 "new training examples, accumulating")
