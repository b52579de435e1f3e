from pathlib import Path

import pytest

from ratchet.config import ConfigError, load_settings, parse_settings

ROOT = Path(__file__).resolve().parents[2]


def test_project_params_are_valid():
    settings = load_settings(ROOT / "params.yaml")
    assert settings.model.finetune == "lora"
    assert settings.gate.max_old_split_drop == 0.02
    assert "business" in settings.data.labels


def test_bad_value_names_the_key():
    with pytest.raises(ConfigError, match=r"train\.learning_rate"):
        parse_settings({"data": {"labels": ["a", "b"]}, "train": {"learning_rate": -1}})


def test_unknown_key_is_rejected_by_name():
    with pytest.raises(ConfigError, match=r"train\.lerning_rate"):
        parse_settings({"data": {"labels": ["a", "b"]}, "train": {"lerning_rate": 0.1}})


def test_duplicate_labels_are_rejected():
    with pytest.raises(ConfigError, match="declared twice"):
        parse_settings({"data": {"labels": ["a", "b", "a"]}})


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="params.yaml not found"):
        load_settings(tmp_path / "params.yaml")


def test_non_mapping_yaml_is_rejected(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_settings(path)


def test_a_retry_strengthens_retention_and_lowers_the_learning_rate(tmp_path):
    from ratchet.attempt_plan import AttemptPlan, attempt_file_text, read_attempt
    from ratchet.config import parse_settings

    settings = parse_settings({"data": {"labels": ["a", "b"]},
                               "continual": {"replay": {"ratio": 0.1, "min_per_old_class": 5},
                                             "distillation": {"weight": 0.0}},
                               "train": {"learning_rate": 1e-3}})
    assert settings.for_retries([]) is settings
    retry = settings.for_retries(["more_retention", "more_retention"])   # factors 2, 2 and 0.5, twice
    assert retry.continual.replay.ratio == pytest.approx(0.4) and retry.continual.replay.min_per_old_class == 20
    assert retry.continual.distillation.weight == pytest.approx(4.0)   # from 1.0: it was off
    assert retry.train.learning_rate == pytest.approx(2.5e-4)
    plan = AttemptPlan(attempt=2, retries=["more_retention", "less_retention"])
    (tmp_path / "attempt.yaml").write_text(attempt_file_text(plan))
    assert read_attempt(tmp_path / "attempt.yaml") == plan and read_attempt(tmp_path / "missing.yaml") == AttemptPlan()


def test_a_retry_after_the_new_data_was_not_learned_weakens_retention():
    from ratchet.config import parse_settings

    settings = parse_settings({"data": {"labels": ["a", "b"]},
                               "continual": {"replay": {"ratio": 0.2, "min_per_old_class": 14},
                                             "distillation": {"weight": 1.0, "feature_weight": 0.04},
                                             "bias_correction": {"old_class_weight": 3.0}},
                               "train": {"learning_rate": 1e-3}})
    less = settings.for_retries(["less_retention"]).continual
    assert less.replay.ratio == pytest.approx(0.1) and less.replay.min_per_old_class == 7
    assert less.distillation.weight == pytest.approx(0.5) and less.distillation.feature_weight == pytest.approx(0.02)
    assert less.bias_correction.old_class_weight == pytest.approx(1.5)
    assert settings.for_retries(["less_retention"]).train.learning_rate == pytest.approx(1e-3)


def test_an_attempt_file_names_its_problem(tmp_path):
    from ratchet.attempt_plan import read_attempt
    from ratchet.config import ConfigError

    (tmp_path / "attempt.yaml").write_text("attempt: 1\nretries: [stronger]\n")
    with pytest.raises(ConfigError, match="attempt.yaml must hold"):
        read_attempt(tmp_path / "attempt.yaml")
