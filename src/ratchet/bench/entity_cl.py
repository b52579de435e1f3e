"""`ratchet bench cl` on an entity-incremental stream: naive, default and joint retraining, in F1.

Each step calls the same `learn_entity_increment` a token project's train step is built on, on a
model held in memory. The accuracy matrix is in entity-level F1: R[i][j] is the macro F1 over step
j's types (seqeval, strict IOB2) on the shared evaluation sentences after step i. Per run it also
records the final micro and macro F1 over every type of the stream and each type's F1.

Strategies (over the project's params.yaml):
  naive    fine-tune on each step's tweets as tagged: no pseudo-labels, no replay, no distillation
  default  params.yaml's `continual` section: pseudo-labels of old types from the champion
           (`continual.pseudo_labels`), replay of earlier sentences (`continual.replay`: a step
           replays `ratio` x its mean sentences per new type of each old type, at least
           `min_per_old_class`; the memory keeps `buffer_size` / types sentences a type),
           distillation on `O` words (`continual.distillation.weight`, `temperature`)
  joint    from the base model at every step, on every step's sentences so far with the gold tags of
           every type met so far (the upper bound: fully annotated data)
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from ratchet import modeling
from ratchet.bench.cl import merge_nested
from ratchet.bench.entity_stream import EntityStream
from ratchet.bench.results import (
    RunResult,
    aggregate,
    environment,
    save_payload,
    stats,
    table_caption,
)
from ratchet.config import Settings
from ratchet.entities.increment import learn_entity_increment
from ratchet.entities.memory import SentenceMemory
from ratchet.entities.metrics import EntityScores, entity_scores, only_types
from ratchet.entities.tagger import Tagger
from ratchet.entities.tags import active_tags, tag_set
from ratchet.evaluation import matrix_summary
from ratchet.records import TOKEN_CLASSIFICATION

log = logging.getLogger("ratchet")

_OFF = {"pseudo_labels": {"enabled": False}, "replay": {"selection": "none"}, "distillation": {"weight": 0.0}}
ENTITY_STRATEGIES: dict[str, dict] = {"naive": _OFF, "default": {}, "joint": _OFF}


def entity_strategy_settings(settings: Settings, strategy: str, seed: int) -> Settings:
    if strategy not in ENTITY_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} for an entity stream; choose from {list(ENTITY_STRATEGIES)}")
    raw = settings.model_dump()
    raw["continual"] = merge_nested(raw["continual"], ENTITY_STRATEGIES[strategy])
    raw["train"]["seed"] = seed
    return Settings.model_validate(raw)


def evaluation_sentences(stream: EntityStream, on: str) -> pd.DataFrame:
    if on == "validation":
        if stream.validation is None or stream.validation.empty:
            raise ValueError("the stream has no validation sentences: load it with validation_fraction > 0")
        return stream.validation
    return stream.test


def run_entity_stream(stream: EntityStream, settings: Settings, strategy: str, seed: int, device: torch.device,
                      evaluate_on: str = "test", eval_batch_size: int = 64) -> RunResult:
    """One strategy, one seed, the whole stream; the F1 matrix on the test (or validation) sentences."""
    chosen = entity_strategy_settings(settings, strategy, seed)
    sentences = evaluation_sentences(stream, evaluate_on)
    tags = tag_set(stream.entity_types)
    tokenizer = modeling.load_tokenizer(chosen.model)
    max_length = chosen.model.max_length
    started = time.perf_counter()

    def fresh_model():
        return modeling.build_trainable(chosen.model, tags, seed, start_from=None, task=TOKEN_CLASSIFICATION).to(device)

    def scores(model, types: list[str], learned: list[str]) -> EntityScores:
        tagger = Tagger(model, tokenizer, tags, max_length, active=active_tags(tags, learned))
        return entity_scores(list(sentences["tags"]), tagger.predict(list(sentences["tokens"]), eval_batch_size), types)

    def row(model, learned: list[str]) -> dict[str, float]:
        everything = scores(model, stream.entity_types, learned)
        return {step.name: everything.macro_over(step.types) for step in stream.steps}

    model = fresh_model()
    baseline = row(model, stream.entity_types)   # the untrained head, every tag allowed
    replay = chosen.continual.replay
    memory = SentenceMemory(per_type=max(1, replay.buffer_size // len(stream.entity_types)), seed=seed)
    matrix, processed, pseudo = [], 0, []
    for index, step in enumerate(stream.steps):
        old = stream.types_until(index - 1) if index else []
        if strategy == "joint":
            model = fresh_model()
            known = set(stream.types_until(index))
            seen = pd.concat([s.gold for s in stream.steps[:index + 1]], ignore_index=True)
            seen = seen.assign(tags=[only_types(t, known) for t in seen["tags"]])
            report, _ = learn_entity_increment(model, tokenizer, seen, seen.iloc[:0], tags, [], sorted(known),
                                               chosen.continual, chosen.train, max_length)
        else:
            per_type = replay.per_old_class(len(step.train), len(step.types), len(old))
            replayed = memory.sample(per_type, seed + index) if per_type else step.train.iloc[:0]
            report, trained = learn_entity_increment(model, tokenizer, step.train, replayed, tags, old, step.types,
                                                     chosen.continual, chosen.train, max_length)
            memory.add(trained, step.types)
            pseudo.append({"step": step.name, "words": report.pseudo_labels.words,
                           "sentences": report.pseudo_labels.sentences, "entities": report.pseudo_labels.entities,
                           "replayed": report.replayed, "distilled_words": report.distilled_words})
        processed += report.examples_processed
        matrix.append(row(model, stream.types_until(index)))
        log.info("bench: %s seed %d after %s: %s", strategy, seed, step.name,
                 ", ".join(f"{k} {v:.3f}" for k, v in matrix[-1].items()))
    final = scores(model, stream.entity_types, stream.entity_types)
    summary = matrix_summary(matrix, {s.name: i for i, s in enumerate(stream.steps)}, baseline)
    summary.update(newest_step_accuracy=matrix[-1][stream.steps[-1].name], final_micro_f1=final.micro_f1,
                   final_macro_f1=final.macro_f1)
    per_type = {kind: asdict(score) for kind, score in final.per_type.items()}
    return RunResult(strategy=strategy, seed=seed, matrix=matrix, baseline=baseline, summary=summary,
                     per_class=per_type, examples_processed=processed, seconds=time.perf_counter() - started,
                     stopped_early_steps=0, notes={"pseudo_labels": pseudo} if pseudo else {})


def aggregate_entities(results: list[RunResult]) -> dict[str, dict]:
    """`aggregate` (average F1 in place of accuracy), plus the final micro/macro F1 and macro F1's ratio to joint."""
    table = aggregate(results)
    for strategy, row in table.items():
        runs = [r for r in results if r.strategy == strategy]
        for key in ("final_micro_f1", "final_macro_f1"):
            row[key] = stats([r.summary[key] for r in runs])
    joint = table.get("joint")
    for row in table.values():
        row["macro_f1_vs_joint"] = (row["final_macro_f1"]["mean"] / joint["final_macro_f1"]["mean"]
                                    if joint and joint["final_macro_f1"]["mean"] else None)
    return table


def write_entity_results(out: Path, stream: EntityStream, settings: Settings, strategies: list[str],
                         results: list[RunResult], device: torch.device, options: dict) -> dict:
    payload = {
        "stream": stream.name, "stream_file": stream.source, "task": TOKEN_CLASSIFICATION, "metric": "entity F1 (seqeval, strict IOB2)",
        "steps": [{"name": s.name, "types": s.types, "train": len(s.train)} for s in stream.steps],
        "test_sentences": len(stream.test), "strategies": strategies, "options": options,
        "environment": environment(device),
        "settings": {"model": settings.model.model_dump(), "train": settings.train.model_dump(),
                     "continual": settings.continual.model_dump()},
        "summary": aggregate_entities(results), "runs": [r.to_dict() for r in results],
    }
    return save_payload(out, payload, stream.name, [s.name for s in stream.steps], strategies, results,
                        metric=", macro F1")


def entity_markdown_table(payload: dict) -> str:
    lines = [table_caption(payload, " (entity F1)"), "",
             "| strategy | final macro F1 | vs joint | final micro F1 | average F1 | BWT (F1) | newest step F1 "
             "| examples processed | vs joint | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for strategy, row in payload["summary"].items():
        ratio = lambda v: f"{v:.3f}" if v is not None else "–"  # noqa: E731
        lines.append(f"| {strategy} | {row['final_macro_f1']['mean']:.3f} ± {row['final_macro_f1']['std']:.3f} "
                     f"| {ratio(row['macro_f1_vs_joint'])} | {row['final_micro_f1']['mean']:.3f} "
                     f"| {row['average_accuracy']['mean']:.3f} | {row['bwt']['mean']:+.3f} "
                     f"| {row['newest_step_accuracy']['mean']:.3f} | {row['examples_processed']:.0f} "
                     f"| {ratio(row['examples_vs_joint'])} | {row['seconds']:.0f} |")
    return "\n".join(lines) + "\n"
