"""Stage evaluate: candidate and champion on every eval split -> metrics/eval.json and plot CSVs."""

from __future__ import annotations

import csv
import io
import logging

import pandas as pd

from ratchet import atomic, modeling, store
from ratchet.comparison import compare_on_splits
from ratchet.evaluation import average_accuracy, matrix_summary
from ratchet.plots import accuracy_heatmap
from ratchet.stages._common import start

log = logging.getLogger("ratchet")


def main() -> None:
    paths, settings = start("evaluate")
    plan = atomic.read_json(paths.plan)
    labels = list(settings.data.labels)
    models = {"candidate": modeling.load_classifier(paths.candidate, settings.model, labels)}
    champion = store.champion_manifest(paths)
    if plan["champion"]:
        models["champion"] = modeling.load_classifier(paths.champion, settings.model, labels)

    suite = [(s["name"], s["role"], pd.read_parquet(paths.eval_suite / f"{s['name']}.parquet"))
             for s in plan["eval_splits"]]
    if paths.prepared_canary.exists():  # must-pass examples shipped with the project's data
        suite.append(("canary", "canary", pd.read_parquet(paths.prepared_canary)))
    splits = compare_on_splits(models["candidate"], models.get("champion"), suite, settings.evaluate.batch_size)
    for name, result in splits.items():
        log.info("evaluate: %s (%s, n=%d): candidate %.3f%s", name, result["role"], result["n"],
                 result["candidate"]["accuracy"],
                 f", champion {result['champion']['accuracy']:.3f}" if result["champion"] else "")

    candidate_row = {name: s["candidate"]["accuracy"] for name, s in splits.items() if s["role"] != "canary"}
    history = list(champion.get("history", [])) if champion else []
    increments = _increments(history, candidate_row, splits, labels)
    atomic.write_json(paths.eval_metrics, {
        "champion_version": plan["champion"]["version"] if plan["champion"] else None,
        "candidate": {"average_accuracy": round(average_accuracy(candidate_row), 6),
                      "bwt": increments[-1]["bwt"], "fwt": increments[-1]["fwt"]},
        "splits": splits,
    })

    # Per-split bars, the accuracy matrix R[step][split] and the summary per increment (dvc plots).
    rows = [{"split": name, "model": role, "accuracy": round(s[role]["accuracy"], 6)}
            for name, s in splits.items() for role in ("champion", "candidate") if s.get(role)]
    _write_csv(paths.split_accuracy_plot, ["split", "model", "accuracy"], rows)
    steps = [h["model"] for h in history] + ["candidate"]
    matrix = [h["accuracy"] for h in history] + [candidate_row]
    _write_csv(paths.accuracy_matrix, ["step", "model", "split", "accuracy"],
               [{"step": i, "model": steps[i], "split": split, "accuracy": round(acc, 6)}
                for i, row in enumerate(matrix) for split, acc in row.items()])
    _write_csv(paths.increments_plot, ["step", "model", "average_accuracy", "bwt", "fwt"], increments)
    accuracy_heatmap(steps, list(candidate_row), matrix, "accuracy matrix R[step][split]", paths.accuracy_heatmap)


def _increments(history: list[dict], candidate_row: dict[str, float], splits: dict, labels: list[str]) -> list[dict]:
    """Average accuracy, BWT and FWT after each promoted step and for this candidate.

    A split is learned at the first step whose row has it. FWT compares the champion's accuracy on a
    split just before learning it (kept in the history as `before`) with chance level.
    """
    before_now = {name: s["champion"]["accuracy"] for name, s in splits.items()
                  if s["role"] == "new" and s.get("champion")}
    rows = [h["accuracy"] for h in history] + [candidate_row]
    befores = [h.get("before", {}) for h in history] + [before_now]
    learned_at: dict[str, int] = {}
    out = []
    for step, row in enumerate(rows):
        for split in row:
            learned_at.setdefault(split, step)
        # R[step-1] extended with the accuracy before learning, on the splits learned at `step`
        matrix = [dict(r) for r in rows[:step + 1]]
        if step >= 1:
            matrix[step - 1].update(befores[step])
        chance = {split: 1.0 / len(labels) for split in learned_at}
        summary = matrix_summary(matrix, learned_at, chance)
        out.append({"step": step, "model": history[step]["model"] if step < len(history) else "candidate",
                    **{k: (round(v, 6) if v is not None else None) for k, v in summary.items()}})
    return out


def _write_csv(path, fields: list[str], rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buffer.getvalue())


if __name__ == "__main__":
    main()
