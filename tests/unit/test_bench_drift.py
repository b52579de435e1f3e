"""`ratchet bench drift`: the controlled cases are what they claim, and the summary is arithmetic."""

import numpy as np
import pandas as pd
import pytest

from ratchet.bench.drift import build_worlds, evidently_default_text_drift, summarise


@pytest.fixture(scope="module")
def worlds():
    topics, sentiment, sentiment_large = build_worlds(seed=0)
    assert len(sentiment_large.reference) == 1600 > 1000 >= len(sentiment.reference)
    return {"topics": topics, "sentiment": sentiment}


def test_cases_shift_what_they_say(worlds):
    rng = np.random.default_rng(0)
    topics = worlds["topics"]
    assert set(topics.reference["label"]) == {"business", "politics", "sport", "tech"}
    assert set(topics.reference["split"]) == {"train", "eval"}
    new_topic = topics.cases["new_topic"](200, rng)
    assert len(new_topic) == 200 and (new_topic["label"] == "entertainment").mean() == pytest.approx(0.3, abs=0.1)
    assert (topics.cases["label_shift"](200, rng)["label"] == "sport").mean() == pytest.approx(0.7, abs=0.1)
    assert topics.cases["length_format"](50, rng)["text"].str.split().str.len().max() <= 30
    same = topics.cases["no_shift"](400, rng)
    assert same["label"].value_counts(normalize=True).max() < 0.35  # the reference's balance, up to chance
    assert not set(same["text"]) & set(topics.reference["text"]), "same-distribution rows are held out"
    sentiment = worlds["sentiment"]
    assert set(sentiment.reference["label"]) == {"positive", "negative"}
    assert set(sentiment.cases["domain_change"](100, rng)["label"]) <= {"positive", "negative"}


def test_evidently_default_flags_another_corpus_and_not_its_own_rows(worlds):
    rng = np.random.default_rng(1)
    reference = worlds["topics"].reference["text"]
    same_score, same_flagged = evidently_default_text_drift(reference,
                                                            worlds["topics"].cases["no_shift"](100, rng)["text"])
    other_score, other_flagged = evidently_default_text_drift(
        reference, worlds["sentiment"].cases["no_shift"](100, rng)["text"])  # movie snippets vs news
    assert other_flagged and other_score > 0.9
    assert not same_flagged and same_score < other_score


def test_summary_rates_and_the_matched_false_alarm_comparison():
    rows = []
    for trial in range(10):  # Evidently's null scores 0.50..0.59; ratchet raises 1 false alarm in 10
        rows.append({"world": "w", "case": "no_shift", "size": 50, "trial": trial, "evidently_default": trial >= 8,
                     "evidently_score": 0.50 + trial / 100, "ratchet": trial == 0, "fired": ["label"] * (trial == 0)})
        rows.append({"world": "w", "case": "shift", "size": 50, "trial": trial, "evidently_default": trial < 3,
                     "evidently_score": 0.585 if trial < 5 else 0.5, "ratchet": True, "fired": ["embeddings"]})
    table = summarise({"rows": rows}).set_index("case")
    assert table.loc["no_shift", "evidently_default"] == pytest.approx(0.2)
    assert table.loc["no_shift", "ratchet"] == pytest.approx(0.1)
    assert table.loc["no_shift", "ratchet_unlabeled"] == 0.0  # its one alarm came from the labels
    assert table.loc["shift", "ratchet"] == 1.0 and table.loc["shift", "evidently_default"] == pytest.approx(0.3)
    # at ratchet's 10% false alarms Evidently's threshold is the 90th percentile of its null scores (0.581)
    assert table.loc["shift", "evidently_matched_fa"] == pytest.approx(0.5)
    assert table.loc["no_shift", "evidently_matched_fa"] == pytest.approx(0.1)
    assert isinstance(table, pd.DataFrame)
