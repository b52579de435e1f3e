"""Stage prepare: the training mix (new data + class-balanced replay) and the eval suite (every split)."""

from __future__ import annotations

import logging
import shutil

import pandas as pd

from ratchet import atomic, store
from ratchet.stages._common import start
from ratchet.training.replay import class_balanced_sample, replay_size

log = logging.getLogger("ratchet")


def main() -> None:
    paths, settings = start("prepare")
    catalog = store.read_catalog(paths)
    new = [e.batch_id for e in catalog if e.status == "pending"]
    old = [e.batch_id for e in catalog if e.status == "trained"]
    if not new:
        raise SystemExit(f"prepare: no pending batch in {paths.catalog}: nothing to train on")

    new_rows = pd.concat([store.read_split(paths, b, "train").assign(source_batch=b) for b in new],
                         ignore_index=True)
    old_pool = (pd.concat([store.read_split(paths, b, "train").assign(source_batch=b) for b in old],
                          ignore_index=True) if old else new_rows.iloc[:0])
    budget = replay_size(new_rows["label"].value_counts().to_dict(), set(old_pool["label"]),
                         settings.prepare.replay_per_old_class)
    replay = class_balanced_sample(old_pool, budget, seed=settings.prepare.seed)
    mix = pd.concat([new_rows.assign(replayed=False), replay.assign(replayed=True)], ignore_index=True)
    mix = mix.sample(frac=1.0, random_state=settings.prepare.seed).reset_index(drop=True)

    if paths.prepared.exists():
        shutil.rmtree(paths.prepared)
    atomic.write_parquet(paths.training_mix, mix)
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
        "champion": {"version": champion["version"], "dir": "data/champion"} if champion else None,
        "n_new": len(new_rows),
        "n_replay": len(replay),
        "replay_ratio": round(len(replay) / len(mix), 4) if len(mix) else 0.0,
        "replay_by_label": {str(k): int(v) for k, v in replay["label"].value_counts().sort_index().items()},
        "eval_splits": splits,
    })
    log.info("prepare: %d new examples from %s + %d replayed from %d earlier batch(es); %d eval split(s)",
             len(new_rows), new, len(replay), len(old), len(splits))


if __name__ == "__main__":
    main()
