"""Drift: calibrated thresholds, the signals against Evidently's own report, severity, the report."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from ratchet.config import DriftSettings
from ratchet.drift import detect_drift
from ratchet.drift import signals as sig
from ratchet.drift.calibration import Compared, calibrate
from ratchet.drift.descriptors import describe, document_frequency
from ratchet.drift.detect import SignalResult, severity_of
from ratchet.drift.explain import typical_words
from tests.conftest import CLASS_WORDS, synthetic_frame


class KeywordChampion:
    """A stand-in champion that knows red and green: embeds by their word counts, predicts the larger."""

    labels = ["red", "green"]

    def embed_and_predict(self, texts):
        counts = np.array([[sum(w in CLASS_WORDS[c] for w in t.split()) for c in self.labels] for t in texts], float)
        # a little fixed per-text noise in two more dimensions keeps the embeddings full-rank
        noise = np.array([np.random.default_rng(len(t) + 7 * t.count("e")).normal(size=2) for t in texts])
        return np.hstack([counts, noise]), [self.labels[i] for i in counts.argmax(axis=1)]


def reference_frame() -> pd.DataFrame:
    frame = synthetic_frame({"red": 150, "green": 150}, seed=0, prefix="ref")
    return frame.assign(split=np.where(np.arange(len(frame)) % 4 == 0, "eval", "train"))


def test_new_topic_is_high_and_same_distribution_is_none(tmp_path):
    reference = reference_frame()
    settings = DriftSettings(calibration_draws=10)
    new_topic = detect_drift(synthetic_frame({"blue": 100}, seed=1, prefix="new"), reference, settings, tmp_path,
                             "new", champion=KeywordChampion(), champion_key="kw", cache_dir=tmp_path / "cache")
    assert new_topic.severity == "high" and new_topic.new_labels == ["blue"]
    fired = {s.key for s in new_topic.signals if s.fired}
    assert {"text_content", "oov_share", "accuracy", "prediction", "embeddings"} <= fired
    assert new_topic.champion["batch_accuracy"] == 0.0
    assert new_topic.champion["reference_accuracy"] == 1.0
    assert any(w["word"] in CLASS_WORDS["blue"] for w in new_topic.typical_words["batch"])

    same = detect_drift(synthetic_frame({"red": 50, "green": 50}, seed=2, prefix="same"), reference, settings,
                        tmp_path, "same", champion=KeywordChampion(), champion_key="kw", cache_dir=tmp_path / "cache")
    assert same.severity == "none", same.reasons
    assert not same.new_labels and same.champion["batch_accuracy"] == 1.0

    saved = json.loads((tmp_path / "new.json").read_text())
    assert saved["severity"] == "high" and saved["drifted"] and saved["calibration"]["draws"] == 10
    page = (tmp_path / "new.html").read_text()
    assert 'id="ratchet-verdict"' in page and "labels the champion never learned: blue" in page
    body = page.index("<body")
    assert body < page.index('id="ratchet-summary"') < page.index("<script", body)  # on top of Evidently's part
    assert "Value Drift for column text" in page
    index = (tmp_path / "index.html").read_text()
    assert "new.html" in index and "same.html" in index


def test_signals_equal_the_scores_in_evidentlys_report(tmp_path):
    reference = reference_frame()
    batch = synthetic_frame({"red": 60, "green": 20, "blue": 5}, seed=3, prefix="b")
    result = detect_drift(batch, reference, DriftSettings(calibration_draws=5), tmp_path, "b",
                          champion=KeywordChampion(), champion_key="kw")
    snapshot = json.loads((tmp_path / "b.evidently.json").read_text())
    evidently = {}
    for metric in snapshot["metrics"]:
        config = metric["config"]
        evidently["embeddings" if "embeddings_name" in config else
                  "text_content" if config["column"] == "text" else config["column"]] = metric["value"]
    ours = {s.key: s.score for s in result.signals if s.key != "accuracy"}
    assert set(evidently) == set(ours)
    for key, value in ours.items():
        assert evidently[key] == pytest.approx(value, rel=1e-6, abs=1e-3 if key == "text_content" else 1e-12), key


def test_calibration_keeps_false_alarms_near_the_target():
    reference = synthetic_frame({"red": 200, "green": 200}, seed=5, prefix="cal")
    texts = reference["text"]
    rows = Compared(texts, reference["label"], describe(texts, document_frequency(texts), in_reference=True))
    calibration, model = calibrate(rows, None, batch_size=100, n_reference=400,
                                   settings=DriftSettings(calibration_draws=60))
    assert calibration.signals == ["text_content", "length_chars", "oov_share", "non_letter_share", "label"]
    assert calibration.alpha_per_signal == pytest.approx(0.01)
    assert calibration.false_alarm_upper_95 >= calibration.false_alarm_rate
    assert calibration.false_alarms <= 8, calibration.fired_in_draws  # 5% of 60 is 3; binomial tail ~0.3%
    # A fixed threshold is the trap: the calibrated AUC threshold tightens as batches grow.
    assert model.at(50, 400).values["text_content"] > model.at(500, 400).values["text_content"] > 0.5


def test_two_sample_chi_square_is_calibrated_where_evidentlys_is_not():
    from evidently.legacy.calculations.stattests import chi_stat_test
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(0)
    ours, theirs = [], []
    for _ in range(300):
        reference = pd.Series(rng.choice(["a", "b", "c"], size=200, p=[0.5, 0.3, 0.2]))
        current = pd.Series(rng.choice(["a", "b", "c"], size=200, p=[0.5, 0.3, 0.2]))
        ours.append(sig.chi_square_p_value(reference, current) < 0.05)
        theirs.append(chi_stat_test(reference, current, ColumnType.Categorical, 0.05).drifted)
    assert np.mean(ours) <= 0.09
    assert np.mean(theirs) > 2 * np.mean(ours)  # the goodness-of-fit test ignores the reference's noise


def test_oov_share_is_leave_one_out_for_reference_rows():
    reference = pd.Series(["apple river", "apple lake", "zebra apple"])
    df = document_frequency(reference)
    described = describe(reference, df, in_reference=True)
    assert described["oov_share"].tolist() == [0.5, 0.5, 0.5]  # river, lake, zebra: only in their own row
    batch = describe(pd.Series(["apple river", "quokka"]), df, in_reference=False)
    assert batch["oov_share"].tolist() == [0.0, 1.0]


def test_severity_is_the_worst_kind_that_fired():
    def result(kind: str, fired: bool) -> SignalResult:
        return SignalResult("k", "t", kind, "p_value", 0.0, 0.01, fired)

    assert severity_of([result("surface", False)], []) == "none"
    assert severity_of([result("surface", True)], []) == "low"
    assert severity_of([result("surface", True), result("model", True)], []) == "medium"
    assert severity_of([result("labels", True), result("performance", True)], []) == "high"
    assert severity_of([], ["new-label"]) == "high"


def test_accuracy_drop_needs_size_and_significance():
    perfect, slightly_worse = np.ones(200, bool), np.r_[np.ones(196, bool), np.zeros(4, bool)]
    small = sig.compare_accuracy(slightly_worse, perfect)
    assert small.drop == pytest.approx(0.02) and small.p_value > 0.01
    big = sig.compare_accuracy(np.r_[np.ones(100, bool), np.zeros(100, bool)], perfect)
    assert big.drop == pytest.approx(0.5) and big.p_value < 1e-10


def test_typical_words_name_what_the_batch_has_more_of():
    words = typical_words(pd.Series(["whale ocean whale sky"] * 30), pd.Series(["apple cherry fire"] * 30))
    assert {w["word"] for w in words["batch"]} >= {"whale", "ocean"}
    assert {w["word"] for w in words["reference"]} >= {"apple", "cherry"}
    assert all(re.fullmatch(r"[a-z]+", w["word"]) for w in words["batch"])
