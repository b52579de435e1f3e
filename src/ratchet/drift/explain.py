"""What changed, in words a reviewer reads: typical words of the batch and examples of its rows."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from ratchet.drift.descriptors import words

STOP_WORDS = frozenset(
    "a an and are as at be been but by for from had has have he her his i in is it its of on or our she so "
    "that the their them they this to was we were which who will with you your not no than then there these "
    "those into about after also can could would should more most other some such only over said".split())


def typical_words(batch: pd.Series, reference: pd.Series, top: int = 12) -> dict[str, list[dict]]:
    """Words over- and under-represented in the batch: weighted log-odds with an informative
    Dirichlet prior (Monroe, Colaresi & Quinn 2008), so rare words do not dominate."""
    count_b = Counter(w for t in batch for w in words(t) if w not in STOP_WORDS and len(w) > 2)
    count_r = Counter(w for t in reference for w in words(t) if w not in STOP_WORDS and len(w) > 2)
    prior = count_b + count_r
    if not prior:
        return {"batch": [], "reference": []}
    n_b, n_r, a0 = sum(count_b.values()), sum(count_r.values()), sum(prior.values())
    rows = []
    for word, a in prior.items():
        yb, yr = count_b[word], count_r[word]
        delta = (np.log((yb + a) / (n_b + a0 - yb - a)) - np.log((yr + a) / (n_r + a0 - yr - a)))
        variance = 1.0 / (yb + a) + 1.0 / (yr + a)
        rows.append((word, float(delta / np.sqrt(variance)), yb, yr))
    rows.sort(key=lambda r: r[1], reverse=True)

    def as_dicts(selected) -> list[dict]:
        return [{"word": w, "z": round(z, 2), "batch_count": yb, "reference_count": yr} for w, z, yb, yr in selected]

    return {"batch": as_dicts([r for r in rows[:top] if r[1] > 1.96]),
            "reference": as_dicts([r for r in rows[::-1][:top] if r[1] < -1.96])}


def _snippet(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def unusual_rows(batch_texts: pd.Series, batch_embeddings: np.ndarray | None, reference_embeddings: np.ndarray | None,
                 oov_share: pd.Series, limit: int) -> list[dict]:
    """The batch rows least like the reference: farthest (cosine) from their nearest reference row
    in the champion's embedding space, or, without a champion, with the most unknown words."""
    if limit <= 0 or batch_texts.empty:
        return []
    if batch_embeddings is not None and reference_embeddings is not None and len(reference_embeddings):
        def unit(m: np.ndarray) -> np.ndarray:
            return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)

        nearest = np.zeros(len(batch_embeddings))
        ref = unit(reference_embeddings)
        for start in range(0, len(batch_embeddings), 1024):  # bounded memory on big batches
            block = unit(batch_embeddings[start:start + 1024]) @ ref.T
            nearest[start:start + 1024] = block.max(axis=1)
        distance, how = 1.0 - nearest, "cosine distance to the nearest reference row"
    else:
        distance, how = oov_share.to_numpy(), "share of words no reference row has"
    order = np.argsort(-distance)[:limit]
    return [{"text": _snippet(batch_texts.iloc[i]), "score": round(float(distance[i]), 3), "measure": how}
            for i in order]


def misclassified(batch: pd.DataFrame, predictions: pd.Series | None, limit: int) -> list[dict]:
    """Rows the champion gets wrong, the most frequent confusions first."""
    if predictions is None or limit <= 0:
        return []
    wrong = batch.assign(prediction=predictions.to_numpy())
    wrong = wrong[wrong["prediction"] != wrong["label"]]
    if wrong.empty:
        return []
    pair_count = wrong.groupby(["label", "prediction"])["text"].transform("size")
    wrong = wrong.assign(_n=pair_count).sort_values("_n", ascending=False, kind="stable").head(limit)
    return [{"text": _snippet(r.text), "label": r.label, "prediction": r.prediction} for r in wrong.itertuples()]
