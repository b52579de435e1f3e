"""What `ratchet bench cl` records: one RunResult per strategy and seed, their summary, the files.

Per run: the accuracy matrix R[i][j] (accuracy on step j's evaluation rows after step i),
average accuracy, BWT, FWT (when the untrained model's accuracy is known), the newest step's
accuracy after its own step (did the last step get learned?), per-class scores of the final model,
the training examples processed and the wall time. Per strategy: mean and spread over seeds and
the ratios to joint retraining.
"""

from __future__ import annotations

import json
import platform
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from ratchet.bench.streams import Stream
from ratchet.config import Settings
from ratchet.evaluation import matrix_summary
from ratchet.plots import accuracy_heatmap


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
    notes: dict = field(default_factory=dict)     # what a strategy chose for itself (tfidf-joint's C)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def per_class_dicts(metrics) -> dict[str, dict[str, float]]:
    return {label: scores.model_dump() for label, scores in metrics.per_class.items()}


def final_metrics(matrix: list[dict[str, float]], learned_at: dict[str, int], stream: Stream,
                  baseline: dict[str, float] | None = None) -> dict[str, float | None]:
    """matrix_summary plus `newest_step_accuracy`: the last step's accuracy right after it was learned."""
    summary = matrix_summary(matrix, learned_at, baseline)
    summary["newest_step_accuracy"] = matrix[-1][stream.steps[-1].name] if matrix else None
    return summary


def stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def aggregate(results: list[RunResult]) -> dict[str, dict]:
    """Mean and spread per strategy, and the ratios to joint retraining."""
    by_strategy: dict[str, list[RunResult]] = {}
    for result in results:
        by_strategy.setdefault(result.strategy, []).append(result)
    table = {}
    for strategy, runs in by_strategy.items():
        table[strategy] = {
            "seeds": [r.seed for r in runs],
            "average_accuracy": stats([r.summary["average_accuracy"] for r in runs]),
            "bwt": stats([r.summary["bwt"] for r in runs]),
            "fwt": stats(fwts) if (fwts := [r.summary["fwt"] for r in runs if r.summary["fwt"] is not None]) else None,
            "newest_step_accuracy": stats([r.summary.get("newest_step_accuracy") or 0.0 for r in runs]),
            "examples_processed": statistics.fmean(r.examples_processed for r in runs),
            "seconds": statistics.fmean(r.seconds for r in runs),
        }
    joint = table.get("joint")
    for row in table.values():
        row["ratio_to_joint"] = (row["average_accuracy"]["mean"] / joint["average_accuracy"]["mean"]
                                 if joint and joint["average_accuracy"]["mean"] else None)
        row["newest_vs_joint"] = (row["newest_step_accuracy"]["mean"] / joint["newest_step_accuracy"]["mean"]
                                  if joint and joint["newest_step_accuracy"]["mean"] else None)
        row["examples_vs_joint"] = row["examples_processed"] / joint["examples_processed"] if joint else None
    return table


def table_caption(payload: dict, metric: str = "") -> str:
    """The line above a results table: stream, seeds, device, date, training fraction, overrides."""
    env = payload["environment"]
    seeds = sorted({run["seed"] for run in payload["runs"]})
    return (f"`{payload['stream']}`{metric}, seeds {seeds}, {env['device']}"
            f"{' (' + env['gpu'] + ')' if env.get('gpu') else ''}, {env['date']}, "
            f"train fraction {payload['options'].get('train_fraction', 1.0)}, "
            f"overrides {payload['options']['overrides'] or 'none'}")


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
        "steps": [{"name": s.name, "train": len(s.train), "test": len(s.test),
                   "validation": 0 if s.validation is None else len(s.validation)} for s in stream.steps],
        "strategies": strategies, "options": options, "environment": environment(device),
        "settings": {"model": settings.model.model_dump(), "train": settings.train.model_dump(),
                     "continual": settings.continual.model_dump()},
        "summary": aggregate(results), "runs": [r.to_dict() for r in results],
    }
    return save_payload(out, payload, stream.name, [s.name for s in stream.steps], strategies, results)


def save_payload(out: Path, payload: dict, stream_name: str, steps: list[str], strategies: list[str],
                 results: list[RunResult], metric: str = "") -> dict:
    """Write the results JSON and, per strategy, its first seed's matrix as a heatmap PNG beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=float) + "\n", encoding="utf-8")
    for strategy in strategies:
        first = next((r for r in results if r.strategy == strategy), None)
        if first is not None:
            accuracy_heatmap([f"after {s}" for s in steps], steps, first.matrix,
                             f"{stream_name}: {strategy} (seed {first.seed}){metric}",
                             out.with_name(f"{out.stem}.{strategy}.png"))
    return payload
