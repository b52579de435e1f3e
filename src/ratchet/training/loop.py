"""The fine-tuning loop: plain PyTorch, tokenise once, dynamic padding, seeded, with progress."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ratchet.config import TrainSettings
from ratchet.training import distributed
from ratchet.training.batching import encode
from ratchet.continual.early_stopping import OldDataMonitor
from ratchet.continual.retention import FGM, WeightAnchor, distillation_loss, feature_distances

log = logging.getLogger("ratchet")


@dataclass(frozen=True)
class TrainReport:
    examples: int
    epochs: int
    steps: int
    examples_processed: int
    final_loss: float
    seconds: float
    stopped_early: bool = False
    old_accuracy_trace: list = field(default_factory=list)  # (step, accuracy on old data) per check
    bias_offsets: dict[str, float] | None = None  # new class -> offset added to its logit after training (bias correction)
    held_out_new: int = 0               # new rows held out of training to fit that offset

    @property
    def examples_per_second(self) -> float:
        return self.examples_processed / self.seconds if self.seconds else 0.0


def _linear_warmup(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


@dataclass
class Objective:
    """What an increment optimises besides plain cross-entropy; every term is off by default.

    Per-example tensors are indexed like the training texts and live on the model's device.
    """

    sample_weights: torch.Tensor | None = None      # class balancing of the mix (mean about 1)
    teacher_logits: torch.Tensor | None = None      # the champion's logits, for distillation
    kd_weight: float = 0.0
    kd_temperature: float = 2.0
    kd_classes: torch.Tensor | None = None          # distil only over the classes the champion knows
    teacher_features: torch.Tensor | None = None    # the champion's text vectors (what its head reads)
    feature_rows: torch.Tensor | None = None        # bool per example: the rows whose vectors are kept
    feature_weight: float = 0.0
    feature_module: torch.nn.Module | None = None   # the module that outputs the text vectors
    anchor: WeightAnchor | None = None              # EWC or L2-SP
    fgm_epsilon: float = 0.0
    monitor: "OldDataMonitor | None" = None         # early stopping on old data


def fit(model: torch.nn.Module, tokenizer, texts: list[str], label_ids: list[int],
        settings: TrainSettings, max_length: int, show_progress: bool = True,
        objective: Objective | None = None) -> TrainReport:
    """Fine-tune `model` in place on (texts, label_ids) with AdamW and a linear warm-up schedule.

    `objective` adds the retention terms of continual learning and early stopping on old data.
    """
    if not texts:
        raise ValueError("nothing to train on: the training mix is empty")
    objective = objective or Objective()
    torch.manual_seed(settings.seed)
    encoded = encode(tokenizer, texts, max_length)
    device = next(model.parameters()).device
    labels = torch.tensor(label_ids, dtype=torch.long, device=device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(texts) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    warmup = int(total_steps * settings.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _linear_warmup(step, warmup, total_steps))
    generator = torch.Generator().manual_seed(settings.seed)
    fgm = FGM(model, objective.fgm_epsilon) if objective.fgm_epsilon > 0 else None
    monitor = objective.monitor
    features: list[torch.Tensor] = []   # the text vectors of the current forward pass, for feature distillation
    feature_hook = None
    if objective.teacher_features is not None and objective.feature_weight > 0:
        feature_hook = objective.feature_module.register_forward_hook(
            lambda _m, _args, output: features.append(output))
    check_every = max(1, steps_per_epoch // monitor.checks_per_epoch) if monitor else 0

    def task_loss(logits: torch.Tensor, idx: list[int]) -> torch.Tensor:
        per_example = torch.nn.functional.cross_entropy(logits.float(), labels[idx], reduction="none")
        if objective.sample_weights is not None:
            weights = objective.sample_weights[idx]
            return (per_example * weights).sum() / weights.sum()
        return per_example.mean()

    def feature_term(student: torch.Tensor, mine: list[int], idx: list[int]) -> torch.Tensor:
        # mean distance over the batch's kept rows; under DDP each worker sums its own and the
        # gradient average (÷ world) must equal the whole batch's mean, hence × world
        distances = feature_distances(student, objective.teacher_features[mine])
        rows = objective.feature_rows
        kept = int(rows[idx].sum())
        return world * (distances * rows[mine]).sum() / kept if kept else distances.sum() * 0.0

    # Data parallel under torchrun: every worker walks the same global batches (same seed) and
    # trains on its share; DDP averages the gradients (see distributed.shard for the scaling).
    ddp = None
    if distributed.in_group():
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=True)
    net = ddp or model
    world = torch.distributed.get_world_size() if ddp else 1

    model.train()
    started, step, processed, loss_value, stopped_early = time.perf_counter(), 0, 0, float("nan"), False
    with Progress(TextColumn("[bold]train[/] {task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} steps, loss {task.fields[loss]}"),
                  TimeRemainingColumn(), disable=not show_progress, transient=True) as progress:
        bar = progress.add_task(f"{len(texts)} examples", total=total_steps, loss="-")
        for epoch in range(settings.epochs):
            order = torch.randperm(len(texts), generator=generator).tolist()
            epoch_loss, epoch_seen = 0.0, 0
            for start in range(0, len(order), settings.batch_size):
                idx = order[start:start + settings.batch_size]
                mine, share = distributed.shard(idx) if ddp else (idx, 1.0)
                task_share = share
                if ddp and share and objective.sample_weights is not None:
                    weights = objective.sample_weights
                    task_share = world * float(weights[mine].sum() / weights[idx].sum())
                batch = tokenizer.pad({"input_ids": [encoded[i] for i in mine]}, return_tensors="pt").to(device)
                features.clear()
                logits = net(**batch).logits
                loss = task_share * task_loss(logits, mine)
                if objective.teacher_logits is not None and objective.kd_weight > 0:
                    loss = loss + share * objective.kd_weight * distillation_loss(
                        logits, objective.teacher_logits[mine], objective.kd_temperature, objective.kd_classes)
                if feature_hook is not None and share > 0:
                    loss = loss + objective.feature_weight * feature_term(features[0], mine, idx)
                if objective.anchor is not None:
                    loss = loss + objective.anchor.penalty(model)
                loss.backward()
                if fgm is not None:
                    fgm.adversarial_step(lambda: task_share * task_loss(net(**batch).logits, mine))
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                loss_value = float(loss.detach())
                if ddp:  # the whole batch's loss: the workers' scaled losses average to it
                    total = loss.detach().clone()
                    torch.distributed.all_reduce(total)
                    loss_value = float(total) / world
                epoch_loss += loss_value * len(idx)
                epoch_seen += len(idx)
                processed += len(idx)
                step += 1
                progress.update(bar, advance=1, loss=f"{loss_value:.3f}")
                due = monitor and epoch >= monitor.min_epochs and (step % check_every == 0 or step == total_steps)
                if due and monitor.should_stop(model, step):
                    stopped_early = True
                    break
            log.info("train: epoch %d/%d, mean loss %.4f", epoch + 1, settings.epochs, epoch_loss / max(1, epoch_seen))
            if stopped_early:
                break
    if fgm is not None:
        fgm.remove()
    if feature_hook is not None:
        feature_hook.remove()
    if monitor:
        monitor.restore_best(model)
    model.eval()
    report = TrainReport(examples=len(texts), epochs=settings.epochs, steps=step,
                         examples_processed=processed, final_loss=loss_value,
                         seconds=time.perf_counter() - started, stopped_early=stopped_early,
                         old_accuracy_trace=monitor.trace if monitor else [])
    log.info("train: %d examples processed in %.1fs (%.1f examples/s)%s", report.examples_processed,
             report.seconds, report.examples_per_second, ", stopped early on old data" if stopped_early else "")
    return report
