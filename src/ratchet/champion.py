"""Champion moves: conclude an attempt (promote or reject), promote a version by hand, roll back.

Every move happens under the champion lock and keeps three things in step: the MLflow aliases,
data/champion/ (with its manifest and the replay buffer), and the batches' states. A hand
promotion is gated exactly like the pipeline's candidates: the same eval report
(ratchet.comparison.evaluate_candidate) through the same gate (ratchet.gate.decide).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ratchet import dvc_repo, faultpoints, model_files, records, registry, store
from ratchet.batch_state import BatchState, BatchStates
from ratchet.comparison import EvalSplit, evaluate_candidate
from ratchet.gate import decide
from ratchet.locking import champion_lock
from ratchet.paths import ProjectPaths
from ratchet.project import Project
from ratchet.records import (
    TOKEN_CLASSIFICATION,
    ChampionManifest,
    EvalReport,
    GateDecision,
    HistoryStep,
    PromotionRecord,
)

if TYPE_CHECKING:
    from ratchet.attempt import TrainingOutcome

# the states a batch concludes from (promoted or rejected)
OPEN_STATES = (BatchState.ACCEPTED, BatchState.ACCUMULATED, BatchState.RECEIVED)


@dataclass(frozen=True)
class ChampionMove:
    """A hand promotion or a rollback: from which version to which, and what it undid."""

    from_version: str | None
    to_version: str
    batches_undone: list[str]
    forced: bool = False
    gate: GateDecision | None = None


class PromotionRefused(RuntimeError):
    def __init__(self, version: str, gate: GateDecision) -> None:
        super().__init__(f"the gate refuses v{version}: {gate.summary} (use --force to promote anyway; "
                         "that is recorded)")
        self.gate = gate


def next_manifest(paths: ProjectPaths, evaluation: EvalReport, version: str, run_id: str,
                  batch_ids: list[str]) -> ChampionManifest:
    """data/champion/ratchet_model.json for a candidate: everything it learned, and the accuracy history."""
    old = store.champion_manifest(paths)
    step = HistoryStep(
        model=f"v{version}",
        accuracy={n: round(s.candidate.accuracy, 6) for n, s in evaluation.splits.items() if s.role != "canary"},
        # the old champion on the splits this step learned: forward transfer needs it
        before={n: round(s.champion.accuracy, 6) for n, s in evaluation.splits.items()
                if s.role == "new" and s.champion})
    candidate = model_files.read_manifest(paths.candidate)
    return ChampionManifest(**candidate.model_dump(exclude={"trained_batches"}), version=version, run_id=run_id,
                            trained_batches=(old.trained_batches if old else []) + list(batch_ids),
                            history=(list(old.history) if old else []) + [step])


def _batch_metrics(outcome: "TrainingOutcome", batch_id: str) -> dict[str, float]:
    keys = {f"candidate_accuracy.{batch_id}": "new_split_accuracy",
            f"champion_accuracy.{batch_id}": "champion_new_split_accuracy",
            "candidate_average_accuracy": "average_accuracy"}
    return {short: round(outcome.metrics[key], 4) for key, short in keys.items() if key in outcome.metrics}


def conclude(project: Project, outcome: "TrainingOutcome") -> "TrainingOutcome":
    """Promote (alias + data/champion/) or reject; every arrival of the trained batches ends
    promoted or rejected with the gate's checks."""
    paths, settings = project.paths, project.settings
    gate_checks = [c.model_dump() for c in records.read(paths.gate_result, GateDecision).checks]
    states = BatchStates(paths)
    if outcome.passed:
        evaluation = records.read(paths.eval_metrics, EvalReport)
        manifest = next_manifest(paths, evaluation, outcome.version, outcome.run_id, outcome.batch_ids)
        with champion_lock(paths):
            # if the alias moved since the gate ran, nothing below happens (checked again on the move)
            registry.require_champion(paths, settings, evaluation.champion_version, outcome.version)
            record = PromotionRecord(
                version=outcome.version, run_id=outcome.run_id, expected_champion=evaluation.champion_version,
                batch_ids=outcome.batch_ids, reason=f"v{outcome.version} is champion: {outcome.reason}",
                alias_reason=outcome.reason, manifest=manifest,
                metrics_by_batch={b: _batch_metrics(outcome, b) for b in outcome.batch_ids},
                details=_close_details(outcome, gate_checks))
            # the intent first: from here on, a run killed half way is completed by the next one
            records.write(paths.promotion_record, record)
            faultpoints.reached("during_promotion")
            _complete_promotion(project, record, paths.candidate, paths.next_replay_buffer)
        return outcome
    reason = f"gate rejected v{outcome.version}: {outcome.reason}"
    if outcome.earlier_attempts:
        tried = "; ".join(f"attempt {a.attempt + 1} (v{a.version}): {a.reason}" for a in outcome.earlier_attempts)
        last = outcome.retries[-1].replace("_", " ") if outcome.retries else "changed retention"
        reason = (f"gate rejected all {len(outcome.earlier_attempts) + 1} attempts, the last with {last} "
                  f"(v{outcome.version}): {outcome.reason}; earlier: {tried}")
    _close(states, outcome, BatchState.REJECTED, reason, gate_checks)
    dvc_repo.add(paths.root)
    return outcome


def _close_details(outcome: "TrainingOutcome", gate_checks: list[dict]) -> dict:
    return {"version": outcome.version, "run_id": outcome.run_id, "gate_checks": gate_checks,
            "attempt": outcome.attempt, "earlier_attempts": [vars(a) for a in outcome.earlier_attempts]}


def _close(states: BatchStates, outcome: "TrainingOutcome", state: BatchState, reason: str,
           gate_checks: list[dict]) -> None:
    details = _close_details(outcome, gate_checks)
    states.move_batches(outcome.batch_ids, state, reason, from_states=OPEN_STATES,
                        update=lambda event: (_batch_metrics(outcome, event.batch_id), details))


def _rebuild_replay_buffer(project: Project, learned: list[str]) -> None:
    """data/replay/ as a champion that learned `learned` has it. A tagger has none: its sentence
    memory travels in its model folder (ratchet.entities.memory)."""
    paths, settings = project.paths, project.settings
    if settings.task != TOKEN_CLASSIFICATION:
        store.build_replay_buffer(paths, settings.continual.replay, learned, seed=settings.prepare.seed).save(
            paths.replay_buffer)


def _complete_promotion(project: Project, record: PromotionRecord, model_dir: Path | None,
                        next_buffer: Path | None) -> None:
    """Make data/champion, the replay buffer, the aliases and the batch states all say
    `record.version`, each step skipped when done already (so a half-done promotion is completed
    by calling this again), then remove the record. Under the champion lock."""
    paths, settings = project.paths, project.settings
    installed = store.champion_manifest(paths)
    if installed is None or installed.version != record.version or installed.run_id != record.run_id:
        if model_dir is not None and model_dir.is_dir():
            store.install_champion(paths, model_dir, record.manifest)
        else:   # the candidate folder is gone (a later run): the registry holds the same model
            with tempfile.TemporaryDirectory() as scratch:
                downloaded, _ = registry.download_champion(paths, settings, record.version, Path(scratch))
                store.install_champion(paths, downloaded, record.manifest)
    if next_buffer is not None and next_buffer.exists():
        store.install_replay_buffer(paths, next_buffer)
    else:
        _rebuild_replay_buffer(project, record.manifest.trained_batches)
    if registry.champion_version(paths, settings) != record.version:
        registry.promote(paths, settings, record.version, reason=record.alias_reason, run_id=record.run_id,
                         expected_champion=record.expected_champion)
    # the batches are promoted only once the alias has moved (a refused move leaves them open)
    BatchStates(paths).move_batches(
        record.batch_ids, BatchState.PROMOTED, record.reason, from_states=OPEN_STATES,
        update=lambda event: (record.metrics_by_batch.get(event.batch_id, {}), dict(record.details)))
    dvc_repo.add(paths.root)
    paths.promotion_record.unlink(missing_ok=True)


def finish_promotion(project: Project) -> str | None:
    """Complete the promotion a killed run left half done (promotion-in-progress.json); returns
    what was done, or None when no promotion was in progress."""
    paths = project.paths
    record = records.read_optional(paths.promotion_record, PromotionRecord)
    if record is None:
        return None
    with champion_lock(paths):
        try:
            _complete_promotion(project, record, None, None)
        except registry.ChampionMoved as moved:
            # someone moved the alias since: that move stands; these batches are trained again
            paths.promotion_record.unlink(missing_ok=True)
            aligned = align_with_alias(project)
            return f"v{record.version}: an interrupted promotion was abandoned ({moved}); {aligned or ''}"
    return f"v{record.version}: a promotion interrupted half way was completed (alias, data/champion, batches)"


def align_with_alias(project: Project) -> str | None:
    """With no promotion in progress, data/champion must hold the `champion` alias's version; a
    hand promotion or rollback killed between its two moves leaves data/champion ahead: it is put
    back to the alias's version (the alias is the record of a hand move). Returns what was done."""
    paths, settings = project.paths, project.settings
    installed = store.champion_manifest(paths)
    if installed is None:
        return None
    with champion_lock(paths):
        alias = registry.champion_version(paths, settings)
        if alias is None or alias == installed.version:
            return None
        with tempfile.TemporaryDirectory() as scratch:
            model_dir, manifest = registry.download_champion(paths, settings, alias, Path(scratch))
            _install_version(project, model_dir, manifest,
                             why=f"data/champion held v{installed.version} but the champion alias v{alias} "
                                 "(a champion move interrupted half way): back to the alias")
    return f"data/champion: v{installed.version} -> v{alias}, the champion alias's version"


def rollback(project: Project, reason: str) -> ChampionMove:
    """Put the `previous` version back as champion: data/champion/, aliases, catalog and ledger.

    Batches that only the rolled-back champion had learned are marked rejected (kept in data/,
    never replayed or evaluated again) and their arrivals record why.
    """
    paths, settings = project.paths, project.settings
    with champion_lock(paths):
        current, previous = registry.champion_version(paths, settings), registry.previous_version(paths, settings)
        if current is None or previous is None:
            raise RuntimeError("nothing to roll back to: the registry has no `previous` version")
        with tempfile.TemporaryDirectory() as scratch:
            model_dir, manifest = registry.download_champion(paths, settings, previous, Path(scratch))
            undone = _install_version(project, model_dir, manifest,
                                      why=f"rolled back from v{current} to v{previous}: {reason}")
        registry.roll_back_aliases(paths, settings, current, previous, reason)
    return ChampionMove(from_version=current, to_version=previous, batches_undone=undone)


def promote_version(project: Project, version: str, reason: str, force: bool = False) -> ChampionMove:
    """Make a registered version the champion by hand: gated against the current champion unless forced.

    Under the champion lock: the version's model and manifest come from the registry, the gate runs
    on the eval splits of every batch the version learned (old = the current champion learned it
    too, new = it did not) plus the canary set, and only then data/, the catalog, the replay
    buffer, the ledger and the aliases move. A forced promotion says so in the alias history.
    """
    paths, settings = project.paths, project.settings
    version = str(version)
    with champion_lock(paths):
        current = registry.champion_version(paths, settings)
        if current == version:
            raise RuntimeError(f"v{version} is already the champion")
        with tempfile.TemporaryDirectory() as scratch:
            model_dir, manifest = registry.download_champion(paths, settings, version, Path(scratch))
            gate = gate_version(project, model_dir, manifest)
            if not gate.passed and not force:
                raise PromotionRefused(version, gate)
            verdict = "gate passed" if gate.passed else f"FORCED past the gate ({gate.summary})"
            why = f"promoted by hand, {verdict}: {reason}"
            undone = _install_version(project, model_dir, manifest, why=why)
        registry.promote(paths, settings, version, reason=why, expected_champion=current)
        if force:
            registry.tag_version(paths, settings, version, "ratchet.forced", reason)
    return ChampionMove(from_version=current, to_version=version, batches_undone=undone,
                        forced=force and not gate.passed, gate=gate)


def gate_version(project: Project, model_dir: Path, manifest: ChampionManifest) -> GateDecision:
    """The gate's decision on a saved model against data/champion, on the eval splits of every
    batch the model learned (and the canary set): the pipeline's evaluate + gate, in one call."""
    paths, settings = project.paths, project.settings
    champion_manifest = store.champion_manifest(paths)
    known = set(champion_manifest.trained_batches) if champion_manifest else set()
    roles = {b: "old" if b in known else "new" for b in manifest.trained_batches}
    if settings.task == TOKEN_CLASSIFICATION:
        evaluation = _evaluate_tagger(project, model_dir, champion_manifest, roles)
    else:
        # torch, imported here: of the flow process, only a hand promotion loads models
        from ratchet import modeling

        labels = list(settings.data.labels)
        candidate = modeling.load_classifier(model_dir, settings.model, labels)
        champion = modeling.load_classifier(paths.champion, settings.model, labels) if champion_manifest else None
        suite = [EvalSplit(b, role, store.read_split(paths, b, "eval")) for b, role in roles.items()]
        if paths.canary.exists():
            suite.append(EvalSplit("canary", "canary", store.read_canary(paths)))
        evaluation = evaluate_candidate(candidate, champion, champion_manifest, suite, len(labels),
                                        settings.evaluate.batch_size)
    return decide(evaluation.report, settings.gate)


def _evaluate_tagger(project: Project, model_dir: Path, champion_manifest: ChampionManifest | None,
                     roles: dict[str, str]):
    from ratchet.entities.comparison import SentenceSplit, evaluate_tagger
    from ratchet.entities.tagger import load_tagger

    paths, settings = project.paths, project.settings
    types = {e.batch_id: sorted(e.label_counts) for e in store.read_catalog(paths)}
    suite = [SentenceSplit(b, role, store.read_split(paths, b, "eval"), types.get(b, [])) for b, role in roles.items()]
    champion = load_tagger(paths.champion, settings.model) if champion_manifest else None
    return evaluate_tagger(load_tagger(model_dir, settings.model), champion, champion_manifest, suite,
                           settings.evaluate.batch_size)


def _install_version(project: Project, model_dir: Path, manifest: ChampionManifest, why: str) -> list[str]:
    """data/champion/, batch states (and so the catalog), replay buffer follow a version; returns
    the batches undone."""
    paths = project.paths
    current = store.champion_manifest(paths)
    learned = list(manifest.trained_batches)
    store.install_champion(paths, model_dir, manifest)
    undone = [b for b in (current.trained_batches if current else []) if b not in learned]
    regained = [e.batch_id for e in store.read_catalog(paths) if e.batch_id in learned and e.status != "trained"]
    states = BatchStates(paths)
    states.move_batches(undone, BatchState.REJECTED, why, from_states=[BatchState.PROMOTED])
    states.move_batches(regained, BatchState.PROMOTED, why,
                        from_states=[BatchState.REJECTED, BatchState.ACCEPTED, BatchState.ACCUMULATED])
    _rebuild_replay_buffer(project, learned)
    dvc_repo.add(paths.root)
    return undone
