"""Replay: a class-balanced sample of earlier accepted training data mixed into each new training set."""

from __future__ import annotations

import pandas as pd


def class_balanced_sample(pool: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Up to `n` rows of `pool`, spread as evenly as possible over its labels.

    A label with fewer rows than its share gives all it has; the rest is shared among the others.
    Deterministic for a given pool, n and seed.
    """
    if n <= 0 or pool.empty:
        return pool.iloc[:0]
    groups = {label: g.sample(frac=1.0, random_state=seed) for label, g in pool.groupby("label", sort=True)}
    quota = {label: 0 for label in groups}
    remaining = min(n, len(pool))
    while remaining > 0:
        open_labels = [label for label in groups if quota[label] < len(groups[label])]
        share, extra = divmod(remaining, len(open_labels))
        for position, label in enumerate(open_labels):
            take = min(share + (1 if position < extra else 0), len(groups[label]) - quota[label])
            quota[label] += take
            remaining -= take
    picked = [groups[label].iloc[:quota[label]] for label in groups]
    return pd.concat(picked).reset_index(drop=True)


def replay_size(new_label_counts: dict[str, int], old_labels: set[str], per_old_class: float) -> int:
    """How many old examples to replay: each old class gets `per_old_class` times the new data's
    mean examples per class, so a one-topic batch does not outweigh every topic learned before."""
    if not new_label_counts or not old_labels:
        return 0
    mean_per_new_class = sum(new_label_counts.values()) / len(new_label_counts)
    return int(round(per_old_class * mean_per_new_class * len(old_labels)))
