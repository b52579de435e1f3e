"""One increment of continual learning: new data + replay, trained with the configured retention.

Used by the train stage (on the champion from data/champion) and by `ratchet bench cl` (on a model
held in memory), so the benchmark measures exactly what the pipeline does. The model passed in is
the champion about to be continued: before any weight moves, it supplies the distillation targets,
the EWC/L2-SP anchor and the early-stopping baseline, so no second copy of the champion is loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable

import pandas as pd
import torch

from ratchet.config import ContinualSettings, TrainSettings
from ratchet.continual import bias_correction
from ratchet.continual.mix import IncrementData, brings_new_classes, class_balance_weights, new_class_floor
from ratchet.continual.plasticity import PlasticityCheck, check_step, held_out_recall
from ratchet.continual.plugins import EarlyStopOnOldData, build_plugins
from ratchet.continual.retention import align_head, classifier_head
from ratchet.training.batching import batch_logits, encode
from ratchet.training.loop import TrainReport, fit
from ratchet.training.plugins import TrainingPlugin

log = logging.getLogger("ratchet")

@dataclass(frozen=True)
class IncrementReport:
    """How an increment went: the loop's report and what the retention steps around it did."""

    training: TrainReport
    old_accuracy_trace: list[tuple[int, float]] = field(default_factory=list)  # early stopping's checks
    bias_offsets: dict[str, float] | None = None  # new class -> offset added to its logit (bias correction)
    held_out_new: int = 0                         # new rows held out of training to fit that offset
    plasticity: list[PlasticityCheck] = field(default_factory=list)  # the guard's checks of those steps

    @property
    def examples_processed(self) -> int:
        return self.training.examples_processed

    @property
    def stopped_early(self) -> bool:
        return self.training.stopped_early


def learn_increment(model: torch.nn.Module, tokenizer, data: IncrementData, labels: list[str],
                    continual: ContinualSettings, train: TrainSettings, max_length: int,
                    show_progress: bool = True,
                    extra_plugins: Callable[[pd.DataFrame], list[TrainingPlugin]] | None = None,
                    ) -> tuple[IncrementReport, pd.DataFrame]:
    """Train `model` in place on the increment; returns the report and the training mix used.

    `extra_plugins` builds plug-ins the settings do not name (the benchmark's DER++) from the
    training mix, in the order the loop indexes it."""
    label_index = {label: i for i, label in enumerate(labels)}
    train = steps_floor(train, data)
    data, held_out = _hold_out_for_bias_correction(data, continual, train.seed)
    mix = data.mix
    unknown = sorted(set(mix["label"]) - set(label_index))
    if unknown:
        raise ValueError(f"the training mix has label(s) {unknown} that are not in data.labels {labels}")
    label_ids = [label_index[v] for v in mix["label"]]
    device = next(model.parameters()).device
    weights = None
    if continual.replay.balance_classes:
        weights = torch.tensor(class_balance_weights(mix["label"].tolist(), set(data.new["label"])), device=device)
    plugins = build_plugins(model, tokenizer, mix, data.old_validation, data.known_labels, label_index,
                            continual, max_length, train.seed)
    if extra_plugins is not None:
        plugins += extra_plugins(mix)
    training = fit(model, tokenizer, mix["text"].tolist(), label_ids, train, max_length,
                   show_progress=show_progress, example_weights=weights, plugins=plugins)
    report = IncrementReport(training=training, old_accuracy_trace=next(
        (p.trace for p in plugins if isinstance(p, EarlyStopOnOldData)), []))
    if data.known_labels:
        report = _after_training(model, tokenizer, data, held_out, label_index, continual, max_length, report)
    return report, mix


def steps_floor(train: TrainSettings, data: IncrementData) -> TrainSettings:
    """`train` with `min_steps` raised to `new_class_min_steps` when the increment brings classes the
    champion has not learned: their few rows are what replay and distillation pull against. (The first
    increment, with no champion and nothing to retain, keeps `min_steps`.)"""
    floor = new_class_floor(train, data.new["label"], data.known_labels)
    if floor:
        log.info("train: new class(es) %s: at least %d optimiser steps",
                 brings_new_classes(data.new["label"], data.known_labels), floor)
        return train.model_copy(update={"min_steps": floor})
    return train


def _after_training(model, tokenizer, data: IncrementData, held_out: pd.DataFrame, label_index: dict[str, int],
                    continual: ContinualSettings, max_length: int, report: IncrementReport) -> IncrementReport:
    """Weight aligning and bias correction, each under the plasticity guard (ratchet.continual.plasticity)."""
    names = {i: label for label, i in label_index.items()}
    old_classes = sorted(label_index[v] for v in data.known_labels)
    new_classes = sorted({label_index[v] for v in data.new["label"]} - set(old_classes))
    targets = torch.tensor([label_index[v] for v in held_out["label"]])

    def recall() -> tuple[dict[int, float], dict[int, int]]:
        if held_out.empty:
            return {}, {}
        logits = batch_logits(model, tokenizer, encode(tokenizer, held_out["text"].tolist(), max_length))
        return held_out_recall(logits.cpu(), targets, new_classes)

    # what the new classes reach as trained, before any step below (the guard's floors)
    floors, rows = recall() if continual.plasticity_guard else ({}, {})
    checks: list[PlasticityCheck] = []
    if continual.align_head and new_classes:
        head = classifier_head(model)
        saved = (head.weight.detach().clone(), None if head.bias is None else head.bias.detach().clone())
        factor = align_head(model, old_classes, new_classes)
        if factor is not None:
            log.info("train: aligned the head rows of %d new class(es) to the old ones (x%.3f)",
                     len(new_classes), factor)
            if floors:
                step_checks = check_step("align_head", floors, recall()[0], rows, names)
                checks += step_checks
                if not step_checks[0].kept:
                    with torch.no_grad():
                        head.weight.copy_(saved[0])
                        if saved[1] is not None:
                            head.bias.copy_(saved[1])
    if not held_out.empty:
        offsets = _correct_bias(model, tokenizer, data.old_validation, held_out, label_index, max_length,
                                continual.bias_correction.old_class_weight, floors)
        if floors:
            checks += check_step("bias_correction", floors, recall()[0], rows, names)
        report = replace(report, held_out_new=len(held_out), bias_offsets=offsets)
    return replace(report, plasticity=checks)


def _hold_out_for_bias_correction(data: IncrementData, continual: ContinualSettings,
                                  seed: int) -> tuple[IncrementData, pd.DataFrame]:
    """(the increment without the held-out rows, the held-out rows of the classes new to the champion)."""
    arriving = set(data.new["label"]) - set(data.known_labels)
    settings = continual.bias_correction
    if not (data.known_labels and settings.enabled and arriving):
        return data, data.new.iloc[:0]
    if data.old_validation.empty:
        log.info("train: no held-out buffer rows of the old classes: no bias correction this time")
        return data, data.new.iloc[:0]
    new = data.new
    kept_new, held_out = bias_correction.hold_out_new_rows(new, arriving, settings.holdout_fraction,
                                                           settings.min_holdout_per_class, seed)
    kept = data.mix.drop(index=new.index.difference(kept_new.index)).reset_index(drop=True)
    return replace(data, mix=kept), held_out


def _correct_bias(model, tokenizer, old_validation: pd.DataFrame, held_out: pd.DataFrame,
                  label_index: dict[str, int], max_length: int, old_class_weight: float,
                  recall_floor: dict[int, float]) -> dict[str, float]:
    # only classes with held-out rows: an offset fitted without a single row of its class would
    # just push that class down
    new_classes = sorted({label_index[v] for v in held_out["label"]})
    rows = pd.concat([old_validation[["text", "label"]], held_out[["text", "label"]]], ignore_index=True)
    logits = batch_logits(model, tokenizer, encode(tokenizer, rows["text"].tolist(), max_length))
    targets = torch.tensor([label_index[v] for v in rows["label"]], device=logits.device)
    offsets = bias_correction.fit_offsets(logits, targets, new_classes, old_class_weight, recall_floor=recall_floor)
    bias_correction.shift_new_classes(model, offsets)
    names = {i: label for label, i in label_index.items()}
    log.info("train: bias correction on new classes' logits: %s, fitted on %d old and %d held-out new rows",
             ", ".join(f"{names[c]} {b:+.3f}" for c, b in offsets.items()), len(old_validation), len(held_out))
    return {names[c]: b for c, b in offsets.items()}
