"""Stage train: continue the champion (or start from the base model) on one increment
(token classification: ratchet.stages.train_sentences)."""

from __future__ import annotations

import dataclasses
import logging
import shutil

import pandas as pd
import torch

from ratchet import atomic, eval_suite, faultpoints, modeling, predictions
from ratchet.continual.increment import learn_increment
from ratchet.continual.mix import IncrementData
from ratchet.records import TOKEN_CLASSIFICATION
from ratchet.stages._common import start
from ratchet.training import distributed

log = logging.getLogger("ratchet")


def main() -> None:
    paths, settings = start("train")
    if settings.task == TOKEN_CLASSIFICATION:
        from ratchet.stages import train_sentences

        faultpoints.reached("during_train")
        train_sentences.run(paths, settings)
        return
    processes = settings.train.processes
    if processes > 1 and not distributed.under_launcher():
        if torch.cuda.is_available() and processes > torch.cuda.device_count():
            raise SystemExit(f"train.processes is {processes} but this machine has "
                             f"{torch.cuda.device_count()} GPU(s): one worker per GPU")
        raise SystemExit(distributed.relaunch(processes, "ratchet.stages.train"))
    worker = distributed.this_worker()
    device = distributed.join_group() if distributed.under_launcher() else modeling.pick_device()
    if not worker.is_main:  # one voice in the log: the other workers only warn
        logging.getLogger("ratchet").setLevel(logging.WARNING)
    faultpoints.reached("during_train")
    try:
        _train(paths, settings, device, worker)
    finally:
        distributed.leave_group()
    if worker.is_main:
        _predict_eval_suite(paths, settings)


def _train(paths, settings, device: torch.device, worker: distributed.Worker) -> None:
    plan = atomic.read_json(paths.plan)
    mix = pd.read_parquet(paths.training_mix)
    labels = list(settings.data.labels)
    start_from = paths.champion if plan["champion"] else None
    log.info("train: %s fine-tuning from %s", settings.model.finetune,
             f"champion v{plan['champion']['version']}" if start_from else f"base model {settings.model.base}")
    if start_from and (warning := settings.lora_tuned_retention_warning()):
        log.warning("train: %s", warning)
    model = modeling.build_trainable(settings.model, labels, settings.train.seed, start_from)
    model.to(device)
    tokenizer = modeling.load_tokenizer(settings.model)
    data = IncrementData(mix=mix, old_validation=pd.read_parquet(paths.old_validation),
                         known_labels=plan["known_labels"] if start_from else [])
    report, _ = learn_increment(model, tokenizer, data, labels, settings.continual, settings.train,
                                settings.model.max_length, show_progress=worker.is_main)
    if not worker.is_main:  # every worker holds the same model: the first one writes it
        return
    if paths.candidate.exists():
        shutil.rmtree(paths.candidate)
    modeling.save_model(model, paths.candidate, settings.model, labels,
                        parent_version=plan["champion"]["version"] if plan["champion"] else None,
                        trained_batches=plan["new_batches"])
    atomic.write_json(paths.train_metrics, {
        "examples": report.training.examples, "epochs": report.training.epochs, "steps": report.training.steps,
        "examples_processed": report.examples_processed, "n_new": plan["n_new"], "n_replay": plan["n_replay"],
        "replay_ratio": plan["replay_ratio"], "final_loss": round(report.training.final_loss, 6),
        "stopped_early": report.stopped_early, "seconds": round(report.training.seconds, 2),
        "examples_per_second": round(report.training.examples_per_second, 2), "processes": worker.world_size,
        "old_accuracy_trace": [{"step": s, "accuracy": a} for s, a in report.old_accuracy_trace],
        # bias correction: new rows held out of training, and the offset fitted per new class
        "held_out_new": report.held_out_new,
        "bias_offsets": {k: round(v, 4) for k, v in (report.bias_offsets or {}).items()},
        # the plasticity guard: each new class's held-out recall without and with those steps
        "plasticity": [dataclasses.asdict(check) for check in report.plasticity],
    })


def _predict_eval_suite(paths, settings) -> None:
    """Candidate and champion, both as saved on disk (what would be registered, LoRA merged), on
    every eval split: the evaluate stage scores these without loading a model."""
    plan = atomic.read_json(paths.plan)
    labels = list(settings.data.labels)
    candidate = modeling.load_classifier(paths.candidate, settings.model, labels)
    champion = modeling.load_classifier(paths.champion, settings.model, labels) if plan["champion"] else None
    suite = eval_suite.text_splits(paths)
    predictions.write(paths, suite, predictions.predict_on_suite(candidate, champion, suite, "text",
                                                                 settings.evaluate.batch_size))


if __name__ == "__main__":
    main()
