"""`ratchet bench train-speed`: the training loop's throughput on the input the plain loop uses.

`../shared/anchors/plain_loop.py` trains MiniLM on one synthetic sentence repeated to max_length,
timing `steps` optimisation steps after one warm-up step. This runs ratchet's own loop
(`ratchet.training.loop.fit`: the train stage's code, LoRA per params.yaml, gradient clipping,
the warm-up schedule, dynamic padding) on the same text, batch size and length, and reports the
same steady-state figure (the first step left out), so the two numbers can be divided.
"""

from __future__ import annotations

import torch

from ratchet import modeling
from ratchet.config import Settings
from ratchet.training.loop import autocast_dtype, fit

# the plain loop's text, so both loops pad to max_length the same way
PLAIN_LOOP_TEXT = "The quarterly results beat expectations as revenue grew across every region and division. " * 40
LABELS = ["a", "b", "c", "d", "e"]   # the plain loop's five classes


def train_speed(settings: Settings, steps: int, device: torch.device) -> dict:
    train = settings.train.model_copy(update={"epochs": 1})
    batch = train.batch_size
    model = modeling.build_trainable(settings.model, LABELS, train.seed, start_from=None).to(device)
    tokenizer = modeling.load_tokenizer(settings.model)
    texts = [PLAIN_LOOP_TEXT] * (batch * (steps + 1))          # one warm-up step, then `steps`
    labels = [i % len(LABELS) for i in range(len(texts))]
    if device.type == "cuda":
        torch.cuda.synchronize()
    report = fit(model, tokenizer, texts, labels, train, settings.model.max_length, show_progress=False)
    return {"device": str(device), "finetune": settings.model.finetune, "lora_r": settings.model.lora.r,
            "max_length": settings.model.max_length, "batch_size": batch, "steps": steps,
            "threads": torch.get_num_threads(), "autocast": str(autocast_dtype(device, train.precision)),
            "train_examples_per_s": round(report.steady_examples_per_second, 1),
            "train_examples_per_s_with_first_step": round(report.examples_per_second, 1)}
