"""Prefect glue shared by the flows: how task results persist, which failures are retried, the
training slot, and where training runs. Nothing here decides anything about a batch.

Resuming: every task of a flow run persists its result as JSON under the project's
.ratchet-cache/prefect-results/, keyed by the task, its inputs and the root flow run. Re-running that
flow run (a retry, or "Retry" on a crashed run in the UI) returns finished tasks' results instead
of redoing them; a new flow run starts afresh. Results are JSON that decodes only into ratchet's own
step dataclasses, and the storage refuses records written with any other serializer, so whoever
can write the result store cannot make a worker unpickle (run) anything.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Literal

from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE, CachePolicy
from prefect.filesystems import LocalFileSystem
from prefect.serializers import Serializer
from prefect.tasks import Task, exponential_backoff
from pydantic import Field

from ratchet.attempt import EarlierAttempt, PipelineRun, TrainingOutcome
from ratchet.config import OrchestrationSettings
from ratchet.errors import is_retryable_io
from ratchet.intake import Arrival, DriftVerdict, TrainingDecision, ValidationVerdict
from ratchet.locking import machine_training_slot
from ratchet.paths import ProjectPaths

log = logging.getLogger("ratchet")

SERIALIZER_TYPE = "ratchet-json"
TRAINING_LEASE_S = 60.0  # a killed worker's training slot is free again at most this long after
# The only classes a persisted result can decode into.
STEP_TYPES = {cls.__name__: cls for cls in (Arrival, ValidationVerdict, DriftVerdict, TrainingDecision, PipelineRun,
                                            TrainingOutcome, EarlierAttempt)}


class UnsafeResult(ValueError):
    """A persisted result that ratchet did not write (another serializer, or an unknown type)."""


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and type(value).__name__ in STEP_TYPES:
        return {"__step__": type(value).__name__,
                "data": {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, BaseException):  # a failed task's state: kept as text, never re-raised by type
        return {"__error__": type(value).__name__, "message": str(value)}
    raise TypeError(f"a ratchet task returned {type(value).__name__}, which its JSON results cannot hold")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__step__" in value:
            cls = STEP_TYPES.get(value["__step__"])
            if cls is None:
                raise UnsafeResult(f"persisted result names an unknown type {value['__step__']!r}")
            return cls(**{k: _decode(v) for k, v in value["data"].items()})
        if "__error__" in value:
            return RuntimeError(f"{value['__error__']}: {value['message']}")
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class StepJSONSerializer(Serializer):
    """JSON for ratchet's step results: plain values and the step dataclasses, nothing else."""

    type: Literal["ratchet-json"] = Field(default=SERIALIZER_TYPE, frozen=True)

    def dumps(self, obj: Any) -> bytes:
        return json.dumps(_encode(obj), sort_keys=True).encode()

    def loads(self, blob: bytes) -> Any:
        return _decode(json.loads(blob.decode()))


class StepResultStorage(LocalFileSystem):
    """A local result store that hands back only records written by StepJSONSerializer."""

    _block_type_name = "ratchet step results"

    @staticmethod
    def _only_ours(content: bytes, path: str) -> bytes:
        try:
            serializer = json.loads(content)["metadata"]["serializer"]["type"]
        except (ValueError, KeyError, TypeError):
            raise UnsafeResult(f"result record {path} is not a ratchet result record; refusing to read it") from None
        if serializer != SERIALIZER_TYPE:
            raise UnsafeResult(f"result record {path} was written with serializer {serializer!r}, not "
                               f"{SERIALIZER_TYPE!r}; refusing to deserialize it")
        return content

    async def aread_path(self, path: str) -> bytes:
        return self._only_ours(await super().aread_path(path), path)

    def read_path(self, path: str, _sync: bool | None = None) -> bytes:  # type: ignore[override]
        # Prefect calls the sync form with _sync=True (prefect/_internal/compatibility/blocks.py)
        return self._only_ours(self._resolve_path(path).read_bytes(), path)


class RootFlowRun(CachePolicy):
    """Key on the root flow run: its retries reuse finished tasks, subflows included."""

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs) -> str | None:
        if not task_ctx:
            return None
        from prefect.runtime import flow_run

        return str(flow_run.root_flow_run_id or task_ctx.task_run.flow_run_id or task_ctx.task_run.id)


RESUMABLE = INPUTS + TASK_SOURCE + RootFlowRun()


def transient(task: Task, task_run, state) -> bool:
    """Retry only failures of the network or of storage: a bug or bad data fails at once."""
    try:
        state.result()
    except Exception as error:  # noqa: BLE001 - classified by ratchet.errors
        if is_retryable_io(error):
            log.warning("%s: transient failure, retrying: %s", task.name, error)
            return True
        return False
    return False


def result_storage(project: str) -> StepResultStorage:
    """The project's result store, saved as a block (Prefect wants task result storage server-side)."""
    import hashlib

    results = ProjectPaths.at(project).prefect_results
    storage = StepResultStorage(basepath=str(results))
    storage.save(f"ratchet-results-{hashlib.sha256(str(results).encode()).hexdigest()[:16]}", overwrite=True)
    return storage


def prune_results(project: str, max_age_days: float = 30.0) -> int:
    """Delete persisted step results older than `max_age_days` (no one resumes a month-old run)."""
    import time

    results = ProjectPaths.at(project).prefect_results
    if not results.is_dir():
        return 0
    cutoff = time.time() - max_age_days * 86400
    old = [p for p in results.iterdir() if p.is_file() and p.stat().st_mtime < cutoff]
    for path in old:
        path.unlink(missing_ok=True)
    return len(old)


def step_options(storage: StepResultStorage, io: OrchestrationSettings | None = None, resumable: bool = True) -> dict:
    """Options for a task: JSON results in `storage`, resumable within a root flow run
    (`resumable=False` for idempotent steps that must run on every call, such as `dvc push` or
    reconciling the ledger); with `io`, retries with backoff on transient errors."""
    options: dict = {"persist_result": True, "cache_policy": RESUMABLE if resumable else NO_CACHE,
                     "result_serializer": StepJSONSerializer(), "result_storage": storage}
    if io is not None and io.io_retries:
        options |= {"retries": io.io_retries, "retry_condition_fn": transient,
                    "retry_delay_seconds": exponential_backoff(backoff_factor=io.io_retry_delay_s),
                    "retry_jitter_factor": 0.2}
    return options


def training_slot(settings: OrchestrationSettings):
    """One training at a time. Trainings on a work pool (`train_pool`: workers on several machines,
    a real Prefect server) take one slot of Prefect's global concurrency limit `training_limit`
    (created with one slot if missing), on a lease the server expires `TRAINING_LEASE_S` after a
    killed worker stops renewing it. Inline trainings (the embedded server, which dies with the
    run and would keep a killed run's slot forever) take this machine's training slot: a file lock
    the kernel releases the moment its holder dies."""
    if not settings.train_pool:
        return machine_training_slot(settings.training_limit)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    limit_name = settings.training_limit
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(limit_name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=limit_name, limit=1))
            except ObjectAlreadyExists:
                pass
    # A training outlives many leases: a failed renewal (the API briefly away) must not kill it.
    return concurrency(limit_name, occupy=1, strict=True, lease_duration=TRAINING_LEASE_S,
                       raise_on_lease_renewal_failure=False)


def run_training_deployment(project: str, pool: str) -> str:
    """Run ratchet-train on `pool` (e.g. a GPU worker) and wait; returns its final state's name.

    The ledger, not this state, is the record of what happened to the batches.
    """
    from prefect.deployments import run_deployment

    flow_run = run_deployment(name="ratchet-train/ratchet-train", parameters={"project": project},
                              timeout=None, tags=["ratchet", f"pool:{pool}"])
    state = flow_run.state
    if state is None or not state.is_completed():
        raise RuntimeError(f"ratchet-train on pool {pool!r} ended {state.name if state else 'without a state'} "
                           f"(flow run {flow_run.id}); the batches stay pending and the next watch run retrains them")
    return state.name


def project_dir(project: str) -> str:
    return str(Path(project).resolve())
