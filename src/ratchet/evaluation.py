"""Metrics of a classifier on labeled splits, and the accuracy matrix across increments.

Pure functions: predictions in, numbers out. The evaluate stage feeds them.
"""

from __future__ import annotations

from ratchet.records import ClassScores, HistoryStep, ModelScores, PairCount, PairedCounts


def split_metrics(truth: list[str], predicted: list[str]) -> ModelScores:
    """Accuracy, macro-F1 over the classes present in `truth`, and recall per true class."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} labels but {len(predicted)} predictions")
    if not truth:
        return ModelScores(n=0, accuracy=0.0, macro_f1=0.0, per_class_recall={}, per_class={})
    correct = sum(t == p for t, p in zip(truth, predicted))
    per_class = {}
    for label in sorted(set(truth)):
        true_positive = sum(t == label and p == label for t, p in zip(truth, predicted))
        actual = sum(t == label for t in truth)
        claimed = sum(p == label for p in predicted)
        recall = true_positive / actual
        precision = true_positive / claimed if claimed else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = ClassScores(precision=precision, recall=recall, f1=f1, support=actual)
    return ModelScores(n=len(truth), accuracy=correct / len(truth),
                       macro_f1=sum(c.f1 for c in per_class.values()) / len(per_class),
                       per_class_recall={label: c.recall for label, c in per_class.items()},
                       per_class=per_class)


def paired_counts(truth: list[str], champion: list[str], candidate: list[str]) -> PairedCounts:
    """Counts of a paired comparison on the same examples, overall and per true class.

    `champion_only`: the champion is right and the candidate wrong (a negative flip, a regression);
    `candidate_only`: the reverse. McNemar's test needs only these two numbers.
    """
    def count(indices: list[int]) -> PairCount:
        return PairCount(n=len(indices),
                         champion_only=sum(champion[i] == truth[i] != candidate[i] for i in indices),
                         candidate_only=sum(candidate[i] == truth[i] != champion[i] for i in indices))

    everything = list(range(len(truth)))
    return PairedCounts(**count(everything).model_dump(),
                        per_class={label: count([i for i in everything if truth[i] == label])
                                   for label in sorted(set(truth))})


def average_accuracy(row: dict[str, float]) -> float:
    """Mean accuracy over the tasks (eval splits) a model has seen so far."""
    return sum(row.values()) / len(row) if row else 0.0


def backward_transfer(matrix: list[dict[str, float]], learned_at: dict[str, int]) -> float | None:
    """BWT (Lopez-Paz & Ranzato, 2017): mean over earlier tasks t of R[last][t] - R[learned_at[t]][t].

    `matrix[i]` maps task name -> accuracy after step i; `learned_at[t]` is the step that learned t
    (several tasks may share a step). None when no task was learned before the last step.
    """
    if len(matrix) < 2:
        return None
    last = matrix[-1]
    diffs = [last[t] - matrix[step][t] for t, step in learned_at.items()
             if step < len(matrix) - 1 and t in last and t in matrix[step]]
    return sum(diffs) / len(diffs) if diffs else None


def forward_transfer(matrix: list[dict[str, float]], learned_at: dict[str, int],
                     baseline: dict[str, float]) -> float | None:
    """FWT (Lopez-Paz & Ranzato, 2017): mean over tasks t learned at step s ≥ 1 of R[s-1][t] - b[t].

    R[s-1][t] is the accuracy on t of the model *before* it learned t; b[t] that of a model that never
    saw any task (the untrained model in the benchmark, chance level in the pipeline).
    """
    diffs = [matrix[step - 1][t] - baseline[t] for t, step in learned_at.items()
             if 1 <= step <= len(matrix) and t in matrix[step - 1] and t in baseline]
    return sum(diffs) / len(diffs) if diffs else None


def matrix_summary(matrix: list[dict[str, float]], learned_at: dict[str, int],
                   baseline: dict[str, float] | None = None) -> dict[str, float | None]:
    """Average accuracy over the tasks learned so far (after the last step), BWT and FWT."""
    last = matrix[-1] if matrix else {}
    learned = [t for t, step in learned_at.items() if step < len(matrix) and t in last]
    return {
        "average_accuracy": sum(last[t] for t in learned) / len(learned) if learned else None,
        "bwt": backward_transfer(matrix, learned_at),
        "fwt": forward_transfer(matrix, learned_at, baseline) if baseline else None,
    }


def increments(history: list[HistoryStep], candidate_row: dict[str, float], before_now: dict[str, float],
               chance_level: float) -> list[dict]:
    """Average accuracy, BWT and FWT after each promoted step and for the candidate (the last row).

    `history` is the champion's (its manifest's accuracy rows); `before_now` the champion's accuracy
    on the splits the candidate learns. A split is learned at the first step whose row has it. FWT
    compares the accuracy on a split just before learning it (kept in the history as `before`)
    with `chance_level` (1 / classes for a classifier; 0 for entity F1).
    """
    rows = [h.accuracy for h in history] + [candidate_row]
    befores = [h.before for h in history] + [before_now]
    learned_at: dict[str, int] = {}
    out = []
    for step, row in enumerate(rows):
        for split in row:
            learned_at.setdefault(split, step)
        # R[step-1] extended with the accuracy before learning, on the splits learned at `step`
        matrix = [dict(r) for r in rows[:step + 1]]
        if step >= 1:
            matrix[step - 1].update(befores[step])
        chance = {split: chance_level for split in learned_at}
        summary = matrix_summary(matrix, learned_at, chance)
        out.append({"step": step, "model": history[step].model if step < len(history) else "candidate",
                    **{k: (round(v, 6) if v is not None else None) for k, v in summary.items()}})
    return out
