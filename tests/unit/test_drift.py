import json

from ratchet.config import DriftSettings
from tests.conftest import synthetic_frame


def test_new_topic_drifts_and_same_distribution_does_not(tmp_path):
    from ratchet.drift import detect_drift

    reference = synthetic_frame({"red": 150, "green": 150}, seed=0, prefix="ref")
    new_topic = synthetic_frame({"blue": 100}, seed=1, prefix="new")
    same = synthetic_frame({"red": 50, "green": 50}, seed=2, prefix="same")
    settings = DriftSettings()

    drifted = detect_drift(new_topic, reference, settings, tmp_path / "a.html", tmp_path / "a.json")
    assert drifted.drifted
    assert drifted.new_labels == ["blue"]
    assert {s.column for s in drifted.signals if s.drifted} == {"text", "label"}
    assert (tmp_path / "a.html").stat().st_size > 10_000
    assert json.loads((tmp_path / "a.json").read_text())["metrics"]

    steady = detect_drift(same, reference, settings, tmp_path / "b.html", tmp_path / "b.json")
    assert not steady.drifted, steady.reasons
    assert not steady.new_labels
