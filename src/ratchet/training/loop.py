"""The fine-tuning loop: plain PyTorch, tokenise once, dynamic padding, seeded, with progress."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import get_linear_schedule_with_warmup

from ratchet.config import TrainSettings
from ratchet.training import distributed
from ratchet.training.batching import encode
from ratchet.training.plugins import Schedule, TrainingPlugin, TrainingStep

log = logging.getLogger("ratchet")


@dataclass(frozen=True)
class TrainReport:
    examples: int
    epochs: int
    steps: int
    examples_processed: int
    final_loss: float
    seconds: float
    stopped_early: bool = False         # a plug-in ended training before the last step

    @property
    def examples_per_second(self) -> float:
        return self.examples_processed / self.seconds if self.seconds else 0.0


def fit(model: torch.nn.Module, tokenizer, texts: list[str], label_ids: list[int],
        settings: TrainSettings, max_length: int, show_progress: bool = True,
        example_weights: torch.Tensor | None = None,
        plugins: Sequence[TrainingPlugin] = ()) -> TrainReport:
    """Fine-tune `model` in place on (texts, label_ids) with AdamW and a linear warm-up schedule.

    `example_weights` (one per text, on the model's device) weigh the cross-entropy; `plugins` add
    loss terms and hooks (ratchet.training.plugins), in list order.
    """
    if not texts:
        raise ValueError("nothing to train on: the training mix is empty")
    torch.manual_seed(settings.seed)
    encoded = encode(tokenizer, texts, max_length)
    device = next(model.parameters()).device
    labels = torch.tensor(label_ids, dtype=torch.long, device=device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(texts) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * settings.warmup_ratio), total_steps)
    generator = torch.Generator().manual_seed(settings.seed)

    def task_loss(logits: torch.Tensor, idx: list[int]) -> torch.Tensor:
        per_example = torch.nn.functional.cross_entropy(logits.float(), labels[idx], reduction="none")
        if example_weights is not None:
            weights = example_weights[idx]
            return (per_example * weights).sum() / weights.sum()
        return per_example.mean()

    # Data parallel under torchrun: every worker walks the same global batches (same seed) and
    # trains on its share; DDP averages the gradients (see distributed.shard for the scaling).
    ddp = None
    if distributed.in_group():
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=True)
    net = ddp or model
    world = torch.distributed.get_world_size() if ddp else 1
    for plugin in plugins:
        plugin.on_train_start(model, Schedule(steps_per_epoch, total_steps, settings.epochs))

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
                if ddp and share and example_weights is not None:
                    task_share = world * float(example_weights[mine].sum() / example_weights[idx].sum())
                batch = tokenizer.pad({"input_ids": [encoded[i] for i in mine]}, return_tensors="pt").to(device)
                for plugin in plugins:
                    plugin.before_forward(step + 1)
                logits = net(**batch).logits
                loss = task_share * task_loss(logits, mine)
                context = TrainingStep(model=model, logits=logits, mine=mine, batch=idx, share=share, world=world,
                                       task_loss=lambda: task_share * task_loss(net(**batch).logits, mine),
                                       epoch=epoch, step=step + 1)
                for plugin in plugins:
                    term = plugin.loss_term(context)
                    if term is not None:
                        loss = loss + term
                loss.backward()
                for plugin in plugins:
                    plugin.after_backward(context)
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
                # every plug-in is asked (each keeps its own trace), then the loop stops if any said so
                if any([plugin.should_stop(model, context) for plugin in plugins]):
                    stopped_early = True
                    break
            log.info("train: epoch %d/%d, mean loss %.4f", epoch + 1, settings.epochs, epoch_loss / max(1, epoch_seen))
            if stopped_early:
                break
    for plugin in plugins:
        plugin.on_train_end(model)
    model.eval()
    report = TrainReport(examples=len(texts), epochs=settings.epochs, steps=step,
                         examples_processed=processed, final_loss=loss_value,
                         seconds=time.perf_counter() - started, stopped_early=stopped_early)
    log.info("train: %d examples processed in %.1fs (%.1f examples/s)%s", report.examples_processed,
             report.seconds, report.examples_per_second, ", stopped early" if stopped_early else "")
    return report
