"""Stage prepare: the increment's rows (new data, replay, old validation), the eval suite, the next buffer
(token classification: ratchet.stages.prepare_sentences)."""

from __future__ import annotations

import logging
import shutil

import pandas as pd

from ratchet import atomic, faultpoints, store
from ratchet.config import Settings
from ratchet.continual.buffer import ReplayBuffer
from ratchet.continual.mix import compose_increment
from ratchet.paths import ProjectPaths
from ratchet.records import TOKEN_CLASSIFICATION
from ratchet.stages._common import start

log = logging.getLogger("ratchet")


def current_buffer(paths: ProjectPaths, settings: Settings, trained: list[str]) -> ReplayBuffer:
    """The champion's buffer; rebuilt from the trained batches when it is empty but should not be."""
    replay = settings.continual.replay
    buffer = ReplayBuffer.load(paths.replay_buffer, replay.selection, replay.buffer_size)
    if buffer.rows.empty and trained and replay.selection != "none":
        # a project that predates the buffer, or replay just switched on (by params or a retry)
        log.info("prepare: the replay buffer in %s is empty: rebuilding it from %d trained batch(es)",
                 paths.replay_buffer, len(trained))
        return store.build_replay_buffer(paths, replay, trained, seed=settings.prepare.seed)
    return buffer


def main() -> None:
    paths, settings = start("prepare")
    if settings.task == TOKEN_CLASSIFICATION:
        from ratchet.stages import prepare_sentences

        prepare_sentences.run(paths, settings)
        return
    catalog = store.read_catalog(paths)
    new = [e.batch_id for e in catalog if e.status == "pending"]
    old = [e.batch_id for e in catalog if e.status == "trained"]
    if not new:
        raise SystemExit(f"prepare: no pending batch in {paths.catalog}: nothing to train on")
    faultpoints.reached("prepare", new)

    new_rows = pd.concat([store.read_split(paths, b, "train").assign(source_batch=b) for b in new],
                         ignore_index=True)
    buffer = current_buffer(paths, settings, old)
    known_labels = sorted({label for e in catalog if e.status == "trained" for label in e.label_counts})
    increment = compose_increment(new_rows, buffer, settings.continual.replay, known_labels, settings.prepare.seed,
                                  settings.train)
    mix, replay, old_validation = increment.mix, increment.replay, increment.old_validation

    # The buffer as it will be once the candidate is promoted: the new batches offered to it.
    next_buffer = ReplayBuffer(selection=buffer.selection, budget=buffer.budget, rows=buffer.rows.copy(),
                               seen=buffer.seen, increments=buffer.increments)
    for batch_id in new:
        next_buffer.add(store.read_split(paths, batch_id, "train"), batch_id, seed=settings.prepare.seed)

    if paths.prepared.exists():
        shutil.rmtree(paths.prepared)
    atomic.write_parquet(paths.training_mix, mix)
    atomic.write_parquet(paths.old_validation, old_validation[["id", "text", "label", "batch_id"]])
    next_buffer.save(paths.next_replay_buffer)
    if paths.canary.exists():
        atomic.write_parquet(paths.prepared_canary, store.read_canary(paths))
    splits = []
    for role, batch_ids in (("old", old), ("new", new)):
        for batch_id in batch_ids:
            frame = store.read_split(paths, batch_id, "eval")
            atomic.write_parquet(paths.eval_suite / f"{batch_id}.parquet", frame)
            splits.append({"name": batch_id, "role": role, "n": len(frame)})
    champion = store.champion_manifest(paths)
    atomic.write_json(paths.plan, {
        "new_batches": new,
        "old_batches": old,
        "champion": {"version": champion.version, "dir": "data/champion"} if champion else None,
        # the classes the champion has learned: distillation keeps its answers on these
        "known_labels": known_labels,
        "n_new": len(new_rows),
        "n_replay": len(replay),
        "n_old_validation": len(old_validation),
        "replay_ratio": round(len(replay) / len(mix), 4) if len(mix) else 0.0,
        "replay_by_label": {str(k): int(v) for k, v in replay["label"].value_counts().sort_index().items()},
        "replay_by_batch": {str(k): int(v) for k, v in replay["source_batch"].value_counts().sort_index().items()},
        "buffer_size": len(buffer.rows),
        "eval_splits": splits,
    })
    log.info("prepare: %d new examples from %s + %d replayed (buffer of %d from %d batch(es)); "
             "%d old validation rows; %d eval split(s)", len(new_rows), new, len(replay), len(buffer.rows),
             len(old), len(old_validation), len(splits))


if __name__ == "__main__":
    main()
