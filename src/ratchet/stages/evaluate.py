"""Stage evaluate: candidate and champion on every eval split -> metrics/eval.json and plot CSVs,
from the predictions the train stage wrote: no model is loaded here (token classification:
ratchet.stages.evaluate_sentences)."""

from __future__ import annotations

import csv
import io
import logging

from ratchet import atomic, eval_suite, predictions, records, store
from ratchet.comparison import Evaluation, compare_predictions, summarize
from ratchet.config import Settings
from ratchet.paths import ProjectPaths
from ratchet.plots import accuracy_heatmap
from ratchet.records import TOKEN_CLASSIFICATION
from ratchet.stages._common import start

log = logging.getLogger("ratchet")


def main() -> None:
    paths, settings = start("evaluate")
    if settings.task == TOKEN_CLASSIFICATION:
        from ratchet.stages import evaluate_sentences

        write_plots(paths, evaluate_sentences.run(paths), "entity F1")
        return
    write_plots(paths, _evaluate_texts(paths, settings), "accuracy")


def _evaluate_texts(paths: ProjectPaths, settings: Settings) -> Evaluation:
    """Scores the predictions the train stage wrote (no model is loaded here)."""
    plan = atomic.read_json(paths.plan)
    manifest = store.champion_manifest(paths) if plan["champion"] else None
    suite = eval_suite.text_splits(paths)
    said = predictions.read(paths, suite, with_champion=manifest is not None)
    evaluation = summarize(compare_predictions(suite, said), manifest, 1.0 / len(settings.data.labels))
    splits = evaluation.report.splits
    for name, result in splits.items():
        log.info("evaluate: %s (%s, n=%d): candidate %.3f%s", name, result.role, result.n,
                 result.candidate.accuracy, f", champion {result.champion.accuracy:.3f}" if result.champion else "")
    records.write(paths.eval_metrics, evaluation.report)
    return evaluation


def write_plots(paths: ProjectPaths, evaluation: Evaluation, metric: str) -> None:
    """Per-split bars, the accuracy matrix R[step][split] and the summary per increment (dvc plots);
    the column is called accuracy whatever `metric` (entity F1 in a token project) it holds."""
    splits = evaluation.report.splits
    rows = [{"split": name, "model": role, "accuracy": round(scores.accuracy, 6)}
            for name, s in splits.items() for role, scores in (("champion", s.champion), ("candidate", s.candidate))
            if scores]
    _write_csv(paths.split_accuracy_plot, ["split", "model", "accuracy"], rows)
    steps, matrix = evaluation.history_models, evaluation.matrix
    _write_csv(paths.accuracy_matrix, ["step", "model", "split", "accuracy"],
               [{"step": i, "model": steps[i], "split": split, "accuracy": round(acc, 6)}
                for i, row in enumerate(matrix) for split, acc in row.items()])
    _write_csv(paths.increments_plot, ["step", "model", "average_accuracy", "bwt", "fwt"], evaluation.increments)
    accuracy_heatmap(steps, list(matrix[-1]), matrix, f"{metric} matrix R[step][split]", paths.accuracy_heatmap)


def _write_csv(path, fields: list[str], rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buffer.getvalue())


if __name__ == "__main__":
    main()
