"""ratchet-watch: process every file of incoming/ in arrival order. Wiring only: each task is one
function of ratchet.intake / attempt / champion / recovery, and tasks pass the run's Project (paths
and settings, read once per flow run), ids, paths and small dataclasses.

Tasks persist JSON results per root flow run (flows/orchestration.py): re-running a crashed flow
run resumes after its last finished task. Tasks that talk to storage or the tracking server retry
with backoff on transient errors; training never retries blindly (the feedback loop decides).
"""

from __future__ import annotations

from pathlib import Path

from ratchet.offline import configure_offline

configure_offline()  # before Prefect reads its settings

from dataclasses import asdict, dataclass  # noqa: E402

from prefect import Task, flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_link_artifact, create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows.orchestration import (  # noqa: E402
    project_dir,
    prune_results,
    result_storage,
    run_training_deployment,
    step_options,
    training_slot,
)
from ratchet import attempt, champion, dvc_repo, failure, intake, recovery  # noqa: E402
from ratchet.attempt import PipelineRun, TrainingOutcome  # noqa: E402
from ratchet.attempt_plan import AttemptPlan  # noqa: E402
from ratchet.batch_state import BatchState, BatchStates  # noqa: E402
from ratchet.batches import BatchReadError, list_incoming  # noqa: E402
from ratchet.intake import Arrival, DriftVerdict, TrainingDecision, ValidationVerdict  # noqa: E402
from ratchet.locking import run_lock  # noqa: E402
from ratchet.paths import ProjectPaths  # noqa: E402
from ratchet.project import Project  # noqa: E402
from ratchet.summary import batch_markdown  # noqa: E402


def _push_data(project: Project) -> bool:
    """`dvc push` to the project's default DVC remote, when it has one (False otherwise)."""
    return dvc_repo.push(project.paths.root)


# Every step reads and writes project state: none is cached across flow runs (see steps_for).
receive = task(intake.receive, name="receive", cache_policy=NO_CACHE)
validate = task(intake.validate, name="validate (Great Expectations)", cache_policy=NO_CACHE)
check_drift = task(intake.check_drift, name="drift (Evidently)", cache_policy=NO_CACHE)
accept = task(intake.accept, name="accept into data/", cache_policy=NO_CACHE)
release_accumulated = task(intake.release_accumulated, name="policy: train the accumulated batches?",
                           cache_policy=NO_CACHE)
fetch_remote = task(intake.fetch_remote, name="fetch new files from incoming_url", cache_policy=NO_CACHE)
run_pipeline = task(attempt.run_pipeline, name="dvc repro: prepare, train, evaluate, gate",
                    cache_policy=NO_CACHE)  # no retries: a failed training is not retried blindly
register = task(attempt.register, name="register (MLflow)", cache_policy=NO_CACHE)
conclude = task(champion.conclude, name="promote or reject", cache_policy=NO_CACHE)
reconcile = task(recovery.reconcile, name="reconcile the ledger after interrupted runs", cache_policy=NO_CACHE)
push_data = task(_push_data, name="dvc push data/", cache_policy=NO_CACHE)
drift_report = task(intake.drift_report, name="drift report (Evidently)", cache_policy=NO_CACHE)


@dataclass(frozen=True)
class Steps:
    """The tasks above bound to one project: results persisted as JSON in its .ratchet-cache,
    resumable within a root flow run; the I/O steps (storage, tracking server) retry with backoff."""

    receive: Task[[Project, str], Arrival]
    validate: Task[[Project, Arrival], ValidationVerdict]
    check_drift: Task[[Project, Arrival], DriftVerdict]
    accept: Task[[Project, Arrival, DriftVerdict], TrainingDecision]
    release_accumulated: Task[[Project], TrainingDecision]
    fetch_remote: Task[[Project], list[str]]
    run_pipeline: Task[[Project, AttemptPlan, list[str]], PipelineRun | None]
    register: Task[[Project, PipelineRun], TrainingOutcome]
    conclude: Task[[Project, TrainingOutcome], TrainingOutcome]
    reconcile: Task[[Project], list[str]]
    push_data: Task[[Project], bool]


def steps_for(project: Project) -> Steps:
    storage, io = result_storage(project.root), project.settings.orchestration
    resumable, with_io = step_options(storage), step_options(storage, io=io)
    # idempotent and reading the project as it is now: never served from an earlier result
    always = step_options(storage, resumable=False)
    return Steps(receive=receive.with_options(**resumable), validate=validate.with_options(**resumable),
                 check_drift=check_drift.with_options(**with_io), accept=accept.with_options(**resumable),
                 release_accumulated=release_accumulated.with_options(**resumable),
                 fetch_remote=fetch_remote.with_options(**with_io),
                 run_pipeline=run_pipeline.with_options(**resumable), register=register.with_options(**with_io),
                 conclude=conclude.with_options(**resumable), reconcile=reconcile.with_options(**always),
                 push_data=push_data.with_options(**step_options(storage, io=io, resumable=False)))


@flow(name="ratchet-train")
def train_pending(project: str) -> TrainingOutcome | None:
    """Train a candidate on every pending batch, gate it, register it, promote or reject it.

    The feedback loop (params `feedback`, up to `max_attempts`): when the gate fails only on what the
    champion knew, retrain with more retention; when it fails only on the new data, with less (the
    model did not learn: more retention would make that worse). Every attempt is its own MLflow
    run and model version.
    One training at a time: the training slot (flows/orchestration.training_slot: this machine's,
    or Prefect's concurrency limit for a work pool) and a lock file in the project (around `dvc repro`).
    """
    loaded = Project.load(project_dir(project))
    steps = steps_for(loaded)
    pending = attempt.pending_batches(loaded)
    if not pending:
        return None
    attempts = loaded.settings.feedback.max_attempts
    with training_slot(loaded.settings.orchestration):
        earlier: list[TrainingOutcome] = []
        plan = AttemptPlan()
        while True:
            training = steps.run_pipeline(loaded, plan, pending)
            if training is None:
                return None
            outcome = steps.register(loaded, training)
            if outcome.passed or outcome.retry is None or plan.attempt + 1 == attempts:
                break
            get_run_logger().info("attempt %d failed (%s): retrying with %s", plan.attempt + 1, outcome.reason,
                                  outcome.retry.replace("_", " "))
            earlier.append(outcome)
            plan = AttemptPlan(attempt=plan.attempt + 1, retries=[*plan.retries, outcome.retry])
        outcome = steps.conclude(loaded, outcome.with_earlier(earlier))
    steps.push_data(loaded)
    return outcome


def _train(project: Project) -> None:
    """Inline (the embedded default), or on the training pool's worker through its deployment."""
    pool = project.settings.orchestration.train_pool
    if pool:
        get_run_logger().info("training on work pool %r (deployment ratchet-train)", pool)
        run_training_deployment(project.root, pool)
    else:
        train_pending(project.root)


@flow(name="ratchet-watch")
def watch(project: str = ".") -> list[dict]:
    """Bootstrap the first champion if needed, then take each incoming file through its life."""
    with run_lock(ProjectPaths.at(project_dir(project))):   # one loop per project at a time
        return _watch(project)


def _watch(project: str) -> list[dict]:
    logger = get_run_logger()
    loaded = Project.load(project_dir(project))   # the settings of this whole run
    steps = steps_for(loaded)
    prune_results(loaded.root)
    for line in steps.reconcile(loaded):
        logger.warning("reconciled: %s", line)
    if loaded.settings.orchestration.incoming_url:
        fetched = steps.fetch_remote(loaded)
        logger.info("fetched %d new file(s) from %s", len(fetched), loaded.settings.orchestration.incoming_url)
    if recovery.needs_first_champion(loaded):
        logger.info("no champion yet: training the first one on the reference set")
        recovery.open_reference_arrival(loaded)
    if recovery.has_unfinished_training(loaded):
        logger.info("finishing the training of batches accepted earlier")
        _train_isolated(loaded)
    released = steps.release_accumulated(loaded)
    if released.train_now:
        logger.info("training the accumulated batches: %s", released.reason)
        _train_isolated(loaded)
    for path in list_incoming(loaded.paths.incoming):
        try:
            arrival = steps.receive(loaded, str(path))
        except Exception as error:  # noqa: BLE001 - one unreadable file must not stop the others
            if not failure.should_isolate(error):
                raise
            logger.error("%s could not be received (%s: %s); left in incoming/", path.name, type(error).__name__, error)
            continue
        if arrival.state == BatchState.RECEIVED:
            _process(steps, loaded, arrival)
        create_markdown_artifact(key=f"batch-{arrival.batch_id}",
                                 markdown=batch_markdown(loaded.paths, arrival.arrival),
                                 description=f"ratchet: outcome of {arrival.file}")
    return [asdict(e) for e in BatchStates(loaded.paths).current()]


def _process(steps: Steps, project: Project, arrival: Arrival) -> None:
    """One received file: validate, drift, accept, and train when the policy says so.

    An unexpected error ends this batch `failed` (taken out of data/, file kept in quarantine/) and
    the loop goes on with the next file; a transient one ends the run, and the next run resumes.
    """
    step = "validation"
    try:
        if not steps.validate(project, arrival).passed:
            return
        step = "drift check"
        drift = steps.check_drift(project, arrival)
        _link_drift_report(arrival.batch_id, drift.report, arrival.file, drift.severity)
        step = "accept into data/"
        decision = steps.accept(project, arrival, drift)
    except Exception as error:  # noqa: BLE001 - isolated to this batch
        if not failure.isolate(project, [arrival.batch_id], step, error):
            raise
        return
    # not the batch's doing: a remote that refuses ends the run (the next one pushes again)
    steps.push_data(project)  # the accepted batch is safe in the remote before any training starts
    if decision.train_now:
        _train_isolated(project)


def _train_isolated(project: Project) -> None:
    """Train the pending batches; an unexpected error ends every batch of that training `failed`
    (ratchet.failure.isolate says when the run must end instead)."""
    pending = attempt.pending_batches(project)
    try:
        _train(project)
    except Exception as error:  # noqa: BLE001 - isolated to the batches of this training
        if not failure.isolate(project, pending, "training (dvc repro, register)", error):
            raise


def _link_drift_report(batch_id: str, html_path: str, file: str, severity: str) -> None:
    create_link_artifact(key=f"drift-{batch_id}", link=Path(html_path).resolve().as_uri(),
                         link_text=f"drift report of {file}: {severity}",
                         description=f"ratchet: the reviewer's drift report of {file}")


@flow(name="ratchet-report")
def report(project: str = ".") -> list[dict]:
    """Drift reports of the files waiting in incoming/, for reviewers: nothing is moved or trained."""
    loaded = Project.load(project_dir(project))
    rows = []
    for path in list_incoming(loaded.paths.incoming):
        try:
            result = drift_report(loaded, str(path), validate_first=True)
        except BatchReadError as error:
            rows.append({"file": path.name, "severity": "invalid", "reasons": [str(error)], "report": ""})
            continue
        _link_drift_report(result.batch_id, result.html_path, path.name, result.severity)
        rows.append({"file": path.name, "batch_id": result.batch_id, "severity": result.severity,
                     "reasons": result.reasons, "report": result.html_path})
    return rows


if __name__ == "__main__":
    watch()
