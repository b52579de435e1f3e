"""The plasticity guard: no retention step after training may cost a new class what it learned.

Weight aligning and bias correction act on the trained model's head to protect the old classes.
Both can push a class the increment brings below what training taught it; on a stream whose last
step brought classes resembling earlier ones that left the newest step at 0.015 accuracy, a model
that no longer learns. The guard measures each new class's recall on its held-out rows (rows no
training step saw) before the steps run, and
- undoes weight aligning when it lowers any of them,
- constrains bias correction's offsets so none falls below it (bias_correction.fit_offsets),
and logs every check with its numbers. Retention during training (replay, distillation, weight
pulls) cannot be checked this way without training twice: the gate's new-split checks and the
feedback loop's "less retention" retry cover it (docs/continual.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ratchet.continual.bias_correction import class_recall

log = logging.getLogger("ratchet")


@dataclass(frozen=True)
class PlasticityCheck:
    """One retention step's effect on one new class's recall on its held-out rows."""

    step: str          # align_head | bias_correction
    label: str
    rows: int          # held-out rows of that class
    without: float     # recall without the step
    after: float       # recall with it (as kept: an undone step reports `without`)
    kept: bool         # False: the step was undone because it lowered a new class


def check_step(step: str, without: dict[int, float], after: dict[int, float], rows: dict[int, int],
               names: dict[int, str]) -> list[PlasticityCheck]:
    """The checks of one step; `kept` is False for every class when any class lost recall."""
    lowered = any(after[c] < without[c] - 1e-9 for c in without)
    checks = [PlasticityCheck(step=step, label=names[c], rows=rows[c], without=without[c],
                              after=without[c] if lowered else after[c], kept=not lowered) for c in sorted(without)]
    log.info("train: plasticity check after %s: %s%s", step,
             ", ".join(f"{names[c]} {without[c]:.2f} -> {after[c]:.2f} ({rows[c]} rows)" for c in sorted(without)),
             "; undone (a new class lost recall on its held-out rows)" if lowered else "; kept")
    return checks


def held_out_recall(logits: torch.Tensor, targets: torch.Tensor, classes: list[int]) -> tuple[dict[int, float], dict[int, int]]:
    """(recall, rows) per class among `classes` on the rows of logits/targets."""
    rows = {c: int((targets == c).sum()) for c in classes if bool((targets == c).any())}
    return class_recall(logits, targets, list(rows)), rows
