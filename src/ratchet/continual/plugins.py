"""Retention techniques as training-loop plug-ins (the interface: ratchet.training.plugins).

Each plug-in is built before training from the champion (the model about to be continued) and
does one thing during `fit`:

- LogitDistillation     LwF: the champion's softened answers on the training rows, over the
                        classes it knows (retention.distillation_loss); optionally none on the
                        rows whose label the champion gets wrong
- FeatureDistillation   the champion's text vectors (what its head reads) on the replayed rows
- WeightPull            EWC or L2-SP: a quadratic pull toward the champion's weights
- AdversarialEmbeddings FGM: one adversarial step along the word embeddings' gradient
- EarlyStopOnOldData    stop when accuracy on held-out old rows slips; restore the best weights
- StoredLogitReplay     DER++: the logits stored with each replayed row when it entered the buffer
                        (the benchmark's `derpp` strategy; the pipeline's buffer stores no logits)

`build_plugins` picks them from the `continual` settings: that is the only place that maps a
setting to a technique.
"""

from __future__ import annotations

import logging

import pandas as pd
import torch

from ratchet.config import ContinualSettings
from ratchet.continual.early_stopping import OldDataMonitor
from ratchet.continual.retention import (
    FGM,
    WeightAnchor,
    distillation_loss,
    distillation_per_example,
    feature_distances,
    fisher_diagonal,
    rows_the_teacher_contradicts,
    text_vector_module,
)
from ratchet.training.batching import batch_logits, batch_module_outputs, encode
from ratchet.training.plugins import Schedule, TrainingPlugin, TrainingStep

log = logging.getLogger("ratchet")


class LogitDistillation(TrainingPlugin):
    """`distilled_rows` (one flag per training row; None: all) says which rows the term reads. A row
    left out adds nothing and the term stays the global batch's sum over its rows ÷ its size, so
    leaving no row out gives exactly the plain LwF term."""

    name = "lwf"

    def __init__(self, teacher_logits: torch.Tensor, weight: float, temperature: float,
                 classes: torch.Tensor | None, distilled_rows: torch.Tensor | None = None) -> None:
        self.teacher_logits, self.weight, self.temperature, self.classes = teacher_logits, weight, temperature, classes
        self.distilled_rows = distilled_rows

    def loss_term(self, step: TrainingStep) -> torch.Tensor:
        teacher = self.teacher_logits[step.mine]
        if self.distilled_rows is None:
            return step.share * self.weight * distillation_loss(step.logits, teacher, self.temperature, self.classes)
        per_row = distillation_per_example(step.logits, teacher, self.temperature, self.classes)
        return step.share * self.weight * (per_row * self.distilled_rows[step.mine]).mean()


class FeatureDistillation(TrainingPlugin):
    """Squared distance of the text vectors to the champion's, averaged over the batch's kept rows."""

    name = "feature kd"

    def __init__(self, module: torch.nn.Module, teacher_features: torch.Tensor, kept_rows: torch.Tensor,
                 weight: float) -> None:
        self.module, self.teacher_features, self.kept_rows, self.weight = module, teacher_features, kept_rows, weight
        self._captured: list[torch.Tensor] = []
        self._handle = None

    def on_train_start(self, model: torch.nn.Module, schedule: Schedule) -> None:
        self._handle = self.module.register_forward_hook(lambda _m, _args, output: self._captured.append(output))

    def before_forward(self, step_number: int) -> None:
        self._captured.clear()

    def loss_term(self, step: TrainingStep) -> torch.Tensor | None:
        if step.share <= 0:
            return None
        distances = feature_distances(self._captured[0], self.teacher_features[step.mine])
        kept = int(self.kept_rows[step.batch].sum())
        if not kept:
            return distances.sum() * 0.0
        # under DDP each worker sums its own rows and the gradient average (÷ world) must equal the
        # whole batch's mean, hence × world
        return self.weight * step.world * (distances * self.kept_rows[step.mine]).sum() / kept

    def on_train_end(self, model: torch.nn.Module) -> None:
        if self._handle is not None:
            self._handle.remove()


class WeightPull(TrainingPlugin):
    name = "weight anchor"

    def __init__(self, anchor: WeightAnchor) -> None:
        self.anchor = anchor

    def loss_term(self, step: TrainingStep) -> torch.Tensor:
        return self.anchor.penalty(step.model)


class AdversarialEmbeddings(TrainingPlugin):
    name = "fgm"

    def __init__(self, epsilon: float) -> None:
        self.epsilon = epsilon
        self._fgm: FGM | None = None

    def on_train_start(self, model: torch.nn.Module, schedule: Schedule) -> None:
        self._fgm = FGM(model, self.epsilon)

    def after_backward(self, step: TrainingStep) -> None:
        self._fgm.adversarial_step(step.task_loss)

    def on_train_end(self, model: torch.nn.Module) -> None:
        self._fgm.remove()


class EarlyStopOnOldData(TrainingPlugin):
    """Checks the monitor a few times an epoch from `min_epochs` on; restores its best weights at the end."""

    name = "early stopping"

    def __init__(self, monitor: OldDataMonitor) -> None:
        self.monitor = monitor
        self._every, self._total = 1, 0

    @property
    def trace(self) -> list[tuple[int, float]]:
        return self.monitor.trace

    def on_train_start(self, model: torch.nn.Module, schedule: Schedule) -> None:
        self._every = max(1, schedule.steps_per_epoch // self.monitor.checks_per_epoch)
        self._total = schedule.total_steps

    def should_stop(self, model: torch.nn.Module, step: TrainingStep) -> bool:
        due = step.epoch >= self.monitor.min_epochs and (step.step % self._every == 0 or step.step == self._total)
        return bool(due and self.monitor.should_stop(model, step.step))

    def on_train_end(self, model: torch.nn.Module) -> None:
        self.monitor.restore_best(model)


class StoredLogitReplay(TrainingPlugin):
    """DER++ (Buzzega et al., 2020): mean squared distance of the replayed rows' logits to the ones
    stored when each row entered the buffer, over every class; the rows' labels are replayed too
    (they are in the mix), which is the "++"."""

    name = "der++"

    def __init__(self, stored_logits: torch.Tensor, kept_rows: torch.Tensor, weight: float) -> None:
        self.stored_logits, self.kept_rows, self.weight = stored_logits, kept_rows, weight

    def loss_term(self, step: TrainingStep) -> torch.Tensor | None:
        kept = int(self.kept_rows[step.batch].sum())
        if step.share <= 0 or not kept:
            return None
        distances = ((step.logits.float() - self.stored_logits[step.mine]) ** 2).mean(dim=1)
        # as FeatureDistillation: the global batch's mean over its kept rows, whatever the DDP split
        return self.weight * step.world * (distances * self.kept_rows[step.mine]).sum() / kept


def build_plugins(model: torch.nn.Module, tokenizer, mix: pd.DataFrame, old_validation: pd.DataFrame,
                  known_labels: list[str], label_index: dict[str, int], continual: ContinualSettings,
                  max_length: int, seed: int) -> list[TrainingPlugin]:
    """The plug-ins `continual` asks for, built from `model` before any of its weights move.

    `mix` is the training mix (text, label, replayed) in the order the loop indexes it. Nothing is
    retained on a model that has learned nothing yet (`known_labels` empty: the first champion).
    """
    if not known_labels:
        return [AdversarialEmbeddings(continual.fgm_epsilon)] if continual.fgm_epsilon > 0 else []
    plugins: list[TrainingPlugin] = []
    device = next(model.parameters()).device
    distillation = continual.distillation
    if distillation.weight > 0:
        teacher = batch_logits(model, tokenizer, encode(tokenizer, mix["text"].tolist(), max_length))
        classes = torch.tensor(sorted(label_index[v] for v in known_labels), device=device)
        distilled_rows = None
        if distillation.skip_champion_errors:
            labels = torch.tensor([label_index[v] for v in mix["label"]], device=device)
            contradicted = rows_the_teacher_contradicts(teacher, labels, classes)
            log.info("distillation: %d of %d training rows left out, the champion gets their label wrong",
                     int(contradicted.sum()), len(mix))
            if contradicted.any():      # none: exactly the plain term (the same numbers to the last bit)
                distilled_rows = (~contradicted).float()
        plugins.append(LogitDistillation(teacher, distillation.weight, distillation.temperature, classes,
                                         distilled_rows))
    replayed = mix["replayed"].to_numpy(dtype=bool)
    if distillation.feature_weight > 0 and replayed.any():
        # the champion's text vectors of the replayed rows, the only ones kept (zeros elsewhere, unread)
        module = text_vector_module(model)
        vectors = batch_module_outputs(model, module, tokenizer,
                                       encode(tokenizer, mix.loc[replayed, "text"].tolist(), max_length))
        kept = torch.tensor(replayed, device=device)
        teacher_features = vectors.new_zeros(len(mix), vectors.shape[1])
        teacher_features[kept] = vectors
        plugins.append(FeatureDistillation(module, teacher_features, kept, distillation.feature_weight))
    if continual.regularization.method != "none":
        plugins.append(WeightPull(_weight_anchor(model, tokenizer, mix, old_validation, known_labels, label_index,
                                                 continual, max_length, seed)))
    if continual.fgm_epsilon > 0:
        plugins.append(AdversarialEmbeddings(continual.fgm_epsilon))
    stopping = continual.early_stopping
    if stopping.enabled and not old_validation.empty:
        plugins.append(EarlyStopOnOldData(OldDataMonitor(
            model, tokenizer, old_validation["text"].tolist(), [label_index[v] for v in old_validation["label"]],
            max_length, stopping.max_old_drop, stopping.checks_per_epoch, stopping.patience, stopping.min_epochs)))
    return plugins


def _weight_anchor(model, tokenizer, mix: pd.DataFrame, old_validation: pd.DataFrame, known_labels: list[str],
                   label_index: dict[str, int], continual: ContinualSettings, max_length: int,
                   seed: int) -> WeightAnchor:
    settings = continual.regularization
    # head rows of classes the champion never learned are free to move: their anchor is random
    unknown = sorted(set(label_index.values()) - {label_index[v] for v in known_labels})
    if settings.method == "l2sp":
        return WeightAnchor(model, settings.weight, free_classes=unknown)
    # EWC: the Fisher information of the champion on data it learned (the buffer's rows).
    old = pd.concat([mix.loc[mix["replayed"], ["text", "label"]], old_validation[["text", "label"]]],
                    ignore_index=True)
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
