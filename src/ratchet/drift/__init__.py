"""Drift of a batch against the reference: calibrated signals, a verdict with severity, a report.

descriptors: offline text descriptors · signals: the statistics (Evidently's functions) ·
calibration: thresholds and their false-alarm estimate · explain: typical words and examples ·
report: the HTML a reviewer opens · detect: the step that ties them together.
"""

from ratchet.drift.detect import ChampionView, DriftResult, SignalResult, detect_drift

__all__ = ["ChampionView", "DriftResult", "SignalResult", "detect_drift"]
