"""Stage evaluate: candidate and champion on every eval split -> metrics/eval.json and plot CSVs."""

from __future__ import annotations

import csv
import io
import logging

import pandas as pd

from ratchet import atomic, modeling, store
from ratchet.evaluation import average_accuracy, split_metrics
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

    splits = {}
    for split in plan["eval_splits"]:
        frame = pd.read_parquet(paths.eval_suite / f"{split['name']}.parquet")
        texts, truth = frame["text"].tolist(), frame["label"].tolist()
        result = {"role": split["role"], "n": len(frame), "champion": None}
        for role, classifier in models.items():
            result[role] = split_metrics(truth, classifier.predict(texts, settings.evaluate.batch_size)).to_dict()
        splits[split["name"]] = result
        log.info("evaluate: %s (%s, n=%d): candidate %.3f%s", split["name"], split["role"], len(frame),
                 result["candidate"]["accuracy"],
                 f", champion {result['champion']['accuracy']:.3f}" if result["champion"] else "")

    candidate_row = {name: s["candidate"]["accuracy"] for name, s in splits.items()}
    history = list(champion.get("history", [])) if champion else []
    atomic.write_json(paths.eval_metrics, {
        "champion_version": plan["champion"]["version"] if plan["champion"] else None,
        "candidate": {"average_accuracy": round(average_accuracy(candidate_row), 6)},
        "splits": splits,
    })

    # Per-split bars (dvc plots) and the accuracy matrix R[step][split] including this candidate.
    rows = [{"split": name, "model": role, "accuracy": round(s[role]["accuracy"], 6)}
            for name, s in splits.items() for role in ("champion", "candidate") if s.get(role)]
    _write_csv(paths.split_accuracy_plot, ["split", "model", "accuracy"], rows)
    matrix = [{"step": step, "model": h["model"], "split": split, "accuracy": acc}
              for step, h in enumerate(history) for split, acc in h["accuracy"].items()]
    matrix += [{"step": len(history), "model": "candidate", "split": split, "accuracy": round(acc, 6)}
               for split, acc in candidate_row.items()]
    _write_csv(paths.accuracy_matrix, ["step", "model", "split", "accuracy"], matrix)


def _write_csv(path, fields: list[str], rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buffer.getvalue())


if __name__ == "__main__":
    main()
