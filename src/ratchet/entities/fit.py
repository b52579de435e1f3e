"""The fine-tuning loop for token classification: cross-entropy on each word's first sub-token, plus
an optional distillation term on chosen words (the champion's per-token distribution).

Kept apart from ratchet.training.loop, whose plug-ins read one logit row per example; here a batch
has one row per sub-token. The optimiser, schedule, seeding and precision are the same.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ratchet.config import TrainSettings
from ratchet.entities.alignment import IGNORE, EncodedSentence, piece_labels
from ratchet.entities.tagger import mask_inactive
from ratchet.training.loop import TrainReport, autocast_dtype, epochs_for, optimizer_and_schedule

log = logging.getLogger("ratchet")


@dataclass(frozen=True)
class DistillationTargets:
    """Per sentence, the champion's logits at each kept word (words x tags) and which words to distil on."""

    logits: list[torch.Tensor]
    words: list[list[bool]]
    weight: float
    temperature: float


def _padded(rows: list[list[int]], fill: int, device) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [fill] * (width - len(r)) for r in rows], dtype=torch.long, device=device)


def fit_tags(model: torch.nn.Module, tokenizer, encoded: list[EncodedSentence], word_tag_ids: list[list[int]],
             settings: TrainSettings, distillation: DistillationTargets | None = None,
             active: list[bool] | None = None) -> TrainReport:
    """Fine-tune `model` in place with AdamW and a linear warm-up; one example is one sentence.
    `active` (per tag) keeps the tags of types not learned yet out of the softmax."""
    if not encoded:
        raise ValueError("nothing to train on: the training mix has no sentences")
    torch.manual_seed(settings.seed)
    device = next(model.parameters()).device
    labels = [piece_labels(sentence, ids[:len(sentence.first_pieces)]) for sentence, ids in zip(encoded, word_tag_ids)]
    trainable, optimizer, scheduler = optimizer_and_schedule(model, settings, len(encoded))
    generator = torch.Generator().manual_seed(settings.seed)
    dtype = autocast_dtype(device, settings.precision)

    model.train()
    started, step, processed, loss_value = time.perf_counter(), 0, 0, float("nan")
    epochs = epochs_for(settings, len(encoded))
    for epoch in range(epochs):
        order = torch.randperm(len(encoded), generator=generator).tolist()
        epoch_loss = 0.0
        for start in range(0, len(order), settings.batch_size):
            idx = order[start:start + settings.batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i].input_ids for i in idx]}, return_tensors="pt").to(device)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = mask_inactive(model(**batch).logits.float(), active)
            target = _padded([labels[i] for i in idx], IGNORE, device)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE)
            if distillation is not None and distillation.weight > 0:
                loss = loss + distillation.weight * _distillation_loss(logits, idx, encoded, distillation, device)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_value = float(loss.detach())
            epoch_loss += loss_value * len(idx)
            processed += len(idx)
            step += 1
        log.info("train: epoch %d/%d, mean loss %.4f", epoch + 1, epochs, epoch_loss / len(encoded))
    model.eval()
    return TrainReport(examples=len(encoded), epochs=epochs, steps=step, examples_processed=processed,
                       final_loss=loss_value, seconds=time.perf_counter() - started)


def _distillation_loss(logits: torch.Tensor, idx: list[int], encoded: list[EncodedSentence],
                       targets: DistillationTargets, device) -> torch.Tensor:
    """T^2-scaled KL(champion || student) at temperature T, over the chosen words of the batch."""
    student, teacher = [], []
    for row, i in enumerate(idx):
        chosen = [w for w, keep in enumerate(targets.words[i][:len(encoded[i].first_pieces)]) if keep]
        if chosen:
            positions = torch.tensor([encoded[i].first_pieces[w] for w in chosen], device=device)
            student.append(logits[row, positions])
            teacher.append(targets.logits[i][chosen].to(device))
    if not student:
        return logits.new_zeros(())
    t = targets.temperature
    log_student = F.log_softmax(torch.cat(student) / t, dim=-1)
    soft_teacher = F.softmax(torch.cat(teacher) / t, dim=-1)
    return F.kl_div(log_student, soft_teacher, reduction="batchmean") * t * t
