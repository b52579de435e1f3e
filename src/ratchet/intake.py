"""Intake: a file's way from incoming/ into data/ (receive -> validate -> drift -> accept).

Each step takes the run's `Project` and small values, and returns a small typed result, so an
orchestrator can hash and persist what passes between steps. Where a batch stands is recorded by
the state machine (ratchet.batch_state), not by the orchestrator.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ratchet import atomic, dvc_repo, faultpoints, registry, store
from ratchet.batch_state import SETTLED, BatchState, BatchStates
from ratchet.batches import BatchReadError, content_hash, normalise, read_raw
from ratchet.config import Settings
from ratchet.entities.sentences import load_sentence_batch
from ratchet.entities.tags import repair
from ratchet.policy import should_train
from ratchet.project import Project
from ratchet.records import TOKEN_CLASSIFICATION


@dataclass(frozen=True)
class Arrival:
    """A file taken from incoming/: its arrival number, content id and where it lies now."""

    arrival: int
    batch_id: str
    file: str
    path: str
    state: BatchState  # received, or a state reached at once (duplicate, quarantined)
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", BatchState(self.state))  # persisted results hold the plain string


@dataclass(frozen=True)
class ValidationVerdict:
    passed: bool
    reason: str


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
class TrainingDecision:
    """The training policy's answer after a batch was accepted (or for the accumulated ones)."""

    train_now: bool
    reason: str
    batch_ids: list[str] = field(default_factory=list)   # the batches it concerns


def load_batch(path: Path, settings: Settings) -> tuple[str, pd.DataFrame]:
    """(batch id, normalised rows) of a batch file; in a token-classification project, its
    sentences (CoNLL or JSON Lines: ratchet.entities.sentences)."""
    if settings.task == TOKEN_CLASSIFICATION:
        return load_sentence_batch(path)
    raw = read_raw(path)
    batch_id = content_hash(raw)
    return batch_id, normalise(raw, settings.data, batch_id)


def _rows(arrival: Arrival, settings: Settings) -> pd.DataFrame:
    """The arrival's rows, read again from where the file lies now (its id is known: no re-hash)."""
    if settings.task == TOKEN_CLASSIFICATION:
        return load_sentence_batch(Path(arrival.path))[1]
    return normalise(read_raw(Path(arrival.path)), settings.data, arrival.batch_id)


def run_suite(frame: pd.DataFrame, settings: Settings):
    """The project's Great Expectations suite on a batch: rows of text, or sentences of tokens."""
    if settings.task == TOKEN_CLASSIFICATION:
        from ratchet.entities.validation import validate_sentences

        return validate_sentences(frame, settings.data, settings.validation)
    from ratchet.validation import validate as validate_rows

    return validate_rows(frame, settings.data, settings.validation)


def accepted_rows(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """What data/ keeps of a valid batch: the rows, or the sentences with the declared BIO repair applied."""
    if settings.task != TOKEN_CLASSIFICATION:
        return frame
    return frame.assign(tags=[repair(list(tags), settings.data.bio_repair) for tags in frame["tags"]])


def receive(project: Project, file: str) -> Arrival:
    """Read and hash an incoming file; spot duplicates and unreadable files at once."""
    from ratchet.validation import quarantine

    paths, states = project.paths, BatchStates(project.paths)
    source = Path(file)
    try:
        batch_id, frame = load_batch(source, project.settings)
    except BatchReadError as error:
        batch_id = "b-" + hashlib.sha256(source.read_bytes()).hexdigest()[:12]
        arrival = states.next_arrival()
        destination = quarantine(source, paths.quarantine / batch_id, batch_id, str(error), None)
        states.move(arrival, batch_id, source.name, BatchState.QUARANTINED, str(error))
        return Arrival(arrival, batch_id, source.name, str(destination / source.name), BatchState.QUARANTINED,
                       str(error))

    previous = states.seen(batch_id)
    if previous is not None and previous.state in SETTLED:
        reason = f"same content as {previous.file} (arrival {previous.arrival}, {previous.state})"
        arrival = states.next_arrival()
        destination = paths.archive / batch_id / "duplicates" / f"{arrival}-{source.name}"
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), destination)
        states.move(arrival, batch_id, source.name, BatchState.DUPLICATE, reason)
        return Arrival(arrival, batch_id, source.name, str(destination), BatchState.DUPLICATE, reason)
    # A crashed earlier run left this content half-processed: resume it under the same arrival.
    arrival = previous.arrival if previous is not None else states.next_arrival()
    states.move(arrival, batch_id, source.name, BatchState.RECEIVED, details={"rows": len(frame)})
    faultpoints.reached("after_receive", [batch_id])
    return Arrival(arrival, batch_id, source.name, str(source), BatchState.RECEIVED)


def fetch_remote(project: Project) -> list[str]:
    """Copy new files from `orchestration.incoming_url` (an fsspec URL) into incoming/."""
    from ratchet.remote_incoming import fetch_incoming

    url = project.settings.orchestration.incoming_url
    return fetch_incoming(project.paths, url) if url else []


def validate(project: Project, arrival: Arrival) -> ValidationVerdict:
    """Run the suite; a failing batch goes to quarantine/<batch_id>/ with reason.json and the GE result."""
    from ratchet.validation import quarantine

    paths, settings = project.paths, project.settings
    result = run_suite(_rows(arrival, settings), settings)
    faultpoints.reached("mid_validation", [arrival.batch_id])
    atomic.write_json(paths.validation_reports / f"{arrival.batch_id}.json", result.ge_result)
    if result.passed:
        return ValidationVerdict(True, result.summary())
    reason = f"{arrival.file}: {result.summary()}"
    quarantine(Path(arrival.path), paths.quarantine / arrival.batch_id, arrival.batch_id, reason, result)
    BatchStates(paths).move(arrival.arrival, arrival.batch_id, arrival.file, BatchState.QUARANTINED, reason,
                            details={"failures": [f.check for f in result.failures]})
    return ValidationVerdict(False, reason)


def check_drift(project: Project, arrival: Arrival) -> DriftVerdict:
    """Drift report against the reference: reports/drift/<batch_id>.html (+ .json), index.html,
    and a drift run in MLflow."""
    result = drift_report(project, arrival.path)
    # one drift run per arrival, retries included (the report's JSON holds timings: no hash of it)
    key = hashlib.sha256(f"drift:{arrival.arrival}:{arrival.batch_id}".encode()).hexdigest()[:32]
    registry.log_drift(project.paths, project.settings, result, key=key)
    reason = "; ".join(result.reasons) if result.drifted else "no drift against the reference"
    return DriftVerdict(result.severity, reason, result.html_path)


def drift_report(project: Project, file: str, validate_first: bool = False):
    """The drift report of any batch file, in the champion's terms; touches neither the ledger nor
    the file (reviewers can look at a batch before it is processed: `ratchet drift FILE`).

    `validate_first`: run the Great Expectations suite and refuse (BatchReadError) a batch that fails.
    """
    from ratchet.drift import detect_drift

    paths, settings = project.paths, project.settings
    batch_id, frame = load_batch(Path(file), settings)
    if validate_first:
        checked = run_suite(frame, settings)
        if not checked.passed:
            raise BatchReadError(f"{Path(file).name} fails validation, no drift report: {checked.summary()}")
    manifest = store.champion_manifest(paths)
    if settings.task == TOKEN_CLASSIFICATION:
        from ratchet.entities.drift import detect_entity_drift
        from ratchet.entities.tagger import load_tagger

        tagger = load_tagger(paths.champion, settings.model) if manifest else None
        return detect_entity_drift(frame, store.read_reference(paths), settings.drift, paths.drift_reports, batch_id,
                                   champion=tagger, learned=list(manifest.entity_types) if manifest else [],
                                   cache_dir=paths.drift_cache, source=Path(file).name)
    from ratchet import modeling   # torch: imported by the one step that runs the champion

    champion = modeling.load_classifier(paths.champion, settings.model) if manifest else None
    champion_key = f"v{manifest.version}:{manifest.run_id}" if manifest else ""
    learned = set(manifest.trained_batches) if manifest else set()
    known_labels = {label for entry in store.read_catalog(paths) if entry.batch_id in learned
                    for label in entry.label_counts}
    return detect_drift(frame, store.read_reference(paths), settings.drift, paths.drift_reports, batch_id,
                        champion=champion, champion_key=champion_key, cache_dir=paths.drift_cache,
                        known_labels=known_labels, source=Path(file).name)


def accept(project: Project, arrival: Arrival, drift: DriftVerdict) -> TrainingDecision:
    """Split the batch into data/batches/<id>/, archive the original file, `dvc add data`, and ask
    the training policy: the batch becomes `accepted` (train now) or `accumulated`."""
    paths, settings = project.paths, project.settings
    source = Path(arrival.path)
    if arrival.batch_id not in {e.batch_id for e in store.read_catalog(paths)}:
        store.accept_batch(paths, arrival.batch_id, accepted_rows(_rows(arrival, settings), settings), source=arrival.file,
                           eval_fraction=settings.data.eval_fraction)
    archived = paths.archive / arrival.batch_id / arrival.file
    if source.exists():
        archived.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), archived)
    dvc_repo.add(paths.root)
    pending = store.batches_with_status(paths, "pending")
    waiting = sum(e.n_train for e in store.read_catalog(paths) if e.status == "pending")
    decision = should_train(settings.policy, drift.severity, waiting, hours_since_training(BatchStates(paths)))
    details = {"drift": {"drifted": drift.drifted, "severity": drift.severity, "reason": drift.reason,
                         "report": drift.report}, "archived": str(archived), "pending_batches": pending}
    state = BatchState.ACCEPTED if decision.train else BatchState.ACCUMULATED
    BatchStates(paths).move(arrival.arrival, arrival.batch_id, arrival.file, state, decision.reason,
                            metrics={"drifted": drift.drifted}, details=details)
    faultpoints.reached("after_accept", [arrival.batch_id])
    return TrainingDecision(decision.train, decision.reason, pending)


def hours_since_training(states: BatchStates) -> float | None:
    """Hours since the last training ended (a batch promoted or rejected); None before the first."""
    ends = [e.at for e in states.events() if e.state in (BatchState.PROMOTED, BatchState.REJECTED)]
    if not ends:
        return None
    return (datetime.now(timezone.utc) - datetime.fromisoformat(max(ends))).total_seconds() / 3600


def release_accumulated(project: Project) -> TrainingDecision:
    """With no new batch: does the policy now train the accumulated batches (schedule due, enough
    examples, cooldown over)? If so they become `accepted`."""
    paths, states = project.paths, BatchStates(project.paths)
    pending = set(store.batches_with_status(paths, "pending"))
    waiting = [e for e in states.current() if e.state == BatchState.ACCUMULATED and e.batch_id in pending]
    if not waiting:
        return TrainingDecision(False, "no accumulated batches")
    examples = sum(e.n_train for e in store.read_catalog(paths) if e.batch_id in pending)
    decision = should_train(project.settings.policy, "none", examples, hours_since_training(states))
    ids = [e.batch_id for e in waiting]
    if decision.train:
        states.move_batches(ids, BatchState.ACCEPTED, decision.reason, from_states=[BatchState.ACCUMULATED])
    return TrainingDecision(decision.train, decision.reason, ids)
