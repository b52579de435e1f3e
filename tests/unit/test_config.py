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
