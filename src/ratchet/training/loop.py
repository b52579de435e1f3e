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
    first_step_seconds: float = 0.0     # the first step alone (allocations, lazy initialisation)
    first_step_examples: int = 0

    @property
    def examples_per_second(self) -> float:
        return self.examples_processed / self.seconds if self.seconds else 0.0

    @property
    def steady_examples_per_second(self) -> float:
        """Throughput after the first step: what ../shared/anchors/plain_loop.py measures."""
        rest = self.seconds - self.first_step_seconds
        return (self.examples_processed - self.first_step_examples) / rest if rest > 0 else 0.0


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype the forward passes run in (None: plain fp32). `auto` is bf16 on CUDA
    GPUs that support it (Ampere on): the weights and optimiser state stay fp32, so no loss scaling."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def epochs_for(settings: TrainSettings, examples: int) -> int:
    """`settings.epochs`, or more when that many passes over `examples` examples would take fewer
    than `settings.min_steps` optimiser steps: an increment of a few dozen rows is a dozen steps at
    two epochs, too few for LoRA to learn a new class (docs/benchmarks.md)."""
    steps_per_epoch = math.ceil(examples / settings.batch_size)
    return max(settings.epochs, math.ceil(settings.min_steps / steps_per_epoch))


def optimizer_and_schedule(model: torch.nn.Module, settings: TrainSettings, examples: int):
    """The trainable parameters, AdamW on them and transformers' linear warm-up then decay over
    every step of `epochs_for` epochs of `examples` examples."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    # foreach: bit for bit the numbers of torch's CPU default (one tensor at a time), in 60 % of its time
    # (0.4 s of every tiny-model training in the tests, measured on 2 cores; tests/unit/test_modeling.py)
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay,
                                  foreach=True)
    total_steps = math.ceil(examples / settings.batch_size) * epochs_for(settings, examples)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * settings.warmup_ratio), total_steps)
    return trainable, optimizer, scheduler


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
    trainable, optimizer, scheduler = optimizer_and_schedule(model, settings, len(texts))
    steps_per_epoch = math.ceil(len(texts) / settings.batch_size)
    epochs = epochs_for(settings, len(texts))
    total_steps = steps_per_epoch * epochs
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
    dtype = autocast_dtype(device, settings.precision)

    def forward(batch) -> torch.Tensor:
        """The logits, in fp32 whatever the autocast dtype (every loss term reads them)."""
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return net(**batch).logits.float()

    world = torch.distributed.get_world_size() if ddp else 1
    for plugin in plugins:
        plugin.on_train_start(model, Schedule(steps_per_epoch, total_steps, epochs))

    model.train()
    started, step, processed, loss_value, stopped_early = time.perf_counter(), 0, 0, float("nan"), False
    first_step = (0.0, 0)
    with Progress(TextColumn("[bold]train[/] {task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} steps, loss {task.fields[loss]}"),
                  TimeRemainingColumn(), disable=not show_progress, transient=True) as progress:
        bar = progress.add_task(f"{len(texts)} examples", total=total_steps, loss="-")
        for epoch in range(epochs):
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
                logits = forward(batch)
                loss = task_share * task_loss(logits, mine)
                context = TrainingStep(model=model, logits=logits, mine=mine, batch=idx, share=share, world=world,
                                       task_loss=lambda: task_share * task_loss(forward(batch), mine),
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
                if step == 1:
                    first_step = (time.perf_counter() - started, len(idx))
                progress.update(bar, advance=1, loss=f"{loss_value:.3f}")
                # every plug-in is asked (each keeps its own trace), then the loop stops if any said so
                if any([plugin.should_stop(model, context) for plugin in plugins]):
                    stopped_early = True
                    break
            log.info("train: epoch %d/%d, mean loss %.4f", epoch + 1, epochs, epoch_loss / max(1, epoch_seen))
            if stopped_early:
                break
    for plugin in plugins:
        plugin.on_train_end(model)
    model.eval()
    report = TrainReport(examples=len(texts), epochs=epochs, steps=step,
                         examples_processed=processed, final_loss=loss_value,
                         seconds=time.perf_counter() - started, stopped_early=stopped_early,
                         first_step_seconds=first_step[0], first_step_examples=first_step[1])
    log.info("train: %d examples processed in %.1fs (%.1f examples/s%s)%s", report.examples_processed,
             report.seconds, report.examples_per_second, f", {dtype} autocast" if dtype else "",
             ", stopped early" if stopped_early else "")
    return report
