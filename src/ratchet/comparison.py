"""Candidate and champion on the same labeled examples: the numbers the gate reads.

Used by the evaluate stage (every candidate) and by `ratchet promote` (any registered version).
"""

from __future__ import annotations

import pandas as pd

from ratchet.evaluation import paired_counts, split_metrics
from ratchet.modeling import Classifier


def compare_on_splits(candidate: Classifier, champion: Classifier | None,
                      suite: list[tuple[str, str, pd.DataFrame]], batch_size: int) -> dict[str, dict]:
    """Per split (name, role, frame with id/text/label): metrics of each model and the paired counts."""
    splits = {}
    for name, role, frame in suite:
        texts, truth = frame["text"].tolist(), frame["label"].tolist()
        predictions = {"candidate": candidate.predict(texts, batch_size)}
        if champion is not None:
            predictions["champion"] = champion.predict(texts, batch_size)
        result = {"role": role, "n": len(frame), "champion": None, "paired": None}
        for model, predicted in predictions.items():
            result[model] = split_metrics(truth, predicted).to_dict()
        if champion is not None:
            result["paired"] = paired_counts(truth, predictions["champion"], predictions["candidate"])
        if role == "canary":
            result["candidate_misses"] = [
                {"id": str(i), "text": t[:120], "label": y, "predicted": p}
                for i, t, y, p in zip(frame["id"], texts, truth, predictions["candidate"]) if y != p]
        splits[name] = result
    return splits
