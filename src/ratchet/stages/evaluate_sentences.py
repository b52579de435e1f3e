"""Stage evaluate, token classification: the candidate's and the champion's tags on every eval split
(written by the train stage), scored in entity F1."""

from __future__ import annotations

import logging

from ratchet import atomic, eval_suite, predictions, records, store
from ratchet.entities.comparison import compare_sentence_predictions, summarize_entities
from ratchet.paths import ProjectPaths

log = logging.getLogger("ratchet")


def run(paths: ProjectPaths):
    """Writes metrics/eval.json; returns the Evaluation (the stage draws its plots)."""
    plan = atomic.read_json(paths.plan)
    manifest = store.champion_manifest(paths) if plan["champion"] else None
    suite = eval_suite.sentence_splits(paths)
    said = predictions.read(paths, suite, with_champion=manifest is not None)
    evaluation = summarize_entities(compare_sentence_predictions(suite, said), manifest)
    for name, result in evaluation.report.splits.items():
        log.info("evaluate: %s (%s, %d sentences): candidate entity F1 %.3f%s", name, result.role, result.n,
                 result.candidate.accuracy, f", champion {result.champion.accuracy:.3f}" if result.champion else "")
    records.write(paths.eval_metrics, evaluation.report)
    return evaluation
