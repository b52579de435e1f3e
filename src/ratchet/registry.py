"""MLflow adapter: one run per batch attempt, registered versions, the `champion` alias, lineage tags.

Tracking defaults to sqlite under the project (mlflow.db, artifacts in mlartifacts/); set
MLFLOW_TRACKING_URI to use a tracking server. Only this module (and pyfunc_model.py, the served
model's code) import mlflow.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ratchet import records
from ratchet.config import Settings
from ratchet.mlflow_relocation import follow_moved_project
from ratchet.paths import ProjectPaths
from ratchet.records import ChampionManifest

log = logging.getLogger("ratchet")

CHAMPION, PREVIOUS = "champion", "previous"
SERVING_REQUIREMENTS = ["torch==2.13.0", "transformers==5.23.0", "peft==0.21.2", "mlflow==3.17.2",
                        "pandas<3", "safetensors"]


@dataclass(frozen=True)
class DatasetInput:
    """A dataset used by an attempt, logged with `mlflow.log_input` and its DVC md5 as digest."""

    name: str
    frame: pd.DataFrame
    md5: str
    source: str
    context: str  # "training" or "evaluation"


@dataclass(frozen=True)
class Attempt:
    """What an attempt logs: everything is plain values and paths."""

    run_name: str
    batch_ids: list[str]
    params: dict[str, object]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifacts: list[Path]
    inputs: list[DatasetInput] = field(default_factory=list)
    key: str = ""  # idempotency key: logging the same attempt again returns the first record


KEY_TAG = "ratchet.idempotency_key"


@dataclass(frozen=True)
class AttemptRecord:
    run_id: str
    version: str


def tracking_uri(paths: ProjectPaths) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{paths.mlflow_db}"


def _connect(paths: ProjectPaths, settings: Settings):
    import mlflow

    user_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if user_uri is None:
        follow_moved_project(paths.mlflow_db, paths.root)
    uri = tracking_uri(paths)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if user_uri is None:
        # set_tracking_uri exports MLFLOW_TRACKING_URI; undo it so the project's own store is not
        # mistaken for a user's server (or reused for another project in the same process).
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    experiment = mlflow.get_experiment_by_name(settings.project.experiment)
    if experiment is None:
        location = None if user_uri else paths.mlflow_artifacts.as_uri()
        mlflow.create_experiment(settings.project.experiment, artifact_location=location)
    mlflow.set_experiment(settings.project.experiment)
    return mlflow


def log_attempt(paths: ProjectPaths, settings: Settings, attempt: Attempt, candidate_dir: Path) -> AttemptRecord:
    """Log one training attempt as a run and register its candidate as a new model version.

    Safe to retry (a tracking server that failed mid-way): with `attempt.key`, an earlier run of the
    same key that got its model version is returned as is; one that did not is marked FAILED.
    """
    mlflow = _connect(paths, settings)
    from ratchet import pyfunc_model

    if attempt.key:
        done = _finished_attempt(mlflow.MlflowClient(), settings, attempt.key)
        if done is not None:
            log.info("registry: attempt %s was logged already (run %s, v%s)", attempt.key, done.run_id, done.version)
            _tag_version(mlflow.MlflowClient(), settings, done.version, attempt)
            return done
    tags = {**attempt.tags, **({KEY_TAG: attempt.key} if attempt.key else {})}
    with warnings.catch_warnings(), mlflow.start_run(run_name=attempt.run_name, tags=tags) as run:
        # MLflow warns that a local path could be two kinds of dataset source, and that the pyfunc
        # has no type hints (ratchet validates inputs itself); neither needs the user's attention.
        warnings.filterwarnings("ignore", message=".*dataset source can be interpreted.*")
        warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")
        mlflow.set_tag("ratchet.batches", ",".join(attempt.batch_ids))
        mlflow.log_params({k: str(v)[:500] for k, v in attempt.params.items()})
        mlflow.log_metrics(attempt.metrics)
        for artifact in attempt.artifacts:
            if artifact.exists():
                # evidence/<folder>/<file>: drift/ and validation/ both hold <batch_id>.json
                mlflow.log_artifact(str(artifact), artifact_path=f"evidence/{artifact.parent.name}")
        for item in attempt.inputs:
            dataset = mlflow.data.from_pandas(item.frame, source=item.source, name=item.name, digest=item.md5,
                                              targets="label" if "label" in item.frame.columns else None)
            mlflow.log_input(dataset, context=item.context)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=pyfunc_model.__file__, artifacts={"model": str(candidate_dir)},
            pip_requirements=SERVING_REQUIREMENTS, registered_model_name=settings.project.registered_model)
    version = str(info.registered_model_version)
    _tag_version(mlflow.MlflowClient(), settings, version, attempt)
    log.info("registry: run %s logged, candidate registered as %s v%s", run.info.run_id,
             settings.project.registered_model, version)
    return AttemptRecord(run_id=run.info.run_id, version=version)


def _tag_version(client, settings: Settings, version: str, attempt: Attempt) -> None:
    for key, value in {**attempt.tags, "ratchet.batches": ",".join(attempt.batch_ids)}.items():
        client.set_model_version_tag(settings.project.registered_model, version, key, value)


def _completed_run(client, settings: Settings, key: str, complete=lambda run: True):
    """The finished run logged under idempotency `key` that `complete` accepts; any other run of
    that key was cut off half way (a lost connection, a killed worker) and is marked FAILED."""
    experiment = client.get_experiment_by_name(settings.project.experiment)
    for run in client.search_runs([experiment.experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'"):
        if run.info.status == "FINISHED" and complete(run):
            return run
        if run.info.status != "FAILED":
            client.set_terminated(run.info.run_id, status="FAILED")
    return None


def _finished_attempt(client, settings: Settings, key: str) -> AttemptRecord | None:
    """An attempt counts as logged once its run finished and its model version exists."""
    def versions(run):
        return client.search_model_versions(f"run_id = '{run.info.run_id}'")

    run = _completed_run(client, settings, key, complete=lambda r: bool(versions(r)))
    return None if run is None else AttemptRecord(run_id=run.info.run_id, version=str(versions(run)[0].version))


def log_drift(paths: ProjectPaths, settings: Settings, result, key: str = "") -> str:
    """One MLflow run per drift check (tag ratchet.kind=drift): every signal's score, the verdict,
    and the reviewer's report, whether or not the batch is ever trained on.

    With `key`, a retry after a finished run of the same key returns that run's id.
    """
    import math

    mlflow = _connect(paths, settings)
    if key:
        done = _completed_run(mlflow.MlflowClient(), settings, key)
        if done is not None:
            return done.info.run_id
    with mlflow.start_run(run_name=f"drift {result.batch_id}", tags={KEY_TAG: key} if key else None) as run:
        mlflow.set_tags({"ratchet.kind": "drift", "ratchet.batch": result.batch_id,
                         "ratchet.drift.severity": result.severity,
                         "ratchet.drift.reasons": "; ".join(result.reasons)[:5000] or "none"})
        metrics = {f"drift.{s.key}": s.score for s in result.signals}
        metrics |= {f"drift.{s.key}.threshold": s.threshold for s in result.signals}
        metrics |= {f"drift.{s.key}.fired": float(s.fired) for s in result.signals}
        metrics |= {f"champion.{k}": v for k, v in result.champion.items() if isinstance(v, (int, float))}
        metrics["drift.false_alarm_estimate"] = result.calibration.get("false_alarm_rate", float("nan"))
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if not math.isnan(float(v))})
        mlflow.log_params({"rows": result.rows, "reference_rows": result.reference_rows})
        for path in (Path(result.html_path), Path(result.json_path)):
            if path.exists():
                mlflow.log_artifact(str(path), artifact_path="drift")
    return run.info.run_id


def champion_version(paths: ProjectPaths, settings: Settings) -> str | None:
    mlflow = _connect(paths, settings)
    return _alias_version(mlflow.MlflowClient(), settings.project.registered_model, CHAMPION)


HISTORY_TAG_PREFIX = "ratchet.alias_event."


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias: MLflow keeps only where an alias points now, ratchet keeps how it got there."""

    at: str
    alias: str
    from_version: str | None
    to_version: str
    reason: str
    actor: str
    run_id: str | None = None


def _record_alias_event(client, name: str, event: AliasEvent) -> None:
    """Append-only: each event is its own registered-model tag with the next sequence number."""
    import json
    from dataclasses import asdict

    tags = client.get_registered_model(name).tags or {}
    number = 1 + max((int(k.removeprefix(HISTORY_TAG_PREFIX)) for k in tags if k.startswith(HISTORY_TAG_PREFIX)),
                     default=0)
    client.set_registered_model_tag(name, f"{HISTORY_TAG_PREFIX}{number:06d}", json.dumps(asdict(event)))


def alias_history(paths: ProjectPaths, settings: Settings) -> list[AliasEvent]:
    """Every recorded alias move of the registered model, oldest first."""
    import json

    mlflow = _connect(paths, settings)
    try:
        tags = mlflow.MlflowClient().get_registered_model(settings.project.registered_model).tags or {}
    except mlflow.exceptions.MlflowException:
        return []
    return [AliasEvent(**json.loads(tags[k])) for k in sorted(tags) if k.startswith(HISTORY_TAG_PREFIX)]


def _actor() -> str:
    import getpass

    return os.environ.get("RATCHET_ACTOR") or f"{getpass.getuser()} (ratchet)"


class ChampionMoved(RuntimeError):
    """The champion is no longer the one a decision was made against."""


_ANY = object()


def require_champion(paths: ProjectPaths, settings: Settings, expected: str | None, candidate: str) -> None:
    """Raise ChampionMoved unless `champion` still points at `expected` (None: no champion yet)."""
    current = champion_version(paths, settings)
    if current != expected:
        raise ChampionMoved(f"the champion is {'v' + current if current else 'unset'}, but v{candidate} was "
                            f"judged against {'v' + str(expected) if expected else 'no champion'}; "
                            "nothing changed: run the gate again")


def promote(paths: ProjectPaths, settings: Settings, version: str, reason: str,
            run_id: str | None = None, expected_champion: str | None | object = _ANY) -> str | None:
    """Point `champion` at `version` (and `previous` at the old champion); returns the old one.

    Call it under ratchet.locking.champion_lock. `expected_champion` is the champion the gate
    compared against: if the alias moved since, nothing changes (aliases have no compare-and-set,
    so the check and the move happen under the lock). Each move is appended to the alias history,
    and `champion` is read back after setting it.
    """
    from datetime import datetime, timezone

    mlflow = _connect(paths, settings)
    client = mlflow.MlflowClient()
    name = settings.project.registered_model
    old = champion_version(paths, settings)
    if expected_champion is not _ANY:
        require_champion(paths, settings, expected_champion, version)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if old is not None and old != version:
        old_previous = _alias_version(client, name, PREVIOUS)
        client.set_registered_model_alias(name, PREVIOUS, old)
        _record_alias_event(client, name, AliasEvent(now, PREVIOUS, old_previous, old,
                                                     f"v{old} stepped down for v{version}", _actor(), run_id))
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "ratchet.promotion_reason", reason)
    current = champion_version(paths, settings)
    if current != version:
        raise RuntimeError(f"registry: alias {CHAMPION} reads back as v{current}, expected v{version}")
    _record_alias_event(client, name, AliasEvent(now, CHAMPION, old, version, reason, _actor(), run_id))
    log.info("registry: %s@%s -> v%s (was %s)", name, CHAMPION, version, f"v{old}" if old else "none")
    return old


def _alias_version(client, name: str, alias: str) -> str | None:
    import mlflow

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def lineage(paths: ProjectPaths, settings: Settings, version: str) -> list[dict]:
    """The chain from `version` back to the base model: each version's run and lineage tags."""
    mlflow = _connect(paths, settings)
    client = mlflow.MlflowClient()
    name = settings.project.registered_model
    chain, seen = [], set()
    current: str | None = str(version)
    while current and current != "base" and current not in seen:
        seen.add(current)
        try:
            model_version = client.get_model_version(name, current)
        except mlflow.exceptions.MlflowException:
            raise LookupError(f"{name} has no version {current}") from None
        tags = {k.removeprefix("ratchet."): v for k, v in (model_version.tags or {}).items()
                if k.startswith("ratchet.")}
        chain.append({"version": current, "run_id": model_version.run_id,
                      "aliases": list(model_version.aliases or []), **tags})
        current = tags.get("parent_version")
    return chain


CHAMPION_MANIFEST_ARTIFACT = "champion/ratchet_model.json"


def log_champion_manifest(paths: ProjectPaths, settings: Settings, run_id: str, manifest: ChampionManifest) -> None:
    """Keep the champion manifest (cumulative batches, accuracy history) with the run that made it."""
    mlflow = _connect(paths, settings)
    mlflow.MlflowClient().log_dict(run_id, manifest.model_dump(mode="json"), CHAMPION_MANIFEST_ARTIFACT)


def previous_version(paths: ProjectPaths, settings: Settings) -> str | None:
    mlflow = _connect(paths, settings)
    return _alias_version(mlflow.MlflowClient(), settings.project.registered_model, PREVIOUS)


def download_champion(paths: ProjectPaths, settings: Settings, version: str,
                      scratch: Path) -> tuple[Path, ChampionManifest]:
    """A registered version's model folder (safetensors + ratchet_model.json) and its champion manifest."""
    mlflow = _connect(paths, settings)
    client = mlflow.MlflowClient()
    model_version = client.get_model_version(settings.project.registered_model, version)
    local = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{settings.project.registered_model}/{version}", dst_path=str(scratch)))
    folders = [m.parent for m in local.rglob("ratchet_model.json")]
    if len(folders) != 1:
        raise RuntimeError(f"version {version} holds {len(folders)} ratchet model folders, expected one")
    source = f"runs:/{model_version.run_id}/{CHAMPION_MANIFEST_ARTIFACT}"
    return folders[0], records.parse(mlflow.artifacts.load_dict(source), ChampionManifest, source)


def roll_back_aliases(paths: ProjectPaths, settings: Settings, current: str, previous: str, reason: str) -> None:
    """champion -> previous; previous -> the champion before that one (from the history), or unset."""
    from datetime import datetime, timezone

    mlflow = _connect(paths, settings)
    client = mlflow.MlflowClient()
    name = settings.project.registered_model
    if champion_version(paths, settings) != current:
        raise RuntimeError(f"champion moved while rolling back (expected v{current}); nothing changed in the registry")
    earlier = [e.from_version for e in alias_history(paths, settings)
               if e.alias == CHAMPION and e.to_version == previous and e.from_version]
    now, why = datetime.now(timezone.utc).isoformat(timespec="seconds"), f"rollback: {reason}"
    client.set_registered_model_alias(name, CHAMPION, previous)
    if champion_version(paths, settings) != previous:
        raise RuntimeError(f"registry: alias {CHAMPION} did not read back as v{previous}")
    _record_alias_event(client, name, AliasEvent(now, CHAMPION, current, previous, why, _actor()))
    if earlier:
        client.set_registered_model_alias(name, PREVIOUS, earlier[-1])
        _record_alias_event(client, name, AliasEvent(now, PREVIOUS, previous, earlier[-1], why, _actor()))
    else:
        client.delete_registered_model_alias(name, PREVIOUS)
    client.set_model_version_tag(name, current, "ratchet.rolled_back", why)
    log.info("registry: %s@%s rolled back v%s -> v%s", name, CHAMPION, current, previous)


def tag_version(paths: ProjectPaths, settings: Settings, version: str, key: str, value: str) -> None:
    mlflow = _connect(paths, settings)
    mlflow.MlflowClient().set_model_version_tag(settings.project.registered_model, version, key, value)
