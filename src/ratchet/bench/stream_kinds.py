"""Two kinds of benchmark stream: text classification (ratchet.bench.streams, scored in accuracy)
and entity-incremental NER (ratchet.bench.entity_stream, scored in F1). `bench cl` loads, configures
and runs either through these three functions."""

from __future__ import annotations

from pathlib import Path

import yaml


def settings_with_labels(raw: dict, labels: list[str], source: str):
    """The base settings with these classes in place of the project's."""
    from ratchet.config import parse_settings

    raw = yaml.safe_load(yaml.safe_dump(raw))   # a copy: each stream sets its own labels
    raw.setdefault("data", {})["labels"] = labels
    return parse_settings(raw, source=source)


def settings_for_stream(raw: dict, loaded, source: str):
    """The base settings with the stream's classes (or task and entity types) in place of the project's."""
    from ratchet.bench.entity_stream import EntityStream
    from ratchet.config import parse_settings
    from ratchet.records import TOKEN_CLASSIFICATION

    if not isinstance(loaded, EntityStream):
        return settings_with_labels(raw, loaded.labels, source)
    raw = yaml.safe_load(yaml.safe_dump(raw))
    raw["task"] = TOKEN_CLASSIFICATION
    raw.setdefault("data", {})["entity_types"] = loaded.entity_types
    return parse_settings(raw, source=source)


def load_any_stream(file: Path, max_train_per_step: int | None, train_fraction: float, validation_fraction: float = 0.0,
                    max_validation_per_step: int | None = None):
    """A text stream (ratchet.bench.streams) or an entity stream (ratchet.bench.entity_stream)."""
    from ratchet.bench.entity_stream import is_entity_stream, load_entity_stream
    from ratchet.bench.streams import load_stream

    if is_entity_stream(file):
        if max_train_per_step:
            raise ValueError("--max-train-per-step is for text streams; use --train-fraction on an entity stream")
        if max_validation_per_step:
            raise ValueError("--max-validation-per-step is for text streams: an entity stream's validation "
                             "sentences are always drawn before --train-fraction thins the rest")
        return load_entity_stream(file, train_fraction, validation_fraction)
    return load_stream(file, max_train_per_step, train_fraction, validation_fraction, max_validation_per_step)


def run_any_stream(loaded, settings, strategy: str, seed: int, device, evaluate_on: str = "test"):
    from ratchet.bench.cl import run_stream
    from ratchet.bench.entity_cl import run_entity_stream
    from ratchet.bench.entity_stream import EntityStream

    runner = run_entity_stream if isinstance(loaded, EntityStream) else run_stream
    return runner(loaded, settings, strategy, seed, device, evaluate_on=evaluate_on)
