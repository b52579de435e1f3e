"""The fine-tuning loop: plain PyTorch, tokenise once, dynamic padding, seeded, with progress."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ratchet.config import TrainSettings

log = logging.getLogger("ratchet")


@dataclass(frozen=True)
class TrainReport:
    examples: int
    epochs: int
    steps: int
    examples_processed: int
    final_loss: float
    seconds: float

    @property
    def examples_per_second(self) -> float:
        return self.examples_processed / self.seconds if self.seconds else 0.0


def _linear_warmup(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def fit(model: torch.nn.Module, tokenizer, texts: list[str], label_ids: list[int],
        settings: TrainSettings, max_length: int, show_progress: bool = True) -> TrainReport:
    """Fine-tune `model` in place on (texts, label_ids) with AdamW and a linear warm-up schedule."""
    if not texts:
        raise ValueError("nothing to train on: the training mix is empty")
    torch.manual_seed(settings.seed)
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
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
    model.train()
    started, step, loss_value = time.perf_counter(), 0, float("nan")
    with Progress(TextColumn("[bold]train[/] {task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} steps, loss {task.fields[loss]}"),
                  TimeRemainingColumn(), disable=not show_progress, transient=True) as progress:
        bar = progress.add_task(f"{len(texts)} examples", total=total_steps, loss="-")
        for epoch in range(settings.epochs):
            order = torch.randperm(len(texts), generator=generator).tolist()
            epoch_loss = 0.0
            for start in range(0, len(order), settings.batch_size):
                idx = order[start:start + settings.batch_size]
                batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt").to(device)
                output = model(**batch, labels=labels[idx])
                output.loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                loss_value = float(output.loss.detach())
                epoch_loss += loss_value * len(idx)
                step += 1
                progress.update(bar, advance=1, loss=f"{loss_value:.3f}")
            log.info("train: epoch %d/%d, mean loss %.4f", epoch + 1, settings.epochs, epoch_loss / len(texts))
    model.eval()
    report = TrainReport(examples=len(texts), epochs=settings.epochs, steps=step,
                         examples_processed=len(texts) * settings.epochs, final_loss=loss_value,
                         seconds=time.perf_counter() - started)
    log.info("train: %d examples x %d epochs in %.1fs (%.1f examples/s)", report.examples, report.epochs,
             report.seconds, report.examples_per_second)
    return report
