"""Stage prepare, token classification: the batch's sentences, replayed sentences, the eval suite.

Replay reads the champion's sentence memory (ratchet.entities.increment.SentenceMemory, saved in
the champion's folder: the sentences as they were trained, pseudo-labels included): each old
entity type replays `continual.replay` ratio x the mean sentences per new type, at least
`min_per_old_class`. Each eval split records the entity types its batch tags: it is scored on those.
"""

from __future__ import annotations

import logging
import shutil

import pandas as pd

from ratchet import atomic, faultpoints, store
from ratchet.config import Settings
from ratchet.entities.memory import MEMORY_FILE, SentenceMemory, memory_per_type
from ratchet.paths import ProjectPaths

log = logging.getLogger("ratchet")


def run(paths: ProjectPaths, settings: Settings) -> None:
    catalog = store.read_catalog(paths)
    new = [e for e in catalog if e.status == "pending"]
    old = [e for e in catalog if e.status == "trained"]
    if not new:
        raise SystemExit(f"prepare: no pending batch in {paths.catalog}: nothing to train on")
    faultpoints.reached("prepare", [e.batch_id for e in new])

    champion = store.champion_manifest(paths)
    old_types = sorted(champion.entity_types) if champion else []
    batch_types = sorted({kind for e in new for kind in e.label_counts})
    new_types = [kind for kind in batch_types if kind not in old_types]
    new_rows = pd.concat([store.read_split(paths, e.batch_id, "train").assign(source_batch=e.batch_id) for e in new],
                         ignore_index=True)
    replay = settings.continual.replay
    per_type = replay.per_old_class(len(new_rows), max(1, len(new_types)), len(old_types)) if champion else 0
    memory = SentenceMemory.load(paths.champion / MEMORY_FILE, memory_per_type(settings), settings.prepare.seed)
    replayed = memory.sample(per_type, settings.prepare.seed) if per_type else new_rows.iloc[:0]
    mix = pd.concat([new_rows.assign(role="new"),
                     replayed[["id", "tokens", "tags"]].assign(source_batch="memory", role="replay")],
                    ignore_index=True)

    if paths.prepared.exists():
        shutil.rmtree(paths.prepared)
    atomic.write_parquet(paths.training_mix, mix)
    splits = []
    for role, entries in (("old", old), ("new", new)):
        for entry in entries:
            frame = store.read_split(paths, entry.batch_id, "eval")
            atomic.write_parquet(paths.eval_suite / f"{entry.batch_id}.parquet", frame)
            splits.append({"name": entry.batch_id, "role": role, "n": len(frame), "types": sorted(entry.label_counts)})
    atomic.write_json(paths.plan, {
        "new_batches": [e.batch_id for e in new],
        "old_batches": [e.batch_id for e in old],
        "champion": {"version": champion.version, "dir": "data/champion"} if champion else None,
        "known_labels": old_types,          # the entity types the champion learned
        "new_types": new_types,
        "batch_types": batch_types,
        "n_new": len(new_rows),
        "n_replay": len(replayed),
        "replay_ratio": round(len(replayed) / len(mix), 4) if len(mix) else 0.0,
        "replay_per_type": per_type,
        "eval_splits": splits,
    })
    log.info("prepare: %d new sentences from %s (types %s, new %s) + %d replayed (%d per old type of %s); "
             "%d eval split(s)", len(new_rows), [e.batch_id for e in new], batch_types, new_types, len(replayed),
             per_type, old_types, len(splits))
