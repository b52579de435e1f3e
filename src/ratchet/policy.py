"""When to train: on every batch (online), on drift, or once enough new examples wait (offline)."""

from __future__ import annotations

from dataclasses import dataclass

from ratchet.config import PolicySettings


@dataclass(frozen=True)
class PolicyDecision:
    train: bool
    reason: str


def should_train(settings: PolicySettings, drifted: bool, pending_examples: int) -> PolicyDecision:
    if settings.train_on == "every_batch":
        return PolicyDecision(True, "policy every_batch: train on each accepted batch")
    if settings.train_on == "drift":
        if drifted:
            return PolicyDecision(True, "policy drift: the batch drifted from the reference")
        return PolicyDecision(False, "policy drift: no drift, waiting with the accepted data")
    if pending_examples >= settings.min_new_examples:
        return PolicyDecision(True, f"policy min_new_examples: {pending_examples} >= {settings.min_new_examples} "
                                    "new training examples wait")
    return PolicyDecision(False, f"policy min_new_examples: {pending_examples} < {settings.min_new_examples} "
                                 "new training examples, accumulating")
