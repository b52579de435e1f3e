"""Stage train, token classification: continue the champion tagger (or start one) on one increment.

Pseudo-labels, replay and distillation: ratchet.entities.increment. The candidate folder holds the
weights, the manifest (with the entity types learned so far) and the sentence memory the next
increment replays from (the champion's memory plus this batch's sentences as trained).
"""

from __future__ import annotations

import logging
import shutil

from ratchet import atomic, eval_suite, modeling, predictions, store
from ratchet.config import Settings
from ratchet.entities.increment import learn_entity_increment
from ratchet.entities.memory import MEMORY_FILE, SentenceMemory, memory_per_type
from ratchet.entities.tagger import load_tagger
from ratchet.entities.tags import tag_set
from ratchet.paths import ProjectPaths
from ratchet.records import TOKEN_CLASSIFICATION

log = logging.getLogger("ratchet")


def run(paths: ProjectPaths, settings: Settings) -> None:
    if settings.train.processes > 1:
        raise SystemExit("train.processes > 1 (DDP) is not built for token classification yet: set it to 1")
    plan = atomic.read_json(paths.plan)
    mix = store.read_rows(paths.training_mix)
    new, replayed = mix[mix["role"] == "new"], mix[mix["role"] == "replay"]
    tags = tag_set(list(settings.data.entity_types))
    start_from = paths.champion if plan["champion"] else None
    log.info("train: %s fine-tuning from %s on %d sentences + %d replayed", settings.model.finetune,
             f"champion v{plan['champion']['version']}" if start_from else f"base model {settings.model.base}",
             len(new), len(replayed))
    model = modeling.build_trainable(settings.model, tags, settings.train.seed, start_from, task=TOKEN_CLASSIFICATION)
    model.to(modeling.pick_device())
    tokenizer = modeling.load_tokenizer(settings.model)
    old_types, new_types = list(plan["known_labels"]), list(plan["new_types"])
    report, trained = learn_entity_increment(model, tokenizer, new.reset_index(drop=True),
                                             replayed.reset_index(drop=True), tags, old_types, new_types,
                                             settings.continual, settings.train, settings.model.max_length)
    if paths.candidate.exists():
        shutil.rmtree(paths.candidate)
    learned = sorted({*old_types, *plan["batch_types"]})
    modeling.save_model(model, paths.candidate, settings.model, tags,
                        parent_version=plan["champion"]["version"] if plan["champion"] else None,
                        trained_batches=plan["new_batches"], task=TOKEN_CLASSIFICATION, entity_types=learned)
    memory = SentenceMemory.load(paths.champion / MEMORY_FILE, memory_per_type(settings), settings.prepare.seed)
    memory.add(trained, plan["batch_types"])
    memory.save(paths.candidate / MEMORY_FILE)
    _write_metrics(paths, plan, report, learned)
    _predict_eval_suite(paths, settings, plan)


def _predict_eval_suite(paths: ProjectPaths, settings: Settings, plan: dict) -> None:
    """Both taggers, as saved on disk, on every eval split: the evaluate stage scores these."""
    candidate = load_tagger(paths.candidate, settings.model)
    champion = load_tagger(paths.champion, settings.model) if plan["champion"] else None
    suite = eval_suite.sentence_splits(paths)
    predictions.write(paths, suite, predictions.predict_on_suite(candidate, champion, suite, "tokens",
                                                                 settings.evaluate.batch_size))


def _write_metrics(paths: ProjectPaths, plan: dict, report, learned: list[str]) -> None:
    training = report.training
    atomic.write_json(paths.train_metrics, {
        "examples": training.examples, "epochs": training.epochs, "steps": training.steps,
        "examples_processed": report.examples_processed, "n_new": plan["n_new"], "n_replay": plan["n_replay"],
        "replay_ratio": plan["replay_ratio"], "final_loss": round(training.final_loss, 6),
        "seconds": round(training.seconds, 2), "examples_per_second": round(training.examples_per_second, 2),
        "pseudo_labels": {"words": report.pseudo_labels.words, "sentences": report.pseudo_labels.sentences,
                          "entities": report.pseudo_labels.entities},
        "distilled_words": report.distilled_words, "entity_types": learned,
    })
