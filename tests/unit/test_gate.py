from ratchet.config import GateSettings
from ratchet.gate import decide

SETTINGS = GateSettings(max_old_split_drop=0.02, new_split_min_gain=0.0, min_new_split_accuracy=0.5)


def split(role, candidate, champion=None):
    return {"role": role, "n": 100, "candidate": {"accuracy": candidate},
            "champion": {"accuracy": champion} if champion is not None else None}


def test_passes_when_old_splits_hold_and_new_improves():
    result = decide({"champion_version": "1", "splits": {
        "reference": split("old", 0.95, 0.96), "b-1": split("new", 0.9, 0.3)}}, SETTINGS)
    assert result.passed, result.summary()
    assert {c.name for c in result.checks} == {"old_split_drop", "new_split_floor", "new_split_gain"}


def test_a_drop_beyond_two_points_fails_with_a_reason():
    result = decide({"champion_version": "1", "splits": {
        "reference": split("old", 0.90, 0.96), "b-1": split("new", 0.9, 0.3)}}, SETTINGS)
    assert not result.passed
    [failing] = result.failing()
    assert failing.split == "reference" and failing.value == 0.06
    assert "0.960 -> 0.900" in failing.reason and "-6.0 pts" in failing.reason
    assert result.to_dict()["checks"][0]["passed"] is False  # failing checks come first


def test_new_split_must_not_get_worse_and_meet_the_floor():
    result = decide({"champion_version": "1", "splits": {"b-1": split("new", 0.4, 0.45)}}, SETTINGS)
    assert {c.name for c in result.failing()} == {"new_split_floor", "new_split_gain"}


def test_first_champion_is_judged_by_the_floor_only():
    result = decide({"champion_version": None, "splits": {"reference": split("new", 0.8)}}, SETTINGS)
    assert result.passed and [c.name for c in result.checks] == ["new_split_floor"]


def test_nothing_to_judge_is_a_rejection():
    assert not decide({"champion_version": "1", "splits": {}}, SETTINGS).passed
