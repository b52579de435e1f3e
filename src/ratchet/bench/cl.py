"""`ratchet bench cl`: run whole streams with each continual-learning strategy and measure forgetting.

No orchestration: each step calls the same `learn_increment` the train stage calls, on a model
held in memory, with the replay buffer the pipeline keeps. What is recorded per run and strategy:
ratchet.bench.results.

Strategies are named bundles of settings over the project's params.yaml:
  naive    plain sequential fine-tuning: no replay, no distillation, no regularisation
  replay   the buffer's replay (class-balanced loss) only   lwf    distillation only
  ewc      EWC only                            l2sp   L2-SP only
  er       experience replay at a fixed memory: the whole buffer (`replay.buffer_size` rows,
           class-balanced) mixed into every step, plain cross-entropy, nothing else
  derpp    DER++: er, plus each replayed row's logits as stored when it entered the buffer
           (squared distance, weight DERPP_LOGIT_WEIGHT)
  default  params.yaml's `continual` section as it is (what the pipeline runs)
  full     default, but full fine-tuning       top    default, but only the top layers train
           (both at lr 1e-4, without feature distillation and with a neutral bias fit: those
           two are tuned for LoRA)
  joint    retrain from the base model on every step's data so far (the upper bound)
  ncm, tfidf-joint   no transformer training: ratchet.bench.baselines
"""

from __future__ import annotations

import logging
import time
from typing import Literal

import pandas as pd
import torch

from ratchet import modeling
from ratchet.bench.baselines import NON_TRANSFORMER, run_ncm, run_tfidf_joint
from ratchet.bench.results import RunResult, final_metrics, per_class_dicts
from ratchet.bench.streams import Stream
from ratchet.config import NON_LORA_RETENTION, Settings
from ratchet.continual.buffer import ReplayBuffer
from ratchet.continual.increment import learn_increment
from ratchet.continual.mix import IncrementData, compose_increment
from ratchet.continual.plugins import StoredLogitReplay
from ratchet.evaluation import split_metrics
from ratchet.training.batching import batch_logits, encode

log = logging.getLogger("ratchet")

_OFF = {"replay": {"selection": "none", "balance_classes": False},
        "distillation": {"weight": 0.0, "feature_weight": 0.0},
        "regularization": {"method": "none"}, "early_stopping": {"enabled": False},
        "fgm_epsilon": 0.0, "align_head": False, "bias_correction": {"enabled": False}}
# the whole memory replayed every step: no class gets fewer rows than it has in the buffer
_WHOLE_MEMORY = {**_OFF, "replay": {"selection": "class_balanced", "balance_classes": False, "ratio": 0.0,
                                    "min_per_old_class": 10**9, "validation_per_class": 0}}
# DER++'s α on the stored logits (β, the replayed labels' cross-entropy, is 1: they are in the mix);
# Buzzega et al. (2020) use 0.1-0.5. Not tuned on any stream: a baseline as published.
DERPP_LOGIT_WEIGHT = 0.5
# strategy -> (changes to `continual`, changes to `model`, changes to `train`)
STRATEGIES: dict[str, tuple[dict, dict, dict]] = {
    "naive": (_OFF, {}, {}),
    "replay": ({**_OFF, "replay": {"selection": "class_balanced", "balance_classes": True}}, {}, {}),
    "lwf": ({**_OFF, "distillation": {"weight": 1.0, "feature_weight": 0.0}}, {}, {}),
    "ewc": ({**_OFF, "regularization": {"method": "ewc"}}, {}, {}),
    "l2sp": ({**_OFF, "regularization": {"method": "l2sp"}}, {}, {}),
    "default": ({}, {}, {}),
    # not the LoRA-tuned retention: with it, full fine-tuning never learned entertainment (BBC)
    "full": (NON_LORA_RETENTION, {"finetune": "full"}, {"learning_rate": 1e-4}),
    "top": (NON_LORA_RETENTION, {"finetune": "top_layers"}, {"learning_rate": 1e-4}),
    "er": (_WHOLE_MEMORY, {}, {}),
    "derpp": (_WHOLE_MEMORY, {}, {}),
    "joint": (_OFF, {}, {}),
}
ALL_STRATEGIES = [*STRATEGIES, *NON_TRANSFORMER]


def merge_nested(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = merge_nested(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def strategy_settings(settings: Settings, strategy: str) -> Settings:
    if strategy in NON_TRANSFORMER:
        return settings
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {ALL_STRATEGIES}")
    continual, model, train = STRATEGIES[strategy]
    raw = settings.model_dump()
    raw["continual"] = merge_nested(raw["continual"], continual)
    raw["model"] = merge_nested(raw["model"], model)
    raw["train"] = merge_nested(raw["train"], train)
    return Settings.model_validate(raw)


def _accuracy(classifier: modeling.Classifier, frame: pd.DataFrame, batch_size: int) -> float:
    return split_metrics(frame["label"].tolist(), classifier.predict(frame["text"].tolist(), batch_size)).accuracy


def evaluation_rows(stream: Stream, on: Literal["test", "validation"]) -> dict[str, pd.DataFrame]:
    """Each step's rows the matrix is measured on: its test split, or its validation slice."""
    if on == "validation":
        missing = [s.name for s in stream.steps if s.validation is None or s.validation.empty]
        if missing:
            raise ValueError(f"steps {missing} have no validation slice: load the stream with validation_fraction > 0")
        return {step.name: step.validation for step in stream.steps}
    return {step.name: step.test for step in stream.steps}


def run_stream(stream: Stream, settings: Settings, strategy: str, seed: int, device: torch.device,
               eval_batch_size: int = 128, evaluate_on: Literal["test", "validation"] = "test") -> RunResult:
    """One strategy, one seed, the whole stream; the matrix on each step's test (or validation) rows."""
    tests = evaluation_rows(stream, evaluate_on)
    if strategy == "tfidf-joint":
        return run_tfidf_joint(stream, seed, tests)
    chosen = strategy_settings(settings, strategy)
    chosen = chosen.model_copy(update={"train": chosen.train.model_copy(update={"seed": seed})})
    if strategy == "ncm":
        return run_ncm(stream, chosen, seed, device, tests, eval_batch_size)
    if warning := chosen.lora_tuned_retention_warning():
        log.warning("bench: %s %s", strategy, warning)
    labels = stream.labels
    tokenizer = modeling.load_tokenizer(chosen.model)
    started = time.perf_counter()

    def fresh_model():
        return modeling.build_trainable(chosen.model, labels, seed, start_from=None).to(device)

    def evaluate(model) -> dict[str, float]:
        classifier = modeling.Classifier(model, tokenizer, labels, chosen.model.max_length)
        return {name: _accuracy(classifier, frame, eval_batch_size) for name, frame in tests.items()}

    model = fresh_model()
    baseline = evaluate(model)
    replay = chosen.continual.replay
    buffer = ReplayBuffer(selection=replay.selection, budget=replay.buffer_size)
    stored_logits: dict[str, torch.Tensor] = {}   # derpp: buffer row id -> logits when it entered
    matrix, processed, stopped, known = [], 0, 0, []
    for index, step in enumerate(stream.steps):
        if strategy == "joint":
            model = fresh_model()
            seen = pd.concat([s.train for s in stream.steps[:index + 1]], ignore_index=True)
            data = IncrementData.from_parts(seen, seen.iloc[:0], seen.iloc[:0], [], seed)
        else:
            data = compose_increment(step.train, buffer, replay, known, seed, chosen.train)
        extra = (lambda mix: [_stored_logit_replay(mix, stored_logits, len(labels), device)]) \
            if strategy == "derpp" and stored_logits else None
        report, _ = learn_increment(model, tokenizer, data, labels, chosen.continual, chosen.train,
                                    chosen.model.max_length, show_progress=False, extra_plugins=extra)
        processed += report.examples_processed
        stopped += int(report.stopped_early)
        buffer.add(step.train.assign(id=[f"{step.name}-{i}" for i in range(len(step.train))]), step.name, seed)
        if strategy == "derpp":
            _store_logits(model, tokenizer, buffer, stored_logits, chosen.model.max_length)
        known = sorted(set(known) | set(step.train["label"]))
        matrix.append(evaluate(model))
        log.info("bench: %s seed %d after %s: %s", strategy, seed, step.name,
                 ", ".join(f"{k} {v:.3f}" for k, v in matrix[-1].items()))
    learned_at = {step.name: i for i, step in enumerate(stream.steps)}
    classifier = modeling.Classifier(model, tokenizer, labels, chosen.model.max_length)
    all_tests = pd.concat(list(tests.values()), ignore_index=True)
    final = split_metrics(all_tests["label"].tolist(), classifier.predict(all_tests["text"].tolist(), eval_batch_size))
    return RunResult(strategy=strategy, seed=seed, matrix=matrix, baseline=baseline,
                     summary=final_metrics(matrix, learned_at, stream, baseline), per_class=per_class_dicts(final),
                     examples_processed=processed, seconds=time.perf_counter() - started,
                     stopped_early_steps=stopped)


def _store_logits(model, tokenizer, buffer: ReplayBuffer, stored: dict[str, torch.Tensor], max_length: int) -> None:
    """DER++: the logits of the rows that entered the buffer this step, from the model that just learned them."""
    for gone in set(stored) - set(buffer.rows["id"]):
        del stored[gone]
    entering = buffer.rows[~buffer.rows["id"].isin(list(stored))]
    if entering.empty:
        return
    logits = batch_logits(model, tokenizer, encode(tokenizer, entering["text"].tolist(), max_length))
    for row_id, row in zip(entering["id"], logits.detach().float()):
        stored[row_id] = row


def _stored_logit_replay(mix: pd.DataFrame, stored: dict[str, torch.Tensor], n_labels: int,
                         device: torch.device) -> StoredLogitReplay:
    kept = torch.tensor([bool(r) and i in stored for r, i in zip(mix["replayed"], mix["id"])], device=device)
    targets = torch.zeros(len(mix), n_labels, device=device)
    for position, (replayed, row_id) in enumerate(zip(mix["replayed"], mix["id"])):
        if replayed and row_id in stored:
            targets[position] = stored[row_id].to(device)
    return StoredLogitReplay(targets, kept, DERPP_LOGIT_WEIGHT)


