"""Stage train: fine-tune the champion (or the base model, for the first one) on the training mix."""

from __future__ import annotations

import logging
import shutil

import pandas as pd

from ratchet import atomic, modeling
from ratchet.stages._common import start
from ratchet.training.loop import fit

log = logging.getLogger("ratchet")


def main() -> None:
    paths, settings = start("train")
    plan = atomic.read_json(paths.plan)
    mix = pd.read_parquet(paths.training_mix)
    labels = list(settings.data.labels)
    start_from = paths.champion if plan["champion"] else None
    log.info("train: %s fine-tuning from %s", settings.model.finetune,
             f"champion v{plan['champion']['version']}" if start_from else f"base model {settings.model.base}")
    model = modeling.build_trainable(settings.model, labels, settings.train.seed, start_from)
    model.to(modeling.pick_device())
    tokenizer = modeling.load_tokenizer(settings.model)
    label_index = {label: i for i, label in enumerate(labels)}
    report = fit(model, tokenizer, mix["text"].tolist(), [label_index[v] for v in mix["label"]],
                 settings.train, settings.model.max_length)
    if paths.candidate.exists():
        shutil.rmtree(paths.candidate)
    modeling.save_model(model, paths.candidate, settings.model, labels, extra={
        "parent_version": plan["champion"]["version"] if plan["champion"] else None,
        "trained_batches": plan["new_batches"],
    })
    atomic.write_json(paths.train_metrics, {
        "examples": report.examples, "epochs": report.epochs, "steps": report.steps,
        "examples_processed": report.examples_processed, "n_new": plan["n_new"], "n_replay": plan["n_replay"],
        "final_loss": round(report.final_loss, 6),
    })


if __name__ == "__main__":
    main()
