"""Thresholds with a false-alarm rate one can state, and the estimate that backs it.

Each batch runs up to eight signals. Bonferroni splits the allowed false-alarm rate among them:
p-value signals fire below alpha / k; the text-content ROC AUC fires above its exact no-drift
distribution (Mann-Whitney, so the threshold shrinks as batches grow, unlike Evidently's fixed
0.55); the embedding distance, which has no closed form, fires above a normal fit to distances
between same-distribution draws from the reference, rescaled to the compared sizes. Then
`calibration_draws` fresh same-distribution batches are drawn from the reference and every signal
is run on them with those thresholds: the share that raise any alarm is the recorded estimate.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ratchet.config import DriftSettings
from ratchet.drift import signals as sig

EMBEDDING_NULL_DRAWS = 200  # cheap: a mean over precomputed embeddings per draw
CALIBRATION_VERSION = 2  # bump when the calibration changes: cached calibrations are then redone


@dataclass
class Compared:
    """Rows the signals compare: texts, labels, descriptors and, with a champion, its view of them."""

    texts: pd.Series
    labels: pd.Series
    descriptors: pd.DataFrame
    embeddings: np.ndarray | None = None
    predictions: pd.Series | None = None
    correct: np.ndarray | None = None  # the champion got the row right (batch rows, reference eval rows)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def with_model(self) -> bool:
        return self.embeddings is not None

    def take(self, idx: np.ndarray) -> "Compared":
        def pick(series: pd.Series) -> pd.Series:
            return series.iloc[idx].reset_index(drop=True)

        return Compared(pick(self.texts), pick(self.labels), self.descriptors.iloc[idx].reset_index(drop=True),
                        None if self.embeddings is None else self.embeddings[idx],
                        None if self.predictions is None else pick(self.predictions),
                        None if self.correct is None else self.correct[idx])


@dataclass
class Thresholds:
    """Per-signal thresholds for one pair of sample sizes."""

    alpha_per_signal: float
    values: dict[str, float]


@dataclass
class Calibration:
    batch_size: int
    reference_rows: int
    false_alarm_target: float
    signals: list[str]
    alpha_per_signal: float
    thresholds: dict[str, float]
    embedding_null: dict = field(default_factory=dict)  # mean, sd, draws (at the draw sizes), scale
    draw_size: int = 0
    draws: int = 0
    false_alarms: int = 0
    false_alarm_rate: float = 0.0
    false_alarm_upper_95: float = 0.0  # Clopper-Pearson upper bound of the estimate
    fired_in_draws: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _z(alpha: float) -> float:
    return float(stats.norm.isf(alpha))


class ThresholdModel:
    """Thresholds as a function of the compared sizes (every threshold but the p-values depends on them)."""

    def __init__(self, settings: DriftSettings, specs: list[sig.SignalSpec], embedding_null: dict):
        self.settings = settings
        self.specs = specs
        self.alpha = settings.false_alarm_rate / len(specs)
        self.embedding_null = embedding_null

    def at(self, n_current: int, n_reference: int) -> Thresholds:
        values: dict[str, float] = {}
        z = _z(self.alpha)
        for spec in self.specs:
            if spec.statistic == "p_value":
                values[spec.key] = self.alpha
            elif spec.statistic == "auc":
                values[spec.key] = 0.5 + z * sig.auc_null_sd(n_reference, n_current)
            elif spec.statistic == "accuracy_drop":
                values[spec.key] = self.settings.max_accuracy_drop
            elif spec.statistic == "distance":
                null = self.embedding_null
                scale = _distance_scale(self.settings.embedding_distance, null["n_current"], null["n_reference"],
                                        n_current, n_reference)
                values[spec.key] = (null["mean"] + z * null["sd"]) * scale
        return Thresholds(self.alpha, values)


def _distance_scale(metric: str, n_cur0: int, n_ref0: int, n_cur: int, n_ref: int) -> float:
    """Under no drift the difference of two means has variance proportional to 1/n + 1/m: the
    euclidean distance scales with its square root, the cosine distance (about half a squared
    distance between nearby unit vectors) with it directly."""
    ratio = (1 / n_cur + 1 / n_ref) / (1 / n_cur0 + 1 / n_ref0)
    return ratio if metric == "cosine" else math.sqrt(ratio)


# --- scores --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Score:
    value: float
    p_value: float | None = None  # the accuracy signal carries its test's p-value beside the drop


def score_all(specs: list[sig.SignalSpec], reference: Compared, current: Compared,
              reference_correct: np.ndarray | None, settings: DriftSettings) -> dict[str, Score]:
    """Every signal's statistic for one comparison, straight from Evidently's functions."""
    scores: dict[str, Score] = {}
    for spec in specs:
        if spec.statistic == "auc":
            scores[spec.key] = Score(sig.text_content_auc(reference.texts, current.texts))
        elif spec.key == "label":
            scores[spec.key] = Score(sig.chi_square_p_value(reference.labels, current.labels))
        elif spec.key == "prediction":
            scores[spec.key] = Score(sig.chi_square_p_value(reference.predictions, current.predictions))
        elif spec.statistic == "p_value":
            scores[spec.key] = Score(sig.ks_p_value(reference.descriptors[spec.column],
                                                    current.descriptors[spec.column]))
        elif spec.statistic == "distance":
            scores[spec.key] = Score(sig.embedding_distance(reference.embeddings, current.embeddings,
                                                            settings.embedding_distance))
        elif spec.statistic == "accuracy_drop":
            comparison = sig.compare_accuracy(current.correct, reference_correct)
            scores[spec.key] = Score(comparison.drop, comparison.p_value)
    return scores


def fired(spec: sig.SignalSpec, score: Score, thresholds: Thresholds) -> bool:
    if spec.statistic == "accuracy_drop":  # a drop that is both large and beyond chance
        return (score.p_value is not None and score.p_value < thresholds.alpha_per_signal
                and score.value > thresholds.values[spec.key])
    return spec.fires(score.value, thresholds.values[spec.key])


# --- calibration ---------------------------------------------------------------------------------

def _split(rng: np.random.Generator, n: int, draw: int, max_reference: int) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    return order[:draw], order[draw:draw + max_reference]


def _embedding_null(reference: Compared, draw: int, settings: DriftSettings, rng: np.random.Generator) -> dict:
    distances = []
    rest_size = 0
    for _ in range(EMBEDDING_NULL_DRAWS):
        cur, ref = _split(rng, len(reference), draw, settings.max_reference_rows)
        rest_size = len(ref)
        distances.append(sig.embedding_distance(reference.embeddings[ref], reference.embeddings[cur],
                                                settings.embedding_distance))
    return {"mean": float(np.mean(distances)), "sd": float(np.std(distances, ddof=1)),
            "draws": EMBEDDING_NULL_DRAWS, "n_current": draw, "n_reference": rest_size}


def _clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    return 1.0 if k >= n else float(stats.beta.ppf(confidence, k + 1, n - k))


def calibrate(reference: Compared, reference_correct: np.ndarray | None, batch_size: int, n_reference: int,
              settings: DriftSettings, seed: int = 0) -> tuple[Calibration, ThresholdModel]:
    """Thresholds for a batch of `batch_size` rows against `n_reference` rows, and their estimated
    false-alarm rate on same-distribution draws from the reference."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    specs = sig.active_signals(reference.with_model and reference_correct is not None)
    # Same-distribution draws come out of the reference itself, so both sides must fit in it.
    draw = max(2, min(batch_size, len(reference) // 2))
    embedding_null = _embedding_null(reference, draw, settings, rng) if reference.with_model else {}
    model = ThresholdModel(settings, specs, embedding_null)

    alarms = 0
    fired_by_signal = {spec.key: 0 for spec in specs}
    for _ in range(settings.calibration_draws):
        cur_idx, ref_idx = _split(rng, len(reference), draw, settings.max_reference_rows)
        current = reference.take(cur_idx)
        if reference_correct is not None:  # the champion's hits on a same-distribution batch
            current.correct = rng.choice(reference_correct, size=draw, replace=True)
        thresholds = model.at(draw, len(ref_idx))
        scores = score_all(specs, reference.take(ref_idx), current, reference_correct, settings)
        fired_now = [spec.key for spec in specs if fired(spec, scores[spec.key], thresholds)]
        for key in fired_now:
            fired_by_signal[key] += 1
        alarms += bool(fired_now)

    thresholds = model.at(batch_size, n_reference)
    calibration = Calibration(
        batch_size=batch_size, reference_rows=n_reference, false_alarm_target=settings.false_alarm_rate,
        signals=[spec.key for spec in specs], alpha_per_signal=model.alpha, thresholds=thresholds.values,
        embedding_null=embedding_null, draw_size=draw, draws=settings.calibration_draws, false_alarms=alarms,
        false_alarm_rate=alarms / settings.calibration_draws,
        false_alarm_upper_95=_clopper_pearson_upper(alarms, settings.calibration_draws),
        fired_in_draws=fired_by_signal, seconds=round(time.perf_counter() - started, 2))
    return calibration, model
