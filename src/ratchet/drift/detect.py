"""Drift of one batch against the reference: every signal, a calibrated verdict, the reviewer's report."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from ratchet import atomic
from ratchet.config import DriftSettings
from ratchet.drift import signals as sig
from ratchet.drift.calibration import (
    CALIBRATION_VERSION,
    Calibration,
    Compared,
    ThresholdModel,
    calibrate,
    fired,
    score_all,
)
from ratchet.drift.descriptors import describe, document_frequency
from ratchet.drift.explain import misclassified, typical_words, unusual_rows

log = logging.getLogger("ratchet")

SEVERITIES = ("none", "low", "medium", "high")


class ChampionView(Protocol):
    """What drift needs from a model: its mean-pooled embeddings and its predicted labels."""

    labels: list[str]

    def embed_and_predict(self, texts: list[str]) -> tuple[np.ndarray, list[str]]: ...


@dataclass(frozen=True)
class SignalResult:
    key: str
    title: str
    kind: str
    statistic: str
    score: float
    threshold: float
    fired: bool
    p_value: float | None = None


@dataclass
class DriftResult:
    batch_id: str
    rows: int
    reference_rows: int
    severity: str                      # none | low | medium | high
    reasons: list[str]
    signals: list[SignalResult]
    new_labels: list[str] = field(default_factory=list)
    champion: dict = field(default_factory=dict)    # accuracy and macro-F1 on the batch and the reference eval
    calibration: dict = field(default_factory=dict)
    typical_words: dict = field(default_factory=dict)
    unusual_rows: list[dict] = field(default_factory=list)
    misclassified: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    html_path: str = ""
    json_path: str = ""
    source: str = ""                   # the file the batch came in (for people; ids are hashes)
    entities: dict = field(default_factory=dict)    # token batches: entity types, unseen types, champion F1

    @property
    def drifted(self) -> bool:
        return self.severity != "none"

    def to_dict(self) -> dict:
        return {**asdict(self), "drifted": self.drifted}


def severity_of(signals: list[SignalResult], new_labels: list[str]) -> str:
    """The worst kind among the signals that fired: surface < labels, model < performance, new labels."""
    levels = [sig.SEVERITY_OF_KIND[s.kind] for s in signals if s.fired]
    if new_labels:
        levels.append("high")
    return max(levels, key=SEVERITIES.index) if levels else "none"


def verdict(results: list[SignalResult], new_labels: list[str]) -> tuple[str, list[str]]:
    """Severity and the reasons for it, the most severe first."""
    reasons = [f"labels the champion never learned: {', '.join(new_labels)}"] if new_labels else []
    reasons += [_reason(r) for r in sorted(results, key=lambda r: -SEVERITIES.index(sig.SEVERITY_OF_KIND[r.kind]))
                if r.fired]
    return severity_of(results, new_labels), reasons


def _reason(result: SignalResult) -> str:
    if result.key == "accuracy":
        return (f"{result.title}: {result.score:.3f} lower than on the reference (allowed {result.threshold:.3f}, "
                f"Fisher p={result.p_value:.2g})")
    relation = "<" if result.statistic == "p_value" else ">"
    return f"{result.title}: {result.score:.3g} {relation} {result.threshold:.3g}"


# --- the compared rows -----------------------------------------------------------------------------

def _sample_reference(reference: pd.DataFrame, limit: int) -> pd.DataFrame:
    if len(reference) <= limit:
        return reference.reset_index(drop=True)
    return reference.sample(n=limit, random_state=0).sort_index().reset_index(drop=True)


def fingerprint(*parts: object) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _champion_outputs(champion: ChampionView, texts: pd.Series, cache: Path | None) -> tuple[np.ndarray, pd.Series]:
    """Embeddings and predictions; cached on disk when `cache` is given (the reference's, per champion)."""
    if cache is not None and cache.exists():
        stored = np.load(cache, allow_pickle=False)
        return stored["embeddings"], pd.Series(stored["predictions"].astype(str))
    embeddings, predictions = champion.embed_and_predict(texts.tolist())
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if cache is not None:
        buffer = io.BytesIO()
        np.savez(buffer, embeddings=embeddings, predictions=np.asarray(predictions, dtype=str))
        atomic.write_bytes(cache, buffer.getvalue())
    return embeddings, pd.Series(predictions, dtype=str)


def _macro_f1(labels: pd.Series, predictions: pd.Series) -> float:
    return float(f1_score(labels, predictions, average="macro", zero_division=0)) if len(labels) else float("nan")


@dataclass
class Comparison:
    """The reference and batch rows, described; with a champion, its view of both."""

    reference: Compared
    batch: Compared
    reference_correct: np.ndarray | None = None  # the champion's hits on the reference eval rows
    reference_is_eval: np.ndarray | None = None

    def champion_summary(self, key: str) -> dict:
        if self.reference_correct is None or self.batch.correct is None:
            return {}
        ref, is_eval = self.reference, self.reference_is_eval
        return {"key": key,
                "batch_accuracy": float(self.batch.correct.mean()),
                "batch_macro_f1": _macro_f1(self.batch.labels, self.batch.predictions),
                "reference_accuracy": float(self.reference_correct.mean()) if len(self.reference_correct)
                else float("nan"),
                "reference_macro_f1": _macro_f1(ref.labels[is_eval], ref.predictions[is_eval]),
                "reference_eval_rows": int(is_eval.sum())}


def prepare_comparison(ref: pd.DataFrame, cur: pd.DataFrame, champion: ChampionView | None = None,
                       champion_key: str = "", cache_dir: Path | None = None) -> Comparison:
    """Descriptors of both sides (OOV against the compared reference rows) and the champion's outputs.

    `ref` has columns text, label and optionally split (train|eval: accuracy is measured on eval rows)."""
    ref_texts = ref["text"].astype(str).reset_index(drop=True)
    cur_texts = cur["text"].astype(str).reset_index(drop=True)
    frequency = document_frequency(ref_texts)
    reference_rows = Compared(ref_texts, ref["label"].astype(str).reset_index(drop=True),
                              describe(ref_texts, frequency, in_reference=True))
    batch_rows = Compared(cur_texts, cur["label"].astype(str).reset_index(drop=True),
                          describe(cur_texts, frequency, in_reference=False))
    if champion is None:
        return Comparison(reference_rows, batch_rows)
    key = fingerprint(champion_key, ref_texts.tolist()) if champion_key and cache_dir else None
    reference_rows.embeddings, reference_rows.predictions = _champion_outputs(
        champion, ref_texts, cache_dir / f"{key}.npz" if key else None)
    batch_rows.embeddings, batch_rows.predictions = _champion_outputs(champion, cur_texts, None)
    batch_rows.correct = batch_rows.predictions.to_numpy() == batch_rows.labels.to_numpy()
    is_eval = (ref["split"] == "eval").to_numpy() if "split" in ref else np.ones(len(ref), dtype=bool)
    reference_correct = reference_rows.predictions.to_numpy()[is_eval] == reference_rows.labels.to_numpy()[is_eval]
    return Comparison(reference_rows, batch_rows, reference_correct, is_eval)


def judge(specs: list[sig.SignalSpec], thresholds, compared: Comparison, settings: DriftSettings) -> list[SignalResult]:
    """Every signal's score against its threshold."""
    scores = score_all(specs, compared.reference, compared.batch, compared.reference_correct, settings)
    return [SignalResult(spec.key, spec.title, spec.kind, spec.statistic, scores[spec.key].value,
                         thresholds.values[spec.key], fired(spec, scores[spec.key], thresholds),
                         scores[spec.key].p_value)
            for spec in specs]


# --- the step --------------------------------------------------------------------------------------

def detect_drift(batch: pd.DataFrame, reference: pd.DataFrame, settings: DriftSettings, out_dir: Path,
                 batch_id: str, champion: ChampionView | None = None, champion_key: str = "",
                 cache_dir: Path | None = None, known_labels: set[str] | None = None,
                 source: str = "", extra_signals: list[SignalResult] = (), new_labels: list[str] | None = None,
                 entities: dict | None = None) -> DriftResult:
    """Compare `batch` (text, label) with `reference` (text, label, split: train|eval).

    `known_labels`: the classes the champion has learned (default: the reference's); batch labels
    outside them make the verdict high.

    `extra_signals`, `new_labels` and `entities` come from a caller that knows more than texts
    (ratchet.entities.drift): judged signals added to the verdict, the labels that make it high
    (instead of the batch labels outside `known_labels`), and the report's entity section.

    Writes out_dir/<batch_id>.html (the reviewer's report), <batch_id>.json (this result) and
    <batch_id>.evidently.json (Evidently's snapshot), and refreshes out_dir/index.html.
    """
    from ratchet.drift.report import write_index

    started = time.perf_counter()
    seconds: dict[str, float] = {}
    ref = _sample_reference(reference, settings.max_reference_rows)
    cur = batch.reset_index(drop=True)
    t0 = time.perf_counter()
    compared = prepare_comparison(ref, cur, champion, champion_key, cache_dir)
    seconds["prepare"] = round(time.perf_counter() - t0, 2)  # descriptors and the champion's outputs
    reference_rows, batch_rows = compared.reference, compared.batch
    known = set(reference["label"].astype(str)) | set(known_labels or ())
    if new_labels is None:
        new_labels = sorted(set(batch_rows.labels) - known)

    t0 = time.perf_counter()
    batch_size = settings.batch_size or len(cur)
    calibration, threshold_model = _calibration(reference_rows, compared.reference_correct, batch_size, len(ref),
                                                settings, cache_dir, champion_key)
    seconds["calibration"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    thresholds = threshold_model.at(len(cur), len(ref))
    results = judge(threshold_model.specs, thresholds, compared, settings) + list(extra_signals)
    seconds["signals"] = round(time.perf_counter() - t0, 2)
    severity, reasons = verdict(results, new_labels)
    cur_texts, ref_texts = batch_rows.texts, reference_rows.texts
    result = DriftResult(
        batch_id=batch_id, rows=len(cur), reference_rows=len(ref), severity=severity, reasons=reasons,
        signals=results, new_labels=new_labels, champion=compared.champion_summary(champion_key),
        calibration=calibration.to_dict(),
        typical_words=typical_words(cur_texts, ref_texts),
        unusual_rows=unusual_rows(cur_texts, batch_rows.embeddings, reference_rows.embeddings,
                                  batch_rows.descriptors["oov_share"], settings.max_examples),
        misclassified=misclassified(cur[["text", "label"]], batch_rows.predictions, settings.max_examples),
        html_path=str(out_dir / f"{batch_id}.html"), json_path=str(out_dir / f"{batch_id}.json"), source=source,
        entities=entities or {})

    t0 = time.perf_counter()
    _write_report_with_fallbacks(result, reference_rows, batch_rows, thresholds.values, settings, out_dir)
    seconds["report"] = round(time.perf_counter() - t0, 2)
    seconds["total"] = round(time.perf_counter() - started, 2)
    result.seconds = seconds
    atomic.write_json(Path(result.json_path), result.to_dict())
    write_index(out_dir)
    log.info("drift %s: %s%s", batch_id, severity, (": " + "; ".join(reasons)) if reasons else "")
    return result


def _write_report_with_fallbacks(result: DriftResult, reference: Compared, current: Compared,
                                 thresholds: dict[str, float], settings: DriftSettings, out_dir: Path) -> None:
    """Evidently's report under the summary; if Evidently fails (its embedding plot needs full-rank
    embeddings), again without the embeddings, and at last the summary alone. The verdict stands."""
    from ratchet.drift.report import write_report

    html_path, snapshot = Path(result.html_path), out_dir / f"{result.batch_id}.evidently.json"
    attempts = [(reference, current)]
    if reference.with_model:
        attempts.append((replace(reference, embeddings=None), replace(current, embeddings=None)))
    for ref, cur in attempts:
        what = "Evidently's report" + ("" if ref.with_model == reference.with_model else " without embeddings")
        try:
            write_report(result, ref, cur, thresholds, settings, html_path, snapshot)
            return
        except Exception as error:  # noqa: BLE001 - any Evidently failure: say why, keep going
            result.errors.append(f"{what} could not be built: {type(error).__name__}: {error}")
            log.warning("drift: %s", result.errors[-1])
    write_report(result, None, None, thresholds, settings, html_path, None)


def _calibration(reference: Compared, reference_correct: np.ndarray | None, batch_size: int, n_reference: int,
                 settings: DriftSettings, cache_dir: Path | None, champion_key: str):
    """Calibrate, or reuse a calibration made for the same reference, champion, size and settings."""
    key = fingerprint(CALIBRATION_VERSION, settings.model_dump(), batch_size, n_reference, champion_key,
                      reference.with_model, reference_correct is not None, reference.texts.tolist(),
                      reference.labels.tolist())
    cached = cache_dir / f"calibration-{key}.json" if cache_dir else None
    if cached is not None and cached.exists():
        calibration = Calibration(**atomic.read_json(cached))
        specs = [s for s in sig.active_signals(True) if s.key in calibration.signals]
        return calibration, ThresholdModel(settings, specs, calibration.embedding_null)
    calibration, model = calibrate(reference, reference_correct, batch_size, n_reference, settings)
    if cached is not None:
        atomic.write_json(cached, calibration.to_dict())
    log.info("drift calibration at batch size %d: %d/%d same-distribution draws raised an alarm (%.1fs)",
             batch_size, calibration.false_alarms, calibration.draws, calibration.seconds)
    return calibration, model
