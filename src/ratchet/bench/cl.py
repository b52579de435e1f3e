"""`ratchet bench cl`: run whole streams with each continual-learning strategy and measure forgetting.

No orchestration: each step calls the same `learn_increment` the train stage calls, on a model
held in memory, with the replay buffer the pipeline keeps. Per strategy and seed it records the
full accuracy matrix R[i][j] (accuracy on step j's test split after step i, every split after every
step), average accuracy, BWT, FWT (against the untrained model), per-class precision/recall/F1 of
the final model, the training examples processed and the wall time.

Strategies are named bundles of settings over the project's params.yaml:
  naive    plain sequential fine-tuning: no replay, no distillation, no regularisation
  replay   the buffer's replay (class-balanced loss) only   lwf    distillation only
  ewc      EWC only                            l2sp   L2-SP only
  default  params.yaml's `continual` section as it is (what the pipeline runs)
  full     default, but full fine-tuning       top    default, but only the top layers train
           (both at lr 1e-4, without feature distillation and with a neutral bias fit: those
           two are tuned for LoRA)
  joint    retrain from the base model on every step's data so far (the upper bound)
"""

from __future__ import annotations

import json
import logging
import platform
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from ratchet import modeling
from ratchet.bench.streams import Stream
from ratchet.config import NON_LORA_RETENTION, Settings
from ratchet.continual.buffer import ReplayBuffer
from ratchet.continual.increment import learn_increment
from ratchet.continual.mix import IncrementData, compose_increment
from ratchet.evaluation import matrix_summary, split_metrics
from ratchet.plots import accuracy_heatmap

log = logging.getLogger("ratchet")

_OFF = {"replay": {"selection": "none", "balance_classes": False},
        "distillation": {"weight": 0.0, "feature_weight": 0.0},
        "regularization": {"method": "none"}, "early_stopping": {"enabled": False},
        "fgm_epsilon": 0.0, "align_head": False, "bias_correction": {"enabled": False}}
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
    "joint": (_OFF, {}, {}),
}


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def strategy_settings(settings: Settings, strategy: str) -> Settings:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}")
    continual, model, train = STRATEGIES[strategy]
    raw = settings.model_dump()
    raw["continual"] = _merge(raw["continual"], continual)
    raw["model"] = _merge(raw["model"], model)
    raw["train"] = _merge(raw["train"], train)
    return Settings.model_validate(raw)


@dataclass
class RunResult:
    strategy: str
    seed: int
    matrix: list[dict[str, float]]
    baseline: dict[str, float]
    summary: dict[str, float | None]
    per_class: dict[str, dict[str, float]]
    examples_processed: int
    seconds: float
    stopped_early_steps: int

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _accuracy(classifier: modeling.Classifier, frame: pd.DataFrame, batch_size: int) -> float:
    return split_metrics(frame["label"].tolist(), classifier.predict(frame["text"].tolist(), batch_size)).accuracy


def run_stream(stream: Stream, settings: Settings, strategy: str, seed: int, device: torch.device,
               eval_batch_size: int = 128) -> RunResult:
    """One strategy, one seed, the whole stream."""
    chosen = strategy_settings(settings, strategy)
    chosen = chosen.model_copy(update={"train": chosen.train.model_copy(update={"seed": seed})})
    if warning := chosen.lora_tuned_retention_warning():
        log.warning("bench: %s %s", strategy, warning)
    labels = stream.labels
    tokenizer = modeling.load_tokenizer(chosen.model)
    tests = {step.name: step.test for step in stream.steps}
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
    matrix, processed, stopped, known = [], 0, 0, []
    for index, step in enumerate(stream.steps):
        if strategy == "joint":
            model = fresh_model()
            seen = pd.concat([s.train for s in stream.steps[:index + 1]], ignore_index=True)
            data = IncrementData.from_parts(seen, seen.iloc[:0], seen.iloc[:0], [], seed)
        else:
            data = compose_increment(step.train, buffer, replay, known, seed)
        report, _ = learn_increment(model, tokenizer, data, labels, chosen.continual, chosen.train,
                                    chosen.model.max_length, show_progress=False)
        processed += report.examples_processed
        stopped += int(report.stopped_early)
        buffer.add(step.train.assign(id=[f"{step.name}-{i}" for i in range(len(step.train))]), step.name, seed)
        known = sorted(set(known) | set(step.train["label"]))
        matrix.append(evaluate(model))
        log.info("bench: %s seed %d after %s: %s", strategy, seed, step.name,
                 ", ".join(f"{k} {v:.3f}" for k, v in matrix[-1].items()))
    learned_at = {step.name: i for i, step in enumerate(stream.steps)}
    classifier = modeling.Classifier(model, tokenizer, labels, chosen.model.max_length)
    all_tests = pd.concat(list(tests.values()), ignore_index=True)
    final = split_metrics(all_tests["label"].tolist(), classifier.predict(all_tests["text"].tolist(), eval_batch_size))
    return RunResult(strategy=strategy, seed=seed, matrix=matrix, baseline=baseline,
                     summary=matrix_summary(matrix, learned_at, baseline), per_class={k: v.model_dump() for k, v in final.per_class.items()},
                     examples_processed=processed, seconds=time.perf_counter() - started,
                     stopped_early_steps=stopped)


def aggregate(results: list[RunResult]) -> dict[str, dict]:
    """Mean and spread per strategy, and the ratios to joint retraining."""
    by_strategy: dict[str, list[RunResult]] = {}
    for result in results:
        by_strategy.setdefault(result.strategy, []).append(result)

    def stats(values: list[float]) -> dict:
        return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}

    table = {}
    for strategy, runs in by_strategy.items():
        table[strategy] = {
            "seeds": [r.seed for r in runs],
            "average_accuracy": stats([r.summary["average_accuracy"] for r in runs]),
            "bwt": stats([r.summary["bwt"] for r in runs]),
            "fwt": stats([r.summary["fwt"] for r in runs if r.summary["fwt"] is not None] or [0.0]),
            "examples_processed": statistics.fmean(r.examples_processed for r in runs),
            "seconds": statistics.fmean(r.seconds for r in runs),
        }
    joint = table.get("joint")
    for row in table.values():
        row["ratio_to_joint"] = (row["average_accuracy"]["mean"] / joint["average_accuracy"]["mean"]
                                 if joint else None)
        row["examples_vs_joint"] = row["examples_processed"] / joint["examples_processed"] if joint else None
    return table


def environment(device: torch.device) -> dict:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
            "torch": torch.__version__, "device": str(device), "gpu": gpu, "machine": platform.machine(),
            "cpu_threads": torch.get_num_threads()}


def majority_baseline(stream: Stream) -> dict[str, float]:
    """Accuracy per task of always answering the most frequent label of the whole stream's training data."""
    train = pd.concat([s.train for s in stream.steps], ignore_index=True)
    majority = train["label"].value_counts().idxmax()
    per_task = {s.name: float((s.test["label"] == majority).mean()) for s in stream.steps}
    return {"label": majority, "per_task": per_task, "average_accuracy": sum(per_task.values()) / len(per_task)}


def write_results(out: Path, stream: Stream, settings: Settings, strategies: list[str], results: list[RunResult],
                  device: torch.device, options: dict) -> dict:
    payload = {
        "majority_baseline": majority_baseline(stream),
        "stream": stream.name, "stream_file": stream.source,
        "steps": [{"name": s.name, "train": len(s.train), "test": len(s.test)} for s in stream.steps],
        "strategies": strategies, "options": options, "environment": environment(device),
        "settings": {"model": settings.model.model_dump(), "train": settings.train.model_dump(),
                     "continual": settings.continual.model_dump()},
        "summary": aggregate(results), "runs": [r.to_dict() for r in results],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=float) + "\n", encoding="utf-8")
    steps = [s.name for s in stream.steps]
    for strategy in strategies:
        first = next((r for r in results if r.strategy == strategy), None)
        if first is not None:
            accuracy_heatmap([f"after {s}" for s in steps], steps, first.matrix,
                             f"{stream.name}: {strategy} (seed {first.seed})",
                             out.with_name(f"{out.stem}.{strategy}.png"))
    return payload
