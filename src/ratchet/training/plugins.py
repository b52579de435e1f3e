"""The interface between the training loop and whatever it optimises besides cross-entropy.

The loop (`ratchet.training.loop.fit`) knows no retention technique: it calls a list of plug-ins
at fixed points of every optimisation step. A plug-in adds a loss term, acts after the backward
pass (an adversarial step), or asks the loop to stop; the techniques themselves (distillation,
EWC/L2-SP, FGM, early stopping on old data, ...) live in `ratchet.continual.plugins`.

Order of one step, for every plug-in in list order:
    before_forward -> model forward -> loss_term (summed onto the task loss) -> backward
    -> after_backward -> clip, optimiser and schedule step -> should_stop
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class TrainingStep:
    """What a plug-in sees of one optimisation step (indices are positions in the training texts)."""

    model: torch.nn.Module          # the model itself (not the DDP wrapper)
    logits: torch.Tensor            # this worker's share of the batch
    mine: list[int]                 # the examples this worker computes
    batch: list[int]                # the whole global batch (every worker's examples)
    share: float                    # this worker's share of the batch: terms that average over it scale by it
    world: int                      # data-parallel workers (1 without DDP)
    task_loss: Callable[[], torch.Tensor]  # a fresh forward pass's (scaled) task loss, e.g. for FGM
    epoch: int
    step: int                       # this step's number, from 1


@dataclass(frozen=True)
class Schedule:
    """The run's shape, given to plug-ins before the first step."""

    steps_per_epoch: int
    total_steps: int
    epochs: int


class TrainingPlugin:
    """Base class: every hook does nothing. Override the ones a technique needs."""

    name = "plugin"

    def on_train_start(self, model: torch.nn.Module, schedule: Schedule) -> None:
        """Before the first step (register forward hooks here)."""

    def before_forward(self, step_number: int) -> None:
        """Before each forward pass (clear what a forward hook captured last time)."""

    def loss_term(self, step: TrainingStep) -> torch.Tensor | None:
        """A term added to this step's loss, or None."""
        return None

    def after_backward(self, step: TrainingStep) -> None:
        """After the loss's backward pass, before the optimiser step."""

    def should_stop(self, model: torch.nn.Module, step: TrainingStep) -> bool:
        """After the optimiser step: True ends training (the loop reports it stopped early)."""
        return False

    def on_train_end(self, model: torch.nn.Module) -> None:
        """After the last step (remove hooks, restore weights)."""
