"""Failure isolation: an unexpected error in a batch's life ends that batch `failed`, not the loop.

A failed batch is taken back out of data/ (data.dvc as before it was accepted), its file is kept
in quarantine/<batch_id>/ with reason.json naming the step and the error, and the ledger records
the failure. `ratchet retry` puts it back in line (the file into incoming/), `ratchet drop` ends it
for good. A transient error (the tracking server or the network away after the step's own retries)
is not the batch's fault: it is left where it stands and the next run resumes it.
"""

from __future__ import annotations

import logging
import os
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path

from ratchet import atomic, dvc_repo, store
from ratchet.batch_state import BatchEvent, BatchState, BatchStates
from ratchet.errors import is_transient
from ratchet.project import Project

log = logging.getLogger("ratchet")

# States a batch can fail from: before its conclusion (promoted and rejected are settled).
FAILABLE = (BatchState.RECEIVED, BatchState.ACCUMULATED, BatchState.ACCEPTED)


class BatchCommandError(RuntimeError):
    """`ratchet retry` / `ratchet drop` asked for something the batch's state does not allow."""


@dataclass(frozen=True)
class FailedBatch:
    batch_id: str
    file: str
    kept_at: str   # where the original file is now (quarantine/<batch_id>/<file>), "" when lost


def should_isolate(error: BaseException) -> bool:
    """Whether an error ends the batch (`failed`) rather than the run (transient: resumed later)."""
    return isinstance(error, Exception) and not is_transient(error)


def isolate(project: Project, batch_ids: list[str], step: str, error: BaseException) -> bool:
    """Decide whether `error` in `step` ends these batches, and if so end them `failed`; False
    when the run must end instead (the caller re-raises): a transient error (the next run resumes),
    the first champion's training (without it there is no loop to protect), or a promotion already
    under way (the next run completes it from its record, so nothing of it may be undone)."""
    if not should_isolate(error) or "reference" in batch_ids or project.paths.promotion_record.exists():
        return False
    fail_batches(project, batch_ids, step, error)
    return True


def fail_batches(project: Project, batch_ids: list[str], step: str, error: BaseException) -> list[FailedBatch]:
    """End every not-yet-concluded arrival of these batches `failed`, with the error named."""
    paths, states = project.paths, BatchStates(project.paths)
    reason = f"{step} failed: {type(error).__name__}: {error}"[:2000]
    trace = "".join(traceback.format_exception(error))[-8000:]
    wanted = set(batch_ids)
    failed = []
    for event in states.current():
        if event.batch_id not in wanted or event.state not in FAILABLE:
            continue
        kept = _keep_file(project, event, reason, step, trace)
        store.remove_batch(paths, event.batch_id)
        states.move(event.arrival, event.batch_id, event.file, BatchState.FAILED, reason, event.metrics,
                    {**event.details, "failed_step": step, "error": trace, "kept_at": kept})
        failed.append(FailedBatch(event.batch_id, event.file, kept))
        log.error("batch %s (%s) failed in %s: %s; file kept at %s (`ratchet retry %s` puts it back in line)",
                  event.batch_id, event.file, step, error, kept or "(lost)", event.batch_id)
    if failed:
        dvc_repo.add(paths.root)   # data/ back to its state before these batches were accepted
    return failed


def _keep_file(project: Project, event: BatchEvent, reason: str, step: str, trace: str) -> str:
    """Move the arrival's original file (from incoming/ or archive/) to quarantine/<id>/."""
    paths = project.paths
    folder = paths.quarantine / event.batch_id
    target = folder / event.file
    for candidate in (paths.incoming / event.file, paths.archive / event.batch_id / event.file):
        if candidate.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.move(str(candidate), target)
            break
    atomic.write_json(folder / "reason.json", {"batch_id": event.batch_id, "file": event.file, "state": "failed",
                                               "step": step, "reason": reason, "error": trace})
    return str(target) if target.exists() else ""


def _failed_event(project: Project, batch_id: str) -> BatchEvent:
    current = [e for e in BatchStates(project.paths).current() if e.batch_id == batch_id]
    if not current:
        raise BatchCommandError(f"no batch {batch_id!r} in this project's ledger (`ratchet status` lists them)")
    failed = [e for e in current if e.state == BatchState.FAILED]
    if not failed:
        raise BatchCommandError(f"batch {batch_id} is {current[-1].state}, not failed: only a failed batch "
                                "can be retried or dropped")
    return failed[-1]


def retry(project: Project, batch_id: str) -> Path:
    """Put a failed batch back in line: its file back into incoming/ (processed by the next run)."""
    paths = project.paths
    event = _failed_event(project, batch_id)
    kept = paths.quarantine / batch_id / event.file
    if not kept.is_file():
        raise BatchCommandError(f"batch {batch_id}: its file {event.file} is not in {kept.parent} (lost in an "
                                "interrupted run): drop a copy into incoming/ instead")
    target = paths.incoming / event.file
    if target.exists():
        raise BatchCommandError(f"{target} exists: move it away first, then retry")
    paths.incoming.mkdir(parents=True, exist_ok=True)
    mtime = kept.stat().st_mtime
    BatchStates(paths).move(event.arrival, batch_id, event.file, BatchState.RECEIVED,
                            f"retry requested after: {event.reason}", event.metrics, event.details)
    shutil.move(str(kept), target)
    shutil.rmtree(paths.quarantine / batch_id, ignore_errors=True)  # the failure stays in the ledger
    os.utime(target, (mtime, mtime))   # keeps its place in the arrival order
    return target


def drop(project: Project, batch_id: str, reason: str) -> Path:
    """End a failed batch for good: `quarantined` with the reason given, its file kept in quarantine/."""
    paths = project.paths
    event = _failed_event(project, batch_id)
    folder = paths.quarantine / batch_id
    why = f"dropped by hand: {reason} (after: {event.reason})"
    record = atomic.read_json(folder / "reason.json") if (folder / "reason.json").exists() else {}
    atomic.write_json(folder / "reason.json", {**record, "batch_id": batch_id, "file": event.file,
                                               "state": "quarantined", "reason": why})
    BatchStates(paths).move(event.arrival, batch_id, event.file, BatchState.QUARANTINED, why, event.metrics,
                            event.details)
    return folder
