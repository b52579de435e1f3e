"""A training attempt: `dvc repro` over every pending batch, then its record in MLflow.

`run_pipeline` runs prepare -> train -> evaluate -> gate; `register` logs the attempt (run,
evidence, dataset inputs, lineage tags, a model version). Whether it becomes the champion is
decided in ratchet.champion.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from ratchet import atomic, dvc_repo, faultpoints, model_files, records, registry, store
from ratchet.attempt_plan import AttemptPlan, RetryKind, attempt_file_text
from ratchet.champion import next_manifest
from ratchet.config import Settings
from ratchet.locking import training_lock
from ratchet.project import Project
from ratchet.records import TOKEN_CLASSIFICATION, EvalReport, GateDecision

log = logging.getLogger("ratchet")


@dataclass(frozen=True)
class PipelineRun:
    """What `dvc repro` ended in: the batches it trained on and the gate's verdict."""

    batch_ids: list[str]
    attempt: int                # which try this was (0: params.yaml as written)
    retries: list[RetryKind]    # how the retries before it changed retention (AttemptPlan)
    passed: bool
    reason: str
    retry: RetryKind | None     # what the gate's failures call for next (GateDecision.retry)


@dataclass(frozen=True)
class EarlierAttempt:
    attempt: int
    version: str | None
    run_id: str | None
    reason: str


@dataclass(frozen=True)
class TrainingOutcome:
    """What one training attempt over all pending batches ended in."""

    batch_ids: list[str]
    passed: bool
    reason: str
    version: str | None
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    attempt: int = 0
    retry: RetryKind | None = None    # more_retention | less_retention: what a next attempt would try
    retries: list[RetryKind] = field(default_factory=list)   # how this attempt's settings were reached
    earlier_attempts: list[EarlierAttempt] = field(default_factory=list)

    def with_earlier(self, earlier: list["TrainingOutcome"]) -> "TrainingOutcome":
        return replace(self, earlier_attempts=[EarlierAttempt(o.attempt, o.version, o.run_id, o.reason)
                                               for o in earlier])


def strategy_label(settings: Settings) -> str:
    """The retention recipe in one line, e.g. `lora r8 + replay class_balanced 0.15 + lwf 1.0`."""
    c, m = settings.continual, settings.model
    parts = [f"lora r{m.lora.r}" if m.finetune == "lora" else
             (f"top {m.top_layers} layers" if m.finetune == "top_layers" else "full")]
    if settings.task == TOKEN_CLASSIFICATION:   # what ratchet.entities.increment applies
        if c.pseudo_labels.enabled:
            parts.append(f"pseudo-labels {c.pseudo_labels.threshold:g}")
        if c.replay.selection != "none":
            parts.append(f"sentence replay {c.replay.ratio:g}")
        if c.distillation.weight > 0:
            parts.append(f"kd on O {c.distillation.weight:g}")
        return " + ".join(parts) + f" @ lr {settings.train.learning_rate:g}"
    if c.replay.selection != "none":
        parts.append(f"replay {c.replay.selection} {c.replay.ratio:g}" + (" balanced" if c.replay.balance_classes else ""))
    if c.distillation.weight > 0:
        skipped = " (not on champion errors)" if c.distillation.skip_champion_errors else ""
        parts.append(f"lwf {c.distillation.weight:g}{skipped}")
    if c.distillation.feature_weight > 0:
        parts.append(f"feature kd {c.distillation.feature_weight:g}")
    if c.regularization.method != "none":
        parts.append(f"{c.regularization.method} {c.regularization.weight:g}")
    if c.early_stopping.enabled:
        parts.append("early-stop")
    if c.fgm_epsilon > 0:
        parts.append(f"fgm {c.fgm_epsilon:g}")
    if c.align_head:
        parts.append("aligned head")
    if c.bias_correction.enabled:
        parts.append("bias-corrected")
    return " + ".join(parts) + f" @ lr {settings.train.learning_rate:g}"


def pending_batches(project: Project) -> list[str]:
    """The accepted batches no candidate has been trained on yet: what the next attempt learns."""
    return store.batches_with_status(project.paths, "pending")


def run_pipeline(project: Project, plan: AttemptPlan = AttemptPlan(),
                 batch_ids: list[str] | None = None) -> PipelineRun | None:
    """`dvc repro`: prepare -> train -> evaluate -> gate over every pending batch; None when none is.

    `plan.attempt` > 0 is a retry of the feedback loop: attempt.yaml (a DVC params file) tells the
    stages how to change retention, so DVC retrains and dvc.lock records which attempt it was.
    `batch_ids` names the pending batches the caller means (an orchestrator's cache key); the
    batches pending when the lock is taken are the ones trained. One training at a time per project.
    """
    paths = project.paths
    with training_lock(paths):
        pending = store.batches_with_status(paths, "pending")
        if not pending:
            return None
        if batch_ids is not None and sorted(batch_ids) != sorted(pending):
            log.warning("training the batches pending now (%s), not %s", pending, batch_ids)
        atomic.write_text(paths.attempt, attempt_file_text(plan))
        dvc_repo.repro(paths.root)
    gate = records.read(paths.gate_result, GateDecision)
    return PipelineRun(batch_ids=pending, attempt=plan.attempt, retries=list(plan.retries), passed=gate.passed,
                       reason=gate.summary, retry=gate.retry)


def _sha256(path: Path) -> str:
    if not path.exists():
        return "missing"
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def attempt_metrics(evaluation: EvalReport, gate: GateDecision) -> dict[str, float]:
    metrics: dict[str, float] = {"gate_passed": float(gate.passed),
                                 "candidate_average_accuracy": evaluation.candidate.average_accuracy}
    for key in ("bwt", "fwt"):  # forgetting and forward transfer over the champion's history
        value = getattr(evaluation.candidate, key)
        if value is not None:
            metrics[f"candidate_{key}"] = value
    for name, split in evaluation.splits.items():
        for role, scores in (("candidate", split.candidate), ("champion", split.champion)):
            if scores:
                metrics[f"{role}_accuracy.{name}"] = scores.accuracy
                metrics[f"{role}_macro_f1.{name}"] = scores.macro_f1
    return metrics


def register(project: Project, training: PipelineRun) -> TrainingOutcome:
    """Log the attempt to MLflow (run, evidence, inputs, model version); the champion alias moves
    only in ratchet.champion.conclude."""
    paths, settings = project.paths, project.settings
    batch_ids = training.batch_ids
    evaluation = records.read(paths.eval_metrics, EvalReport)
    gate = records.read(paths.gate_result, GateDecision)
    plan = atomic.read_json(paths.plan)
    evidence = [paths.gate_result, paths.eval_metrics, paths.train_metrics, paths.plan,
                paths.accuracy_matrix, paths.accuracy_heatmap, paths.increments_plot,
                paths.next_replay_buffer / "buffer.json"]
    for batch_id in batch_ids:  # validation/<id>.json is the GE result, drift/<id>.* Evidently's
        evidence += [paths.drift_reports / f"{batch_id}.html", paths.drift_reports / f"{batch_id}.json",
                     paths.validation_reports / f"{batch_id}.json"]
    inputs = [registry.DatasetInput(name=f"{b}/train", frame=store.read_split(paths, b, "train"),
                                    md5=dvc_repo.file_md5(paths.batch_dir(b) / "train.parquet"),
                                    source=str(paths.batch_dir(b) / "train.parquet"), context="training")
              for b in batch_ids]
    inputs += [registry.DatasetInput(name=f"{s['name']}/eval", frame=pd.read_parquet(paths.eval_suite / f"{s['name']}.parquet"),
                                     md5=dvc_repo.file_md5(paths.batch_dir(s["name"]) / "eval.parquet"),
                                     source=str(paths.batch_dir(s["name"]) / "eval.parquet"), context="evaluation")
               for s in plan["eval_splits"]]
    effective = settings.for_retries(training.retries)  # what this attempt actually trained with
    params = {f"{section}.{key}": value for section in ("model", "continual", "prepare", "train", "gate", "policy")
              for key, value in getattr(effective, section).model_dump().items()}
    tags = {"ratchet.gate": "passed" if gate.passed else "rejected",
            "ratchet.data_md5": dvc_repo.tracked_md5(paths.root),
            "ratchet.git_commit": _git_commit(paths.root),
            "ratchet.parent_version": str(plan["champion"]["version"]) if plan["champion"] else "base",
            "ratchet.base_model": settings.model.base,
            "ratchet.base_model_sha256": _sha256(model_files.resolve_base_model(settings.model.base) / "model.safetensors"),
            "ratchet.params_sha256": _sha256(paths.params),
            "ratchet.dvc_lock_sha256": _sha256(paths.root / "dvc.lock"),
            "ratchet.eval_md5": json.dumps({s["name"]: dvc_repo.file_md5(paths.batch_dir(s["name"]) / "eval.parquet")
                                            for s in plan["eval_splits"]}, sort_keys=True),
            "ratchet.finetune": settings.model.finetune,
            "ratchet.attempt": str(training.attempt),
            "ratchet.retries": ",".join(training.retries) or "none",
            "ratchet.strategy": strategy_label(effective)}
    metrics = attempt_metrics(evaluation, gate)
    # the same training (batches, attempt, pipeline outputs) registers once, however often retried
    key = hashlib.sha256(json.dumps([batch_ids, training.attempt, tags["ratchet.dvc_lock_sha256"],
                                     _sha256(paths.gate_result)]).encode()).hexdigest()[:32]
    faultpoints.reached("before_register", batch_ids)
    record = registry.log_attempt(paths, settings, registry.Attempt(
        run_name=f"attempt-{'+'.join(batch_ids)}", batch_ids=batch_ids, params=params, metrics=metrics,
        tags=tags, artifacts=evidence, inputs=inputs, key=key), paths.candidate)
    # what data/champion/ would hold with this version: kept for promotion now, `ratchet promote` later
    registry.log_champion_manifest(paths, settings, record.run_id,
                                   next_manifest(paths, evaluation, record.version, record.run_id, batch_ids))
    faultpoints.reached("after_register", batch_ids)
    return TrainingOutcome(batch_ids=batch_ids, passed=gate.passed, reason=gate.summary,
                           version=record.version, run_id=record.run_id, metrics=metrics,
                           attempt=training.attempt, retry=gate.retry, retries=list(training.retries))
