"""Metrics of a classifier on labeled splits, and the accuracy matrix across increments.

Pure functions: predictions in, numbers out. The evaluate stage feeds them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SplitMetrics:
    n: int
    accuracy: float
    macro_f1: float
    per_class_recall: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def split_metrics(truth: list[str], predicted: list[str]) -> SplitMetrics:
    """Accuracy, macro-F1 over the classes present in `truth`, and recall per true class."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} labels but {len(predicted)} predictions")
    if not truth:
        return SplitMetrics(n=0, accuracy=0.0, macro_f1=0.0, per_class_recall={})
    correct = sum(t == p for t, p in zip(truth, predicted))
    recall, f1 = {}, []
    for label in sorted(set(truth)):
        true_positive = sum(t == label and p == label for t, p in zip(truth, predicted))
        actual = sum(t == label for t in truth)
        claimed = sum(p == label for p in predicted)
        r = true_positive / actual
        precision = true_positive / claimed if claimed else 0.0
        recall[label] = r
        f1.append(2 * precision * r / (precision + r) if precision + r else 0.0)
    return SplitMetrics(n=len(truth), accuracy=correct / len(truth), macro_f1=sum(f1) / len(f1),
                        per_class_recall=recall)


def average_accuracy(row: dict[str, float]) -> float:
    """Mean accuracy over the tasks (eval splits) a model has seen so far."""
    return sum(row.values()) / len(row) if row else 0.0


def backward_transfer(matrix: list[dict[str, float]], task_order: list[str]) -> float | None:
    """BWT (Lopez-Paz & Ranzato, 2017): mean over earlier tasks j of R[T-1][j] - R[j][j].

    `matrix[i]` maps task name -> accuracy after step i; task j was learned at step j.
    None when there is no earlier task to compare.
    """
    if len(matrix) < 2:
        return None
    last = matrix[-1]
    diffs = [last[task] - matrix[j][task] for j, task in enumerate(task_order[:len(matrix) - 1])
             if task in last and task in matrix[j]]
    return sum(diffs) / len(diffs) if diffs else None
