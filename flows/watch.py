"""ratchet-watch: process every file of incoming/ in arrival order. Wiring only: each task is one
function of ratchet.lifecycle, and tasks pass ids, paths and small dataclasses.

Tasks persist JSON results per root flow run (flows/orchestration.py): re-running a crashed flow
run resumes after its last finished task. Tasks that talk to storage or the tracking server retry
with backoff on transient errors; training never retries blindly (the feedback loop decides).
"""

from __future__ import annotations

from pathlib import Path

from ratchet.offline import configure_offline

configure_offline()  # before Prefect reads its settings

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_link_artifact, create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows.orchestration import (  # noqa: E402
    project_dir, prune_results, result_storage, run_training_deployment, step_options, training_slot)
from ratchet import lifecycle  # noqa: E402
from ratchet.batches import BatchReadError, list_incoming  # noqa: E402
from ratchet.paths import ProjectPaths  # noqa: E402
from ratchet.summary import batch_markdown  # noqa: E402

# Every step reads and writes project state: none is cached across flow runs (see Steps).
receive = task(lifecycle.receive, name="receive", cache_policy=NO_CACHE)
validate = task(lifecycle.validate, name="validate (Great Expectations)", cache_policy=NO_CACHE)
check_drift = task(lifecycle.check_drift, name="drift (Evidently)", cache_policy=NO_CACHE)
accept = task(lifecycle.accept, name="accept into data/", cache_policy=NO_CACHE)
drift_report = task(lifecycle.drift_report, name="drift report (Evidently)", cache_policy=NO_CACHE)
release_accumulated = task(lifecycle.release_accumulated, name="policy: train the accumulated batches?",
                           cache_policy=NO_CACHE)
run_pipeline = task(lifecycle.run_pipeline, name="dvc repro: prepare, train, evaluate, gate",
                    cache_policy=NO_CACHE)  # no retries: a failed training is not retried blindly
register = task(lifecycle.register, name="register (MLflow)", cache_policy=NO_CACHE)
conclude = task(lifecycle.conclude, name="promote or reject", cache_policy=NO_CACHE)
reconcile = task(lifecycle.reconcile, name="reconcile the ledger after interrupted runs", cache_policy=NO_CACHE)
fetch_remote = task(lifecycle.fetch_remote, name="fetch new files from incoming_url", cache_policy=NO_CACHE)
push_data = task(lifecycle.push_data, name="dvc push data/", cache_policy=NO_CACHE)


class Steps:
    """The tasks above bound to one project: results persisted as JSON in its .ratchet-cache, resumable
    within a root flow run; the I/O steps (storage, tracking server) retry with backoff."""

    def __init__(self, project: str) -> None:
        storage, io = result_storage(project), lifecycle.orchestration(project)
        for name, step in [("receive", receive), ("validate", validate), ("accept", accept),
                           ("release_accumulated", release_accumulated), ("run_pipeline", run_pipeline),
                           ("conclude", conclude)]:
            setattr(self, name, step.with_options(**step_options(storage)))
        for name, step in [("check_drift", check_drift), ("register", register), ("fetch_remote", fetch_remote)]:
            setattr(self, name, step.with_options(**step_options(storage, io=io)))
        # idempotent and reading the project as it is now: never served from an earlier result
        self.reconcile = reconcile.with_options(**step_options(storage, resumable=False))
        self.push_data = push_data.with_options(**step_options(storage, io=io, resumable=False))


@flow(name="ratchet-train")
def train_pending(project: str) -> lifecycle.TrainingOutcome | None:
    """Train a candidate on every pending batch, gate it, register it, promote or reject it.

    The feedback loop: when the gate fails on forgetting, retrain with stronger retention (params
    `feedback`), up to `max_attempts`; every attempt is its own MLflow run and model version.
    One training at a time: Prefect's global concurrency limit `orchestration.training_limit`
    (across workers) and a lock file in the project (around `dvc repro`).
    """
    project = project_dir(project)
    steps = Steps(project)
    pending = lifecycle.pending_batches(project)
    if not pending:
        return None
    with training_slot(lifecycle.orchestration(project).training_limit):
        earlier: list[lifecycle.TrainingOutcome] = []
        for attempt in range(lifecycle.max_attempts(project)):
            training = steps.run_pipeline(project, attempt, pending)
            if "batch_ids" not in training.details:
                return None
            outcome = steps.register(project, training)
            if outcome.passed or not outcome.forgetting or attempt + 1 == lifecycle.max_attempts(project):
                break
            get_run_logger().info("attempt %d failed on forgetting (%s): retrying with stronger retention",
                                  attempt + 1, outcome.reason)
            earlier.append(outcome)
        outcome = steps.conclude(project, outcome.with_earlier(earlier))
    steps.push_data(project)
    return outcome


def _train(project: str) -> None:
    """Inline (the embedded default), or on the training pool's worker through its deployment."""
    pool = lifecycle.orchestration(project).train_pool
    if pool:
        get_run_logger().info("training on work pool %r (deployment ratchet-train)", pool)
        run_training_deployment(project, pool)
    else:
        train_pending(project)


@flow(name="ratchet-watch")
def watch(project: str = ".") -> list[dict]:
    """Bootstrap the first champion if needed, then take each incoming file through its life."""
    logger = get_run_logger()
    project = project_dir(project)
    steps = Steps(project)
    prune_results(project)
    for line in steps.reconcile(project):
        logger.warning("reconciled: %s", line)
    if lifecycle.orchestration(project).incoming_url:
        fetched = steps.fetch_remote(project)
        logger.info("fetched %d new file(s) from %s", len(fetched), lifecycle.orchestration(project).incoming_url)
    if lifecycle.needs_first_champion(project):
        logger.info("no champion yet: training the first one on the reference set")
        lifecycle.open_reference_arrival(project)
    if lifecycle.has_unfinished_training(project):
        logger.info("finishing the training of batches accepted earlier")
        _train(project)
    released = steps.release_accumulated(project)
    if released.ok:
        logger.info("training the accumulated batches: %s", released.reason)
        _train(project)
    paths = ProjectPaths.at(project)
    for path in list_incoming(paths.incoming):
        arrival = steps.receive(project, str(path))
        if arrival.state == "received":
            _process(steps, project, arrival)
        create_markdown_artifact(key=f"batch-{arrival.batch_id}", markdown=batch_markdown(paths, arrival.arrival),
                                 description=f"ratchet: outcome of {arrival.file}")
    return lifecycle.summary_rows(project)


def _process(steps: Steps, project: str, arrival: lifecycle.Arrival) -> None:
    if not steps.validate(project, arrival).ok:
        return
    drift = steps.check_drift(project, arrival)
    _link_drift_report(arrival.batch_id, drift.report, arrival.file, drift.severity)
    accepted = steps.accept(project, arrival, drift)
    steps.push_data(project)  # the accepted batch is safe in the remote before any training starts
    if accepted.ok:
        _train(project)


def _link_drift_report(batch_id: str, html_path: str, file: str, severity: str) -> None:
    create_link_artifact(key=f"drift-{batch_id}", link=Path(html_path).resolve().as_uri(),
                         link_text=f"drift report of {file}: {severity}",
                         description=f"ratchet: the reviewer's drift report of {file}")


@flow(name="ratchet-report")
def report(project: str = ".") -> list[dict]:
    """Drift reports of the files waiting in incoming/, for reviewers: nothing is moved or trained."""
    project = project_dir(project)
    rows = []
    for path in list_incoming(ProjectPaths.at(project).incoming):
        try:
            result = drift_report(project, str(path), validate_first=True)
        except BatchReadError as error:
            rows.append({"file": path.name, "severity": "invalid", "reasons": [str(error)], "report": ""})
            continue
        _link_drift_report(result.batch_id, result.html_path, path.name, result.severity)
        rows.append({"file": path.name, "batch_id": result.batch_id, "severity": result.severity,
                     "reasons": result.reasons, "report": result.html_path})
    return rows


if __name__ == "__main__":
    watch()
