"""Recovery: where a run starts, and what an interrupted run left half done.

A worker killed hard leaves its Prefect flow run `Running`, so ratchet does not ask Prefect: the
ledger and the project itself say where each batch stands.
"""

from __future__ import annotations

import logging

from ratchet import atomic, champion, dvc_repo, store
from ratchet.batch_state import BatchState, BatchStates
from ratchet.intake import Arrival, DriftVerdict, accept
from ratchet.project import Project

log = logging.getLogger("ratchet")


def reconcile(project: Project) -> list[str]:
    """Finish the bookkeeping of arrivals a killed run left half done; returns what was fixed.

    First a champion move a kill cut off: a promotion is completed from its record
    (promotion-in-progress.json); a hand move (data/champion ahead of the alias) is undone.
    Then every arrival still `received` is checked against the project: its file still waiting in
    incoming/ is simply processed again; otherwise it was either quarantined (reason.json written,
    the ledger not yet) or accepted into data/ (the file archived, the ledger not yet). Accepted
    batches go through the training policy again; arrivals already `accepted` are trained by the
    flow's unfinished-training step. Last, the catalog follows the ledger (a crash between the two).
    """
    paths = project.paths
    # a champion move cut off half way: completed from its record, or data/champion back to the alias
    fixed = [line for line in (champion.finish_promotion(project), champion.align_with_alias(project)) if line]
    states = BatchStates(paths)
    catalog = {e.batch_id for e in store.read_catalog(paths)}
    for entry in states.current():
        if entry.state != BatchState.RECEIVED or (paths.incoming / entry.file).exists():
            continue
        reason_file = paths.quarantine / entry.batch_id / "reason.json"
        if reason_file.exists():
            reason = str(atomic.read_json(reason_file).get("reason", "failed validation"))
            states.move(entry.arrival, entry.batch_id, entry.file, BatchState.QUARANTINED, reason, entry.metrics,
                        entry.details)
            fixed.append(f"{entry.file}: quarantined (recorded after an interrupted run)")
        elif entry.batch_id in catalog:
            drift_json = paths.drift_reports / f"{entry.batch_id}.json"
            severity = atomic.read_json(drift_json).get("severity", "none") if drift_json.exists() else "none"
            archived = paths.archive / entry.batch_id / entry.file
            arrival = Arrival(entry.arrival, entry.batch_id, entry.file, str(archived), BatchState.RECEIVED)
            decision = accept(project, arrival, DriftVerdict(severity, "recorded before an interrupted run",
                                                             str(paths.drift_reports / f"{entry.batch_id}.html")))
            fixed.append(f"{entry.file}: {'accepted' if decision.train_now else 'accumulated'} "
                         "(accepted into data/ before an interrupted run)")
        else:
            states.move(entry.arrival, entry.batch_id, entry.file, BatchState.FAILED,
                        f"{entry.file} left incoming/ during an interrupted run and is neither in data/ nor "
                        "in quarantine/: drop it into incoming/ again", entry.metrics, entry.details)
            fixed.append(f"{entry.file}: lost during an interrupted run (marked failed)")
    healed = states.project_catalog()
    if healed:
        dvc_repo.add(paths.root)
    fixed += [f"{b}: catalog status set from the ledger (an interrupted run wrote one, not both)" for b in healed]
    for line in fixed:
        log.warning("reconcile: %s", line)
    return fixed


def has_unfinished_training(project: Project) -> bool:
    """An arrival the policy sent to training but that never reached promoted/rejected (a crash,
    or the first champion still to train): the flow trains the pending batches before new files."""
    pending = set(store.batches_with_status(project.paths, "pending"))
    return any(e.state == BatchState.ACCEPTED and e.batch_id in pending for e in BatchStates(project.paths).current())


def needs_first_champion(project: Project) -> bool:
    paths = project.paths
    return store.champion_manifest(paths) is None and "reference" in store.batches_with_status(paths, "pending")


def open_reference_arrival(project: Project) -> None:
    """The reference set is the first batch: give it an arrival so its outcome is recorded."""
    states = BatchStates(project.paths)
    if states.seen("reference") is None:
        states.move(states.next_arrival(), "reference", "data/reference", BatchState.ACCEPTED,
                    "reference set: the first champion is trained on it from the base model")
