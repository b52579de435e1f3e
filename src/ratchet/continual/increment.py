"""One increment of continual learning: new data + replay, trained with the configured retention.

Used by the train stage (on the champion from data/champion) and by `ratchet bench cl` (on a model
held in memory), so the benchmark measures exactly what the pipeline does. The model passed in is
the champion about to be continued: before any weight moves, it supplies the distillation targets,
the EWC/L2-SP anchor and the early-stopping baseline, so no second copy of the champion is loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import pandas as pd
import torch

from ratchet.config import ContinualSettings, TrainSettings
from ratchet.continual import bias_correction
from ratchet.continual.early_stopping import OldDataMonitor
from ratchet.continual.retention import WeightAnchor, align_head, fisher_diagonal, text_vector_module
from ratchet.training.batching import batch_logits, batch_module_outputs, encode
from ratchet.training.loop import Objective, TrainReport, fit

log = logging.getLogger("ratchet")


@dataclass(frozen=True)
class IncrementData:
    """The rows of one increment; every frame has `text` and `label` columns."""

    new: pd.DataFrame
    replay: pd.DataFrame             # sampled from the replay buffer, part of the training mix
    old_validation: pd.DataFrame     # buffer rows not replayed: early stopping and the EWC Fisher
    known_labels: list[str]          # classes the champion has learned (distilled); empty at first

    def training_mix(self, seed: int) -> pd.DataFrame:
        mix = pd.concat([self.new[["text", "label"]].assign(replayed=False),
                         self.replay[["text", "label"]].assign(replayed=True)], ignore_index=True)
        return mix.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def class_balance_weights(labels: list[str], new_labels: set[str]) -> list[float]:
    """Per-example weights that give each class seen only through replay the weight of a mean new class.

    Classes present in the new data keep weight 1, so the label balance of the new data (say 75%
    positive reviews) stays as it is; a replayed-only class with 10 rows next to new classes of
    300 rows weighs as much as one of them. Normalised to mean 1.
    """
    counts = pd.Series(labels).value_counts()
    present = [label for label in counts.index if label in new_labels]
    mean_new = counts[present].mean() if present else counts.mean()
    raw = [1.0 if label in new_labels else mean_new / counts[label] for label in labels]
    scale = len(raw) / sum(raw)
    return [w * scale for w in raw]


def learn_increment(model: torch.nn.Module, tokenizer, data: IncrementData, labels: list[str],
                    continual: ContinualSettings, train: TrainSettings, max_length: int,
                    show_progress: bool = True) -> tuple[TrainReport, pd.DataFrame]:
    """Train `model` in place on the increment; returns the report and the training mix used."""
    label_index = {label: i for i, label in enumerate(labels)}
    continuing = bool(data.known_labels)
    data, held_out = _hold_out_for_bias_correction(data, continual, train.seed)
    mix = data.training_mix(train.seed)
    unknown = sorted(set(mix["label"]) - set(label_index))
    if unknown:
        raise ValueError(f"the training mix has label(s) {unknown} that are not in data.labels {labels}")
    label_ids = [label_index[v] for v in mix["label"]]
    device = next(model.parameters()).device
    objective = Objective(fgm_epsilon=continual.fgm_epsilon)
    if continual.replay.balance_classes:
        weights = class_balance_weights(mix["label"].tolist(), set(data.new["label"]))
        objective.sample_weights = torch.tensor(weights, device=device)

    distillation = continual.distillation
    if continuing and distillation.weight > 0:
        objective.teacher_logits = batch_logits(model, tokenizer, encode(tokenizer, mix["text"].tolist(), max_length))
        objective.kd_weight = distillation.weight
        objective.kd_temperature = distillation.temperature
        objective.kd_classes = torch.tensor(sorted(label_index[v] for v in data.known_labels), device=device)
    if continuing and distillation.feature_weight > 0 and mix["replayed"].any():
        # the champion's text vectors of the replayed rows, the only ones kept (zeros elsewhere, unread)
        replayed = mix["replayed"].to_numpy(dtype=bool)
        objective.feature_module = text_vector_module(model)
        vectors = batch_module_outputs(model, objective.feature_module, tokenizer,
                                       encode(tokenizer, mix.loc[replayed, "text"].tolist(), max_length))
        objective.teacher_features = vectors.new_zeros(len(mix), vectors.shape[1])
        objective.feature_rows = torch.tensor(replayed, device=device)
        objective.teacher_features[objective.feature_rows] = vectors
        objective.feature_weight = distillation.feature_weight
    if continuing and continual.regularization.method != "none":
        objective.anchor = _weight_anchor(model, tokenizer, data, label_index, continual, max_length, train.seed)
    if continuing and continual.early_stopping.enabled and not data.old_validation.empty:
        objective.monitor = OldDataMonitor(
            model, tokenizer, data.old_validation["text"].tolist(),
            [label_index[v] for v in data.old_validation["label"]], max_length,
            continual.early_stopping.max_old_drop, continual.early_stopping.checks_per_epoch,
            continual.early_stopping.patience, continual.early_stopping.min_epochs)
    report = fit(model, tokenizer, mix["text"].tolist(), label_ids, train, max_length,
                 show_progress=show_progress, objective=objective)
    if continuing and continual.align_head:
        new_classes = sorted({label_index[v] for v in data.new["label"]} - {label_index[v] for v in data.known_labels})
        factor = align_head(model, sorted(label_index[v] for v in data.known_labels), new_classes)
        if factor is not None:
            log.info("train: aligned the head rows of %d new class(es) to the old ones (x%.3f)",
                     len(new_classes), factor)
    if not held_out.empty:
        report = replace(report, held_out_new=len(held_out),
                         bias_offsets=_correct_bias(model, tokenizer, data.old_validation, held_out,
                                                   label_index, max_length,
                                                   continual.bias_correction.old_class_weight))
    return report, mix


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
    kept, held_out = bias_correction.hold_out_new_rows(data.new, arriving, settings.holdout_fraction,
                                                       settings.min_holdout_per_class, seed)
    return replace(data, new=kept), held_out


def _correct_bias(model, tokenizer, old_validation: pd.DataFrame, held_out: pd.DataFrame,
                  label_index: dict[str, int], max_length: int, old_class_weight: float) -> dict[str, float]:
    # only classes with held-out rows: an offset fitted without a single row of its class would
    # just push that class down
    new_classes = sorted({label_index[v] for v in held_out["label"]})
    rows = pd.concat([old_validation[["text", "label"]], held_out[["text", "label"]]], ignore_index=True)
    logits = batch_logits(model, tokenizer, encode(tokenizer, rows["text"].tolist(), max_length))
    targets = torch.tensor([label_index[v] for v in rows["label"]], device=logits.device)
    offsets = bias_correction.fit_offsets(logits, targets, new_classes, old_class_weight)
    bias_correction.shift_new_classes(model, offsets)
    names = {i: label for label, i in label_index.items()}
    log.info("train: bias correction on new classes' logits: %s, fitted on %d old and %d held-out new rows",
             ", ".join(f"{names[c]} {b:+.3f}" for c, b in offsets.items()), len(old_validation), len(held_out))
    return {names[c]: b for c, b in offsets.items()}


def _weight_anchor(model, tokenizer, data: IncrementData, label_index: dict[str, int],
                   continual: ContinualSettings, max_length: int, seed: int) -> WeightAnchor:
    settings = continual.regularization
    # head rows of classes the champion never learned are free to move: their anchor is random
    unknown = sorted(set(label_index.values()) - {label_index[v] for v in data.known_labels})
    if settings.method == "l2sp":
        return WeightAnchor(model, settings.weight, free_classes=unknown)
    # EWC: the Fisher information of the champion on data it learned (the buffer's rows).
    old = pd.concat([data.replay, data.old_validation], ignore_index=True)
    old = old.sample(n=min(len(old), settings.fisher_examples), random_state=seed) if len(old) else old
    if old.empty:
        log.info("train: EWC has no old examples to estimate the Fisher information on; using L2-SP")
        return WeightAnchor(model, settings.weight, free_classes=unknown)
    encoded = encode(tokenizer, old["text"].tolist(), max_length)
    device = next(model.parameters()).device
    batch_size = 8
    batches = [tokenizer.pad({"input_ids": encoded[i:i + batch_size]}, return_tensors="pt").to(device)
               for i in range(0, len(encoded), batch_size)]
    targets = torch.tensor([label_index[v] for v in old["label"]], device=device)
    return WeightAnchor(model, settings.weight, importance=fisher_diagonal(model, batches, targets, batch_size),
                        free_classes=unknown)
