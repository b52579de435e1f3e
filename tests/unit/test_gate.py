import pytest

from ratchet.config import GateSettings
from ratchet.evaluation import paired_counts
from ratchet.gate import decide, mcnemar_p_value
from ratchet.records import EvalReport

SETTINGS = GateSettings(max_old_split_drop=0.02, hard_max_old_split_drop=0.05, max_class_recall_drop=0.05,
                        hard_max_class_recall_drop=0.15, significance=0.05, max_negative_flip_rate=0.05,
                        new_split_min_gain=0.0, min_new_split_accuracy=0.5)


def scores(accuracy, n=100):
    return {"n": n, "accuracy": accuracy, "macro_f1": 0.0, "per_class_recall": {}, "per_class": {}}


def split(role, candidate, champion=None, champion_only=0, candidate_only=0, n=100):
    paired = ({"n": n, "champion_only": champion_only, "candidate_only": candidate_only, "per_class": {}}
              if champion is not None else None)
    return {"role": role, "n": n, "candidate": scores(candidate, n),
            "champion": scores(champion, n) if champion is not None else None, "paired": paired}


def report(champion_version, splits) -> EvalReport:
    """metrics/eval.json as the evaluate stage writes it, for the splits given."""
    return EvalReport.model_validate({"champion_version": champion_version, "candidate": {"average_accuracy": 0.0},
                                      "splits": splits})


def test_mcnemar_by_hand():
    assert mcnemar_p_value(0, 0) == 1.0
    assert mcnemar_p_value(3, 0) == pytest.approx(1 / 8)          # three losses, no wins: (1/2)^3
    assert mcnemar_p_value(5, 0) == pytest.approx(1 / 32)
    assert mcnemar_p_value(2, 2) == pytest.approx(11 / 16)        # P(X >= 2), X ~ Bin(4, 1/2)


def test_paired_counts_by_hand():
    truth = ["a", "a", "b", "b", "b"]
    counts = paired_counts(truth, champion=["a", "b", "b", "a", "b"], candidate=["b", "b", "b", "b", "a"])
    assert (counts.n, counts.champion_only, counts.candidate_only) == (5, 2, 1)
    assert counts.per_class["b"].model_dump() == {"n": 3, "champion_only": 1, "candidate_only": 1}


def test_passes_when_old_splits_hold_and_new_improves():
    result = decide(report("1", {
        "reference": split("old", 0.95, 0.96, champion_only=2, candidate_only=1),
        "b-1": split("new", 0.9, 0.3)}), SETTINGS)
    assert result.passed, result.summary
    assert {c.name for c in result.checks} == {"old_split_drop", "new_split_floor", "new_split_gain",
                                               "negative_flip_rate"}


def test_a_significant_drop_fails_and_says_why():
    # 4 points lost: 5 flips to wrong, 1 to right: p = 7/64 > 0.05 -> noise; 8 vs 0 -> p = 1/256
    noisy = decide(report("1", {
        "reference": split("old", 0.92, 0.96, champion_only=5, candidate_only=1), "b-1": split("new", 0.9, 0.3)}),
        SETTINGS.model_copy(update={"max_negative_flip_rate": 0.1}))
    assert noisy.passed and "within noise" in next(c.reason for c in noisy.checks if c.name == "old_split_drop")
    real = decide(report("1", {
        "reference": split("old", 0.92, 0.96, champion_only=8, candidate_only=4), "b-1": split("new", 0.9, 0.3)}),
        SETTINGS.model_copy(update={"max_negative_flip_rate": 0.1, "significance": 0.5}))
    [failing] = real.failing()
    assert failing.split == "reference" and failing.value == 0.04 and failing.p_value is not None
    assert "0.960 -> 0.920" in failing.reason and "significant" in failing.reason
    assert real.model_dump()["checks"][0]["passed"] is False and real.forgetting
    assert real.retry == "more_retention"      # forgot old data, learned the new: keep more


def test_the_hard_ceiling_fails_whatever_the_test_says():
    result = decide(report("1", {
        "reference": split("old", 0.90, 0.96, champion_only=6, candidate_only=0, n=100),
        "b-1": split("new", 0.9, 0.3)}), SETTINGS.model_copy(update={"significance": 0.001,
                                                                     "max_negative_flip_rate": 0.5}))
    [failing] = result.failing()
    assert "hard ceiling" in failing.reason and failing.p_value == pytest.approx(1 / 64)


def test_negative_flip_rate_counts_regressions_even_when_accuracy_holds():
    # accuracy unchanged (8 lost, 8 gained) but 8% of old examples flipped to wrong
    result = decide(report("1", {
        "reference": split("old", 0.90, 0.90, champion_only=8, candidate_only=8), "b-1": split("new", 0.9, 0.3)}),
        SETTINGS)
    [failing] = result.failing()
    assert failing.name == "negative_flip_rate" and failing.value == 0.08 and "8 of 100" in failing.reason


def test_a_class_that_loses_its_recall_fails_even_when_the_split_holds():
    old = split("old", 0.95, 0.96, champion_only=1, candidate_only=0)
    old["champion"]["per_class_recall"] = {"red": 1.0, "green": 0.9}
    old["candidate"]["per_class_recall"] = {"red": 0.8, "green": 0.95}
    old["paired"]["per_class"] = {"red": {"n": 10, "champion_only": 2, "candidate_only": 0},
                                  "green": {"n": 10, "champion_only": 0, "candidate_only": 1}}
    result = decide(report("1", {"reference": old, "b-1": split("new", 0.9, 0.3)}), SETTINGS)
    [failing] = result.failing()
    assert failing.name == "class_recall_drop" and "class 'red'" in failing.reason and "hard ceiling" in failing.reason


def test_new_split_must_not_get_worse_and_meet_the_floor():
    result = decide(report("1", {"b-1": split("new", 0.4, 0.45)}), SETTINGS)
    assert {c.name for c in result.failing()} == {"new_split_floor", "new_split_gain"}
    assert not result.forgetting and result.not_learned
    assert result.retry == "less_retention"    # did not learn the new data: more retention would not help


def test_a_candidate_that_forgot_and_did_not_learn_is_not_retried():
    result = decide(report("1", {"reference": split("old", 0.80, 0.96, champion_only=16, candidate_only=0),
                                 "b-1": split("new", 0.4, 0.45)}), SETTINGS)
    assert result.forgetting and result.not_learned and result.retry is None


def test_canary_misses_are_named():
    canary = {"role": "canary", "n": 2, "candidate": scores(0.5, 2), "champion": None,
              "candidate_misses": [{"id": "c-7", "text": "refund", "label": "billing", "predicted": "sport"}]}
    result = decide(report(None, {"ref": split("new", 0.8), "canary": canary}), SETTINGS)
    [failing] = result.failing()
    assert failing.name == "canary" and "c-7 (billing read as sport)" in failing.reason


def test_first_champion_is_judged_by_the_floor_only():
    result = decide(report(None, {"reference": split("new", 0.8)}), SETTINGS)
    assert result.passed and [c.name for c in result.checks] == ["new_split_floor"]


def test_nothing_to_judge_is_a_rejection():
    assert not decide(report("1", {}), SETTINGS).passed


def test_ceiling_below_the_allowed_drop_is_refused():
    with pytest.raises(ValueError, match="hard_max_old_split_drop"):
        GateSettings(max_old_split_drop=0.1, hard_max_old_split_drop=0.05)
