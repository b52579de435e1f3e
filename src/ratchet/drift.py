"""Evidently adapter: drift of a batch against the reference, as an HTML+JSON report and a verdict.

Only this module imports evidently; callers get ratchet's DriftResult.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from ratchet import atomic
from ratchet.config import DriftSettings

log = logging.getLogger("ratchet")


@dataclass(frozen=True)
class DriftSignal:
    """One drift measurement: Evidently's score, the threshold it was held to, and the outcome."""

    name: str
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    drifted: bool
    signals: list[DriftSignal]
    reasons: list[str]
    new_labels: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    html_path: str = ""
    json_path: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# Columns whose drift score is a p-value (drift when below the threshold); text uses a score above it.
P_VALUE_COLUMNS = ("label",)


def _reference_sample(reference: pd.DataFrame, limit: int) -> pd.DataFrame:
    if len(reference) <= limit:
        return reference
    return reference.sample(n=limit, random_state=0).sort_index()


def _signal(metric: dict, test_status: str | None) -> DriftSignal:
    config = metric["config"]
    return DriftSignal(name=f"{config['column']} drift", column=config["column"], method=config["method"],
                       score=float(metric["value"]), threshold=float(config["threshold"]),
                       drifted=test_status == "FAIL")


def _reason(signal: DriftSignal) -> str:
    if signal.column in P_VALUE_COLUMNS:
        return f"{signal.column}: distribution changed ({signal.method} {signal.score:.3g} < {signal.threshold})"
    return f"{signal.column}: content changed ({signal.method} {signal.score:.3f} >= {signal.threshold})"


def detect_drift(batch: pd.DataFrame, reference: pd.DataFrame, settings: DriftSettings,
                 html_path: Path, json_path: Path) -> DriftResult:
    """Compare the batch's text and label distribution with the reference; write the report."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    columns = ["text", "label"]
    current = batch[columns].astype(str)
    baseline = _reference_sample(reference[columns].astype(str), settings.max_reference_rows)
    definition = DataDefinition(text_columns=["text"], categorical_columns=["label"])
    text_metric = ValueDrift(column="text", threshold=settings.text_threshold)
    label_metric = ValueDrift(column="label", method="chisquare", threshold=settings.label_p_value)
    errors: list[str] = []

    def run(metrics: list):
        return Report(metrics, include_tests=True).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(baseline, data_definition=definition))

    try:
        snapshot = run([text_metric, label_metric])
    except ValueError as error:
        # The text domain classifier fails on degenerate vocabularies (e.g. every word in every
        # row); keep the label signal and say so rather than losing the batch's report.
        errors.append(f"text drift could not be computed: {error}")
        log.warning("drift: %s", errors[-1])
        snapshot = run([label_metric])
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
    raw = snapshot.dict()
    atomic.write_json(json_path, raw)

    status_by_metric = {t["metric_config"]["metric_id"]: t["status"] for t in raw.get("tests", [])}
    signals = [_signal(m, status_by_metric.get(m["id"])) for m in raw["metrics"]]
    new_labels = sorted(set(batch["label"].dropna().astype(str)) - set(reference["label"].astype(str)))
    reasons = [_reason(s) for s in signals if s.drifted]
    if new_labels:
        reasons.append(f"label: never seen in the reference: {new_labels}")
    result = DriftResult(drifted=bool(reasons), signals=signals, reasons=reasons, new_labels=new_labels, errors=errors,
                         html_path=str(html_path), json_path=str(json_path))
    log.info("drift: %s", "; ".join(reasons) if reasons else "no drift against the reference")
    return result
