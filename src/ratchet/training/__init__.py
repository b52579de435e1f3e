"""Incremental fine-tuning: the training loop and the anti-forgetting strategies (replay, ...)."""
