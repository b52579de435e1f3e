"""Stage evaluate, token classification: candidate and champion taggers on every eval split, in entity F1."""

from __future__ import annotations

import logging

from ratchet import atomic, records, store
from ratchet.config import Settings
from ratchet.entities.comparison import SentenceSplit, evaluate_tagger
from ratchet.entities.tagger import load_tagger
from ratchet.paths import ProjectPaths

log = logging.getLogger("ratchet")


def run(paths: ProjectPaths, settings: Settings):
    """Writes metrics/eval.json; returns the Evaluation (the stage draws its plots)."""
    plan = atomic.read_json(paths.plan)
    candidate = load_tagger(paths.candidate, settings.model)
    manifest = store.champion_manifest(paths) if plan["champion"] else None
    champion = load_tagger(paths.champion, settings.model) if manifest else None
    suite = [SentenceSplit(s["name"], s["role"], store.read_rows(paths.eval_suite / f"{s['name']}.parquet"), s["types"])
             for s in plan["eval_splits"]]
    evaluation = evaluate_tagger(candidate, champion, manifest, suite, settings.evaluate.batch_size)
    for name, result in evaluation.report.splits.items():
        log.info("evaluate: %s (%s, %d sentences): candidate entity F1 %.3f%s", name, result.role, result.n,
                 result.candidate.accuracy, f", champion {result.champion.accuracy:.3f}" if result.champion else "")
    records.write(paths.eval_metrics, evaluation.report)
    return evaluation
