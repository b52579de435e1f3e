"""The life of a batch, one function per step. The Prefect flow wires these; so could anything else.

Every step takes the project root and small values (ids, paths) and returns a small dataclass, so
Prefect can hash and persist what passes between tasks. The ledger, not the orchestrator, is the
record of where each batch stands.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ratchet import atomic, dvc_repo, modeling, registry, store
from ratchet.batches import TERMINAL_STATES, BatchReadError, Ledger, content_hash, normalise, read_raw
from ratchet.config import Settings, attempt_file_text, load_settings
from ratchet.gate import GateResult, decide
from ratchet.locking import champion_lock, training_lock
from ratchet.paths import ProjectPaths
from ratchet.policy import should_train

log = logging.getLogger("ratchet")


def _project(root: str) -> tuple[ProjectPaths, Settings]:
    paths = ProjectPaths.at(root)
    return paths, load_settings(paths.params)


@dataclass(frozen=True)
class Arrival:
    """A file taken from incoming/: its ledger arrival number, content id and where it lies now."""

    arrival: int
    batch_id: str
    file: str
    path: str
    state: str  # "received", or a terminal state already reached ("duplicate", "quarantined")
    reason: str = ""


@dataclass(frozen=True)
class StepResult:
    ok: bool
    reason: str
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DriftVerdict:
    """The drift step's answer: the severity of the batch's drift, why, and where the report is."""

    severity: str  # none | low | medium | high
    reason: str
    report: str = ""

    @property
    def drifted(self) -> bool:
        return self.severity != "none"


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
    forgetting: bool = False                 # failed on what the champion knew: a retry may help
    earlier_attempts: list[dict] = field(default_factory=list)  # {attempt, version, run_id, reason}

    def with_earlier(self, earlier: list["TrainingOutcome"]) -> "TrainingOutcome":
        return replace(self, earlier_attempts=[{"attempt": o.attempt, "version": o.version, "run_id": o.run_id,
                                                "reason": o.reason} for o in earlier])


def _load_batch(path: Path, settings: Settings) -> tuple[str, pd.DataFrame]:
    raw = read_raw(path)
    batch_id = content_hash(raw)
    return batch_id, normalise(raw, settings.data, batch_id)


# --- step 1: receive ----------------------------------------------------------------------------

def receive(root: str, file: str) -> Arrival:
    """Read and hash an incoming file; spot duplicates and unreadable files at once."""
    paths, settings = _project(root)
    ledger = Ledger(paths.ledger)
    source = Path(file)
    try:
        batch_id, frame = _load_batch(source, settings)
    except BatchReadError as error:
        from ratchet.validation import quarantine

        batch_id = "b-" + hashlib.sha256(source.read_bytes()).hexdigest()[:12]
        arrival = ledger.next_arrival()
        destination = quarantine(source, paths.quarantine / batch_id, batch_id, str(error), None)
        ledger.record(arrival, batch_id, source.name, "quarantined", str(error))
        return Arrival(arrival, batch_id, source.name, str(destination / source.name), "quarantined", str(error))

    previous = ledger.seen(batch_id)
    if previous is not None and previous.state in TERMINAL_STATES + ("accepted",):
        reason = f"same content as {previous.file} (arrival {previous.arrival}, {previous.state})"
        destination = paths.archive / batch_id / "duplicates" / f"{ledger.next_arrival()}-{source.name}"
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), destination)
        entry = ledger.record(ledger.next_arrival(), batch_id, source.name, "duplicate", reason)
        return Arrival(entry.arrival, batch_id, source.name, str(destination), "duplicate", reason)
    # A crashed earlier run left this content half-processed: resume it under the same arrival.
    arrival = previous.arrival if previous is not None else ledger.next_arrival()
    ledger.record(arrival, batch_id, source.name, "received", details={"rows": len(frame)})
    return Arrival(arrival, batch_id, source.name, str(source), "received")


def fetch_remote(root: str) -> list[str]:
    """Copy new files from `orchestration.incoming_url` (an fsspec URL) into incoming/."""
    from ratchet.remote_incoming import fetch_incoming

    paths, settings = _project(root)
    url = settings.orchestration.incoming_url
    return fetch_incoming(paths, url) if url else []


# --- step 2: validate (Great Expectations) -------------------------------------------------------

def validate(root: str, arrival: Arrival) -> StepResult:
    """Run the suite; a failing batch goes to quarantine/<batch_id>/ with reason.json and the GE result."""
    from ratchet.validation import quarantine, validate as run_suite

    paths, settings = _project(root)
    _, frame = _load_batch(Path(arrival.path), settings)
    result = run_suite(frame, settings.data, settings.validation)
    atomic.write_json(paths.validation_reports / f"{arrival.batch_id}.json", result.ge_result)
    if result.passed:
        return StepResult(True, result.summary())
    reason = f"{arrival.file}: {result.summary()}"
    quarantine(Path(arrival.path), paths.quarantine / arrival.batch_id, arrival.batch_id, reason, result)
    Ledger(paths.ledger).record(arrival.arrival, arrival.batch_id, arrival.file, "quarantined", reason,
                                details={"failures": [f.check for f in result.failures]})
    return StepResult(False, reason)


# --- step 3: drift (Evidently) -------------------------------------------------------------------

def check_drift(root: str, arrival: Arrival) -> DriftVerdict:
    """Drift report against the reference: reports/drift/<batch_id>.html (+ .json), index.html,
    and a drift run in MLflow."""
    paths, settings = _project(root)
    result = drift_report(root, arrival.path)
    # one drift run per arrival, retries included (the report's JSON holds timings: no hash of it)
    key = hashlib.sha256(f"drift:{arrival.arrival}:{arrival.batch_id}".encode()).hexdigest()[:32]
    registry.log_drift(paths, settings, result, key=key)
    reason = "; ".join(result.reasons) if result.drifted else "no drift against the reference"
    return DriftVerdict(result.severity, reason, result.html_path)


def drift_report(root: str, file: str, validate_first: bool = False):
    """The drift report of any batch file, in the champion's terms; touches neither the ledger nor
    the file (reviewers can look at a batch before it is processed: `ratchet drift FILE`).

    `validate_first`: run the Great Expectations suite and refuse (BatchReadError) a batch that fails.
    """
    from ratchet.drift import detect_drift

    paths, settings = _project(root)
    batch_id, frame = _load_batch(Path(file), settings)
    if validate_first:
        from ratchet.validation import validate as run_suite

        checked = run_suite(frame, settings.data, settings.validation)
        if not checked.passed:
            raise BatchReadError(f"{Path(file).name} fails validation, no drift report: {checked.summary()}")
    manifest = store.champion_manifest(paths)
    champion = modeling.load_classifier(paths.champion, settings.model) if manifest else None
    champion_key = f"v{manifest.get('version')}:{manifest.get('run_id')}" if manifest else ""
    learned = set(manifest.get("trained_batches", [])) if manifest else set()
    known_labels = {label for entry in store.read_catalog(paths) if entry.batch_id in learned
                    for label in entry.label_counts}
    return detect_drift(frame, store.read_reference(paths), settings.drift, paths.drift_reports, batch_id,
                        champion=champion, champion_key=champion_key, cache_dir=paths.drift_cache,
                        known_labels=known_labels, source=Path(file).name)


# --- step 4: accept into data/ and apply the training policy --------------------------------------

def accept(root: str, arrival: Arrival, drift: DriftVerdict) -> StepResult:
    """Split the batch into data/batches/<id>/, archive the original file, `dvc add data`.

    Returns ok=True when the policy says train now; otherwise the batch is `accumulated`.
    """
    paths, settings = _project(root)
    ledger = Ledger(paths.ledger)
    source = Path(arrival.path)
    if arrival.batch_id not in {e.batch_id for e in store.read_catalog(paths)}:
        _, frame = _load_batch(source, settings)
        store.accept_batch(paths, arrival.batch_id, frame, source=arrival.file,
                           eval_fraction=settings.data.eval_fraction)
    archived = paths.archive / arrival.batch_id / arrival.file
    if source.exists():
        archived.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), archived)
    dvc_repo.add(paths.root)
    pending = store.batches_with_status(paths, "pending")
    waiting = sum(e.n_train for e in store.read_catalog(paths) if e.status == "pending")
    decision = should_train(settings.policy, drift.severity, waiting, hours_since_training(paths))
    details = {"drift": {"drifted": drift.drifted, "severity": drift.severity, "reason": drift.reason,
                         "report": drift.report}, "archived": str(archived), "pending_batches": pending}
    state = "accepted" if decision.train else "accumulated"
    ledger.record(arrival.arrival, arrival.batch_id, arrival.file, state, decision.reason,
                  metrics={"drifted": drift.drifted}, details=details)
    return StepResult(decision.train, decision.reason, details)


def hours_since_training(paths: ProjectPaths) -> float | None:
    """Hours since the last training ended (a batch promoted or rejected); None before the first."""
    ends = [e.at for e in Ledger(paths.ledger).entries() if e.state in ("promoted", "rejected")]
    if not ends:
        return None
    last = datetime.fromisoformat(max(ends))
    return (datetime.now(timezone.utc) - last).total_seconds() / 3600


def release_accumulated(root: str) -> StepResult:
    """With no new batch: does the policy now train the accumulated batches (schedule due, enough
    examples, cooldown over)? If so they become `accepted` and ok=True."""
    paths, settings = _project(root)
    ledger = Ledger(paths.ledger)
    pending = set(store.batches_with_status(paths, "pending"))
    waiting = [e for e in ledger.current() if e.state == "accumulated" and e.batch_id in pending]
    if not waiting:
        return StepResult(False, "no accumulated batches")
    examples = sum(e.n_train for e in store.read_catalog(paths) if e.batch_id in pending)
    decision = should_train(settings.policy, "none", examples, hours_since_training(paths))
    if decision.train:
        for entry in waiting:
            ledger.record(entry.arrival, entry.batch_id, entry.file, "accepted", decision.reason,
                          entry.metrics, entry.details)
    return StepResult(decision.train, decision.reason, {"batch_ids": [e.batch_id for e in waiting]})


# --- step 5: train, evaluate, gate (dvc repro), then register and conclude -----------------------

def strategy_label(settings: Settings) -> str:
    """The retention recipe in one line, e.g. `lora r8 + replay class_balanced 0.15 + lwf 1.0`."""
    c, m = settings.continual, settings.model
    parts = [f"lora r{m.lora.r}" if m.finetune == "lora" else
             (f"top {m.top_layers} layers" if m.finetune == "top_layers" else "full")]
    if c.replay.selection != "none":
        parts.append(f"replay {c.replay.selection} {c.replay.ratio:g}" + (" balanced" if c.replay.balance_classes else ""))
    if c.distillation.weight > 0:
        parts.append(f"lwf {c.distillation.weight:g}")
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


def max_attempts(root: str) -> int:
    return _project(root)[1].feedback.max_attempts


def pending_batches(root: str) -> list[str]:
    paths, _ = _project(root)
    return store.batches_with_status(paths, "pending")


def run_pipeline(root: str, attempt: int = 0, batch_ids: list[str] | None = None) -> StepResult:
    """`dvc repro`: prepare -> train -> evaluate -> gate over every pending batch.

    `attempt` > 0 is a retry of the feedback loop: attempt.yaml (a DVC params file) tells the
    stages to strengthen retention, so DVC retrains and dvc.lock records which attempt it was.
    `batch_ids` names the pending batches the caller means (an orchestrator's cache key); the
    batches pending when the lock is taken are the ones trained. One training at a time per project.
    """
    paths, _ = _project(root)
    with training_lock(paths):
        pending = store.batches_with_status(paths, "pending")
        if not pending:
            return StepResult(False, "no pending batch to train on")
        if batch_ids is not None and sorted(batch_ids) != sorted(pending):
            log.warning("training the batches pending now (%s), not %s", pending, batch_ids)
        atomic.write_text(paths.attempt, attempt_file_text(attempt))
        dvc_repo.repro(paths.root)
    gate = atomic.read_json(paths.gate_result)
    return StepResult(bool(gate["passed"]), gate["summary"],
                      {"batch_ids": pending, "attempt": attempt, "forgetting": bool(gate.get("forgetting"))})


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


def _attempt_metrics(evaluation: dict, gate: dict) -> dict[str, float]:
    metrics: dict[str, float] = {"gate_passed": float(gate["passed"]),
                                 "candidate_average_accuracy": evaluation["candidate"]["average_accuracy"]}
    for key in ("bwt", "fwt"):  # forgetting and forward transfer over the champion's history
        if evaluation["candidate"].get(key) is not None:
            metrics[f"candidate_{key}"] = evaluation["candidate"][key]
    for name, split in evaluation["splits"].items():
        for role in ("candidate", "champion"):
            if split.get(role):
                metrics[f"{role}_accuracy.{name}"] = split[role]["accuracy"]
                metrics[f"{role}_macro_f1.{name}"] = split[role]["macro_f1"]
    return metrics


def register(root: str, training: StepResult) -> TrainingOutcome:
    """Log the attempt to MLflow (run, evidence, inputs, model version); alias `champion` only on a pass."""
    paths, settings = _project(root)
    batch_ids: list[str] = training.details["batch_ids"]
    evaluation = atomic.read_json(paths.eval_metrics)
    gate = atomic.read_json(paths.gate_result)
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
    attempt = training.details.get("attempt", 0)
    effective = settings.for_attempt(attempt)  # what this attempt actually trained with
    params = {f"{section}.{key}": value for section in ("model", "continual", "prepare", "train", "gate", "policy")
              for key, value in getattr(effective, section).model_dump().items()}
    tags = {"ratchet.gate": "passed" if gate["passed"] else "rejected",
            "ratchet.data_md5": dvc_repo.tracked_md5(paths.root),
            "ratchet.git_commit": _git_commit(paths.root),
            "ratchet.parent_version": str(plan["champion"]["version"]) if plan["champion"] else "base",
            "ratchet.base_model": settings.model.base,
            "ratchet.base_model_sha256": _sha256(modeling.resolve_base_model(settings.model.base) / "model.safetensors"),
            "ratchet.params_sha256": _sha256(paths.params),
            "ratchet.dvc_lock_sha256": _sha256(paths.root / "dvc.lock"),
            "ratchet.eval_md5": json.dumps({s["name"]: dvc_repo.file_md5(paths.batch_dir(s["name"]) / "eval.parquet")
                                            for s in plan["eval_splits"]}, sort_keys=True),
            "ratchet.finetune": settings.model.finetune,
            "ratchet.attempt": str(attempt),
            "ratchet.strategy": strategy_label(effective)}
    metrics = _attempt_metrics(evaluation, gate)
    # the same training (batches, attempt, pipeline outputs) registers once, however often retried
    key = hashlib.sha256(json.dumps([batch_ids, attempt, tags["ratchet.dvc_lock_sha256"],
                                     _sha256(paths.gate_result)]).encode()).hexdigest()[:32]
    record = registry.log_attempt(paths, settings, registry.Attempt(
        run_name=f"attempt-{'+'.join(batch_ids)}", batch_ids=batch_ids, params=params, metrics=metrics,
        tags=tags, artifacts=evidence, inputs=inputs, key=key), paths.candidate)
    # what data/champion/ would hold with this version: kept for promotion now, `ratchet promote` later
    registry.log_champion_manifest(paths, settings, record.run_id,
                                   _champion_manifest(paths, evaluation, record.version, record.run_id, batch_ids))
    return TrainingOutcome(batch_ids=batch_ids, passed=bool(gate["passed"]), reason=gate["summary"],
                           version=record.version, run_id=record.run_id, metrics=metrics,
                           attempt=attempt, forgetting=bool(gate.get("forgetting")))


def _champion_manifest(paths: ProjectPaths, evaluation: dict, version: str, run_id: str,
                       batch_ids: list[str]) -> dict:
    """data/champion/ratchet_model.json for a candidate: everything it learned, and the accuracy history."""
    old = store.champion_manifest(paths)
    history = list(old.get("history", [])) if old else []
    history.append({"model": f"v{version}",
                    "accuracy": {n: round(s["candidate"]["accuracy"], 6) for n, s in evaluation["splits"].items()
                                 if s["role"] != "canary"},
                    # the old champion on the splits this step learned: forward transfer needs it
                    "before": {n: round(s["champion"]["accuracy"], 6) for n, s in evaluation["splits"].items()
                               if s["role"] == "new" and s.get("champion")}})
    trained = (old.get("trained_batches", []) if old else []) + list(batch_ids)
    return {**atomic.read_json(paths.candidate / "ratchet_model.json"), "version": version,
            "run_id": run_id, "trained_batches": trained, "history": history}


def conclude(root: str, outcome: TrainingOutcome) -> TrainingOutcome:
    """Promote (alias + data/champion/) or reject; close every affected arrival in the ledger."""
    paths, settings = _project(root)
    ledger = Ledger(paths.ledger)
    gate_checks = atomic.read_json(paths.gate_result)["checks"]  # kept with each batch it judged
    if outcome.passed:
        evaluation = atomic.read_json(paths.eval_metrics)
        manifest = _champion_manifest(paths, evaluation, outcome.version, outcome.run_id, outcome.batch_ids)
        with champion_lock(paths):
            # if the alias moved since the gate ran, nothing below happens (checked again on the move)
            registry.require_champion(paths, settings, evaluation["champion_version"], outcome.version)
            store.install_champion(paths, paths.candidate, manifest)
            store.install_replay_buffer(paths, paths.next_replay_buffer)
            store.set_status(paths, outcome.batch_ids, "trained")
            dvc_repo.add(paths.root)
            registry.promote(paths, settings, outcome.version, reason=outcome.reason, run_id=outcome.run_id,
                             expected_champion=evaluation["champion_version"])
        state, reason = "promoted", f"v{outcome.version} is champion: {outcome.reason}"
    else:
        store.set_status(paths, outcome.batch_ids, "rejected")
        dvc_repo.add(paths.root)
        state, reason = "rejected", f"gate rejected v{outcome.version}: {outcome.reason}"
        if outcome.earlier_attempts:
            tried = "; ".join(f"attempt {a['attempt'] + 1} (v{a['version']}): {a['reason']}"
                              for a in outcome.earlier_attempts)
            reason = (f"gate rejected all {len(outcome.earlier_attempts) + 1} attempts, the last with stronger "
                      f"retention (v{outcome.version}): {outcome.reason}; earlier: {tried}")
    for entry in ledger.current():
        if entry.batch_id in outcome.batch_ids and entry.state in ("accepted", "accumulated", "received"):
            ledger.record(entry.arrival, entry.batch_id, entry.file, state, reason,
                          metrics={**entry.metrics, **_batch_metrics(outcome, entry.batch_id)},
                          details={**entry.details, "version": outcome.version, "run_id": outcome.run_id,
                                   "gate_checks": gate_checks, "attempt": outcome.attempt,
                                   "earlier_attempts": outcome.earlier_attempts})
    return outcome


def rollback(root: str, reason: str) -> dict:
    """Put the `previous` version back as champion: data/champion/, aliases, catalog and ledger.

    Batches that only the rolled-back champion had learned are marked rejected (kept in data/,
    never replayed or evaluated again) and their arrivals record why.
    """
    import tempfile

    paths, settings = _project(root)
    with champion_lock(paths):
        current, previous = registry.champion_version(paths, settings), registry.previous_version(paths, settings)
        if current is None or previous is None:
            raise RuntimeError("nothing to roll back to: the registry has no `previous` version")
        with tempfile.TemporaryDirectory() as scratch:
            model_dir, manifest = registry.download_champion(paths, settings, previous, Path(scratch))
            undone = _install_version(paths, settings, model_dir, manifest,
                                      why=f"rolled back from v{current} to v{previous}: {reason}")
        registry.roll_back_aliases(paths, settings, current, previous, reason)
    return {"from_version": current, "to_version": previous, "batches_undone": undone}


class PromotionRefused(RuntimeError):
    def __init__(self, version: str, gate: GateResult) -> None:
        super().__init__(f"the gate refuses v{version}: {gate.summary()} (use --force to promote anyway; "
                         "that is recorded)")
        self.gate = gate


def promote_version(root: str, version: str, reason: str, force: bool = False) -> dict:
    """Make a registered version the champion by hand: gated against the current champion unless forced.

    Under the champion lock: the version's model and manifest come from the registry, the gate runs
    on the eval splits of every batch the version learned (old = the current champion learned it
    too, new = it did not) plus the canary set, and only then data/, the catalog, the replay
    buffer, the ledger and the aliases move. A forced promotion says so in the alias history.
    """
    import tempfile

    paths, settings = _project(root)
    version = str(version)
    with champion_lock(paths):
        current = registry.champion_version(paths, settings)
        if current == version:
            raise RuntimeError(f"v{version} is already the champion")
        with tempfile.TemporaryDirectory() as scratch:
            model_dir, manifest = registry.download_champion(paths, settings, version, Path(scratch))
            gate = _gate_version(paths, settings, model_dir, manifest)
            if not gate.passed and not force:
                raise PromotionRefused(version, gate)
            verdict = "gate passed" if gate.passed else f"FORCED past the gate ({gate.summary()})"
            why = f"promoted by hand, {verdict}: {reason}"
            undone = _install_version(paths, settings, model_dir, manifest, why=why)
        registry.promote(paths, settings, version, reason=why, expected_champion=current)
        if force:
            registry.tag_version(paths, settings, version, "ratchet.forced", reason)
    return {"from_version": current, "to_version": version, "gate": gate.to_dict(), "forced": force and not gate.passed,
            "batches_undone": undone}


def _gate_version(paths: ProjectPaths, settings: Settings, model_dir: Path, manifest: dict) -> GateResult:
    from ratchet.comparison import compare_on_splits

    labels = list(settings.data.labels)
    candidate = modeling.load_classifier(model_dir, settings.model, labels)
    champion_manifest = store.champion_manifest(paths)
    champion = modeling.load_classifier(paths.champion, settings.model, labels) if champion_manifest else None
    known = set(champion_manifest.get("trained_batches", [])) if champion_manifest else set()
    suite = [(b, "old" if b in known else "new", store.read_split(paths, b, "eval"))
             for b in manifest["trained_batches"]]
    if paths.canary.exists():
        suite.append(("canary", "canary", store.read_canary(paths)))
    splits = compare_on_splits(candidate, champion, suite, settings.evaluate.batch_size)
    return decide({"champion_version": champion_manifest["version"] if champion_manifest else None,
                   "splits": splits}, settings.gate)


def _install_version(paths: ProjectPaths, settings: Settings, model_dir: Path, manifest: dict, why: str) -> list[str]:
    """data/champion/, catalog statuses, replay buffer and ledger follow a version; returns batches undone."""
    current_manifest = store.champion_manifest(paths) or {}
    learned = list(manifest["trained_batches"])
    store.install_champion(paths, model_dir, manifest)
    undone = [b for b in current_manifest.get("trained_batches", []) if b not in learned]
    regained = [e.batch_id for e in store.read_catalog(paths) if e.batch_id in learned and e.status != "trained"]
    if undone:
        store.set_status(paths, undone, "rejected")
    if regained:
        store.set_status(paths, regained, "trained")
    store.build_replay_buffer(paths, settings.continual.replay, learned, seed=settings.prepare.seed).save(
        paths.replay_buffer)
    dvc_repo.add(paths.root)
    ledger = Ledger(paths.ledger)
    for entry in ledger.current():
        if entry.batch_id in undone and entry.state == "promoted":
            ledger.record(entry.arrival, entry.batch_id, entry.file, "rejected", why, entry.metrics, entry.details)
        elif entry.batch_id in regained and entry.state == "rejected":
            ledger.record(entry.arrival, entry.batch_id, entry.file, "promoted", why, entry.metrics, entry.details)
    return undone


def _batch_metrics(outcome: TrainingOutcome, batch_id: str) -> dict[str, float]:
    keys = {f"candidate_accuracy.{batch_id}": "new_split_accuracy",
            f"champion_accuracy.{batch_id}": "champion_new_split_accuracy",
            "candidate_average_accuracy": "average_accuracy"}
    return {short: round(outcome.metrics[key], 4) for key, short in keys.items() if key in outcome.metrics}


def push_data(root: str) -> bool:
    """`dvc push` to the project's default DVC remote, when it has one (False otherwise)."""
    paths, _ = _project(root)
    return dvc_repo.push(paths.root)


# --- recovery: the ledger decides where a batch stands -------------------------------------------

def reconcile(root: str) -> list[str]:
    """Finish the bookkeeping of arrivals a killed run left half done; returns what was fixed.

    A worker killed hard leaves its Prefect flow run `Running`, so ratchet does not ask Prefect:
    every arrival still `received` is checked against the project itself. Its file still waiting
    in incoming/ is simply processed again; otherwise it was either quarantined (reason.json
    written, the ledger not yet) or accepted into data/ (the file archived, the ledger not yet).
    Accepted batches go through the training policy again; arrivals already `accepted` are trained
    by the flow's unfinished-training step.
    """
    paths, settings = _project(root)
    ledger = Ledger(paths.ledger)
    catalog = {e.batch_id for e in store.read_catalog(paths)}
    fixed = []
    for entry in ledger.current():
        if entry.state != "received" or (paths.incoming / entry.file).exists():
            continue
        reason_file = paths.quarantine / entry.batch_id / "reason.json"
        if reason_file.exists():
            reason = str(atomic.read_json(reason_file).get("reason", "failed validation"))
            ledger.record(entry.arrival, entry.batch_id, entry.file, "quarantined", reason, entry.metrics,
                          entry.details)
            fixed.append(f"{entry.file}: quarantined (recorded after an interrupted run)")
        elif entry.batch_id in catalog:
            drift_json = paths.drift_reports / f"{entry.batch_id}.json"
            severity = atomic.read_json(drift_json).get("severity", "none") if drift_json.exists() else "none"
            archived = paths.archive / entry.batch_id / entry.file
            arrival = Arrival(entry.arrival, entry.batch_id, entry.file, str(archived), "received")
            result = accept(root, arrival, DriftVerdict(severity, "recorded before an interrupted run",
                                                        str(paths.drift_reports / f"{entry.batch_id}.html")))
            fixed.append(f"{entry.file}: {'accepted' if result.ok else 'accumulated'} "
                         "(accepted into data/ before an interrupted run)")
        else:
            ledger.record(entry.arrival, entry.batch_id, entry.file, "failed",
                          f"{entry.file} left incoming/ during an interrupted run and is neither in data/ nor "
                          "in quarantine/: drop it into incoming/ again", entry.metrics, entry.details)
            fixed.append(f"{entry.file}: lost during an interrupted run (marked failed)")
    for line in fixed:
        log.warning("reconcile: %s", line)
    return fixed


# --- the first champion --------------------------------------------------------------------------

def has_unfinished_training(root: str) -> bool:
    """An arrival the policy sent to training but that never reached promoted/rejected (a crash,
    or the first champion still to train): the flow trains the pending batches before new files."""
    paths, _ = _project(root)
    pending = set(store.batches_with_status(paths, "pending"))
    return any(e.state == "accepted" and e.batch_id in pending for e in Ledger(paths.ledger).current())


def needs_first_champion(root: str) -> bool:
    paths, _ = _project(root)
    return store.champion_manifest(paths) is None and "reference" in store.batches_with_status(paths, "pending")


def open_reference_arrival(root: str) -> None:
    """The reference set is the first batch: give it a ledger arrival so its outcome is recorded."""
    paths, _ = _project(root)
    ledger = Ledger(paths.ledger)
    if ledger.seen("reference") is None:
        ledger.record(ledger.next_arrival(), "reference", "data/reference", "accepted",
                      "reference set: the first champion is trained on it from the base model")


def read_reference_file(root: str, file: Path) -> tuple[Settings, pd.DataFrame, str]:
    """A user's reference set, read and normalised like any batch."""
    _, settings = _project(root)
    batch_id, frame = _load_batch(file, settings)
    return settings, frame, batch_id


def summary_rows(root: str) -> list[dict]:
    paths, _ = _project(root)
    return [asdict(e) for e in Ledger(paths.ledger).current()]


def orchestration(root: str):
    """The project's orchestration settings (deployments, retries, the training pool)."""
    return _project(root)[1].orchestration
