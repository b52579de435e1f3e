"""Early stopping on old data: stop an increment as soon as what the champion knew starts to slip.

The monitor measures accuracy on held-out old examples (replay-buffer rows that are not in the
training mix, so the gate's eval splits stay untouched) at a few checkpoints per epoch, from
`min_epochs` on (a new class needs some steps before the old ones recover from its arrival). While
accuracy stays within `max_old_drop` of the champion's, it snapshots the trainable weights; after
`patience` checkpoints in a row below that, training stops. At the end the last snapshot within
tolerance is restored; with none, the weights stay as trained and the gate judges them.
"""

from __future__ import annotations

import logging

import torch

from ratchet.training.batching import batch_logits, encode

log = logging.getLogger("ratchet")


class OldDataMonitor:
    def __init__(self, model: torch.nn.Module, tokenizer, texts: list[str], label_ids: list[int],
                 max_length: int, max_old_drop: float, checks_per_epoch: int, patience: int = 1,
                 min_epochs: int = 0, batch_size: int = 64) -> None:
        self.tokenizer = tokenizer
        self.encoded = encode(tokenizer, texts, max_length)
        self.labels = torch.tensor(label_ids, dtype=torch.long)
        self.max_old_drop = max_old_drop
        self.checks_per_epoch = checks_per_epoch
        self.patience = patience
        self.min_epochs = min_epochs
        self._misses = 0
        self.batch_size = batch_size
        self.baseline = self.accuracy(model)   # the champion's own accuracy: the model has not moved yet
        self.trace: list[tuple[int, float]] = [(0, round(self.baseline, 6))]
        self._good: dict[str, torch.Tensor] | None = None
        self._good_step: int | None = None

    def accuracy(self, model: torch.nn.Module) -> float:
        predicted = batch_logits(model, self.tokenizer, self.encoded, self.batch_size).argmax(dim=1).cpu()
        return float((predicted == self.labels).float().mean()) if len(self.labels) else 1.0

    def should_stop(self, model: torch.nn.Module, step: int) -> bool:
        accuracy = self.accuracy(model)
        self.trace.append((step, round(accuracy, 6)))
        if accuracy >= self.baseline - self.max_old_drop:
            self._good = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
            self._good_step, self._misses = step, 0
            return False
        self._misses += 1
        if self._misses < self.patience:
            return False
        log.info("train: old-data accuracy %.3f more than %.3f below the champion's %.3f for %d check(s) "
                 "at step %d: stopping", accuracy, self.max_old_drop, self.baseline, self._misses, step)
        return True

    def restore_best(self, model: torch.nn.Module) -> None:
        """Put back the last weights that were within tolerance (none: keep what training reached)."""
        if self._good is None:
            return
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self._good.items():
                params[name].copy_(value)
        log.info("train: restored the weights of step %d (last within tolerance on old data)", self._good_step)
