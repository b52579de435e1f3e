"""The drift signals, one statistic each, computed with Evidently's own functions.

The Evidently report (report.py) runs the same statistics for the reviewer; the calibration
(calibration.py) calls these functions directly on same-distribution draws, which is much cheaper
than building a report per draw. tests/unit/test_drift_signals.py checks both give the same score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

Kind = Literal["surface", "labels", "model", "performance"]
Statistic = Literal["auc", "p_value", "distance", "accuracy_drop"]

# Severity of each kind when its signal fires: a surface change the model does not see matters
# less than a change in the model's own representation, and a measured accuracy drop matters most.
SEVERITY_OF_KIND: dict[Kind, str] = {"surface": "low", "labels": "medium", "model": "medium", "performance": "high"}


@dataclass(frozen=True)
class SignalSpec:
    key: str          # stable id, used in JSON and thresholds
    title: str        # what a reviewer reads
    column: str       # the column in the compared datasets ("" when not a column)
    kind: Kind
    statistic: Statistic

    def fires(self, score: float, threshold: float) -> bool:
        if math.isnan(score):
            return False
        return score < threshold if self.statistic == "p_value" else score > threshold


TEXT_CONTENT = SignalSpec("text_content", "text content (domain classifier ROC AUC)", "text", "surface", "auc")
DESCRIPTOR_SIGNALS = (
    SignalSpec("length_chars", "text length (KS p-value)", "length_chars", "surface", "p_value"),
    SignalSpec("oov_share", "out-of-vocabulary share (KS p-value)", "oov_share", "surface", "p_value"),
    SignalSpec("non_letter_share", "non-letter share (KS p-value)", "non_letter_share", "surface", "p_value"),
)
LABELS = SignalSpec("label", "label distribution (chi-square p-value)", "label", "labels", "p_value")
EMBEDDINGS = SignalSpec("embeddings", "champion embeddings (distance between means)", "", "model", "distance")
PREDICTIONS = SignalSpec("prediction", "champion predictions (chi-square p-value)", "prediction", "model", "p_value")
ACCURACY = SignalSpec("accuracy", "champion accuracy on the batch (drop vs reference eval)", "", "performance",
                      "accuracy_drop")


def active_signals(with_model: bool) -> list[SignalSpec]:
    """Every signal that can be computed: the model-aware ones need a champion."""
    signals = [TEXT_CONTENT, *DESCRIPTOR_SIGNALS, LABELS]
    return signals + [EMBEDDINGS, PREDICTIONS, ACCURACY] if with_model else signals


# --- the statistics ------------------------------------------------------------------------------

def text_content_auc(reference: pd.Series, current: pd.Series) -> float:
    """ROC AUC of Evidently's TF-IDF domain classifier (trained on one half, scored on the other)."""
    from evidently.legacy.utils.data_drift_utils import calculate_text_drift_score

    try:
        score, _ = calculate_text_drift_score(reference.reset_index(drop=True), current.reset_index(drop=True),
                                              bootstrap=False)
    except ValueError:  # empty vocabulary after stop words, or one class missing from a half
        return float("nan")
    return float(score)


def auc_null_sd(n_reference: int, n_current: int) -> float:
    """Standard deviation of a held-out ROC AUC when the two samples do not differ (Mann-Whitney).

    Evidently scores the domain classifier on a random half of both samples; under no drift the
    held-out scores are independent of the labels, so the AUC is a scaled Mann-Whitney U statistic.
    """
    n1, n2 = max(n_reference / 2, 1.0), max(n_current / 2, 1.0)
    return math.sqrt((n1 + n2 + 1) / (12 * n1 * n2))


def ks_p_value(reference: pd.Series, current: pd.Series) -> float:
    from evidently.legacy.calculations.stattests import ks_stat_test
    from evidently.legacy.core import ColumnType

    return float(ks_stat_test(reference, current, ColumnType.Numerical, 0.05).drift_score)


def _two_sample_chi_square(reference: pd.Series, current: pd.Series, feature_type, threshold: float):
    """Chi-square test of homogeneity on the two samples' counts (values of either sample).

    Evidently's own "chisquare" takes the reference frequencies as exact expected counts, which
    ignores the reference's sampling noise: with a batch as large as the reference its false-alarm
    rate is several times the nominal one. This is registered with Evidently, so its report runs it.
    """
    keys = sorted(set(reference.dropna()) | set(current.dropna()), key=str)
    table = np.array([[int((reference == k).sum()) for k in keys], [int((current == k).sum()) for k in keys]])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        return float("nan"), False
    p_value = float(stats.chi2_contingency(table, correction=False).pvalue)
    return p_value, p_value < threshold


def _register_two_sample_chi_square() -> str:
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    name = "ratchet_two_sample_chisquare"
    register_stattest(StatTest(name=name, display_name="two-sample chi-square p_value",
                               allowed_feature_types=[ColumnType.Categorical]), default_impl=_two_sample_chi_square)
    return name


TWO_SAMPLE_CHI_SQUARE = _register_two_sample_chi_square()


def chi_square_p_value(reference: pd.Series, current: pd.Series) -> float:
    return _two_sample_chi_square(reference, current, None, 0.05)[0]


def embedding_distance(reference: np.ndarray, current: np.ndarray, metric: str) -> float:
    """Evidently's distance between the mean reference and mean current embedding."""
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import DistanceDriftMethod

    score, _, _ = DistanceDriftMethod(dist=metric, threshold=0.0)(pd.DataFrame(current), pd.DataFrame(reference))
    return float(score)


@dataclass(frozen=True)
class AccuracyComparison:
    batch_accuracy: float
    reference_accuracy: float
    drop: float
    p_value: float  # one-sided Fisher exact test: the batch is less accurate than the reference


def compare_accuracy(batch_correct: np.ndarray, reference_correct: np.ndarray) -> AccuracyComparison:
    bc, bn = int(batch_correct.sum()), len(batch_correct)
    rc, rn = int(reference_correct.sum()), len(reference_correct)
    if bn == 0 or rn == 0:
        return AccuracyComparison(float("nan"), float("nan"), float("nan"), float("nan"))
    _, p = stats.fisher_exact([[bc, bn - bc], [rc, rn - rc]], alternative="less")
    return AccuracyComparison(bc / bn, rc / rn, rc / rn - bc / bn, float(p))
