"""Tokenise once, then run a model over the encoded examples in length-sorted, dynamically padded batches."""

from __future__ import annotations

import torch


def encode(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated; padding happens per batch, to that batch's longest example."""
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


def batch_logits(model: torch.nn.Module, tokenizer, encoded: list[list[int]], batch_size: int = 64) -> torch.Tensor:
    """Logits for every encoded example, in input order, computed without gradients."""
    return _batched(model, tokenizer, encoded, batch_size, lambda output: output.logits)


def batch_module_outputs(model: torch.nn.Module, module: torch.nn.Module, tokenizer, encoded: list[list[int]],
                         batch_size: int = 64) -> torch.Tensor:
    """What `module` (a part of `model`, e.g. its pooler) outputs for every encoded example, in input order."""
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _args, output: captured.append(output))
    try:
        return _batched(model, tokenizer, encoded, batch_size, lambda _output: captured.pop())
    finally:
        handle.remove()


def _batched(model: torch.nn.Module, tokenizer, encoded: list[list[int]], batch_size: int, read) -> torch.Tensor:
    """`read(model output)` (a 2-D tensor per batch) for every example, in input order, without gradients."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out: torch.Tensor | None = None
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt").to(device)
            values = read(model(**batch)).float()
            if out is None:
                out = torch.zeros(len(encoded), values.shape[1], device=device)
            out[torch.tensor(idx, device=device)] = values
    model.train(was_training)
    return out if out is not None else torch.zeros(0, 0, device=device)
