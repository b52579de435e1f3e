"""The benchmark's named strategies: each turns on only what its name says, whatever params.yaml has."""

from pathlib import Path

import pytest
import yaml

from ratchet.bench.cl import strategy_settings
from ratchet.config import Settings, parse_settings

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"

RETENTION_ON = {"distillation": {"weight": 2.0, "feature_weight": 0.5},
                "regularization": {"method": "ewc"}, "fgm_epsilon": 0.1}


def _project_settings() -> Settings:
    """The project's params.yaml with every retention term switched on."""
    raw = yaml.safe_load(PARAMS.read_text())
    for key, value in RETENTION_ON.items():
        raw["continual"][key] = {**raw["continual"][key], **value} if isinstance(value, dict) else value
    return parse_settings(raw)


@pytest.mark.parametrize("strategy", ["naive", "replay", "lwf", "ewc", "l2sp", "joint"])
def test_single_strategies_turn_off_what_they_are_not(strategy):
    continual = strategy_settings(_project_settings(), strategy).continual
    assert continual.distillation.feature_weight == 0.0
    assert continual.distillation.weight == (1.0 if strategy == "lwf" else 0.0)
    assert continual.regularization.method == (strategy if strategy in ("ewc", "l2sp") else "none")
    assert continual.fgm_epsilon == 0.0 and not continual.bias_correction.enabled
    assert (continual.replay.selection != "none") == (strategy == "replay")


def test_default_is_the_project_settings_as_they_are():
    project = _project_settings()
    assert strategy_settings(project, "default") == project
    full = strategy_settings(project, "full")
    assert full.model.finetune == "full" and full.continual.distillation.feature_weight == 0.0
    assert full.continual.bias_correction.old_class_weight == 1.0
    assert full.continual.distillation.weight == project.continual.distillation.weight
    assert full.continual.replay == project.continual.replay


def test_full_fine_tuning_with_the_lora_tuned_retention_is_warned_about_and_the_full_strategy_is_not():
    project = parse_settings(yaml.safe_load(PARAMS.read_text()))
    assert project.model.finetune == "lora" and project.lora_tuned_retention_warning() is None
    as_full = project.model_copy(update={"model": project.model.model_copy(update={"finetune": "full"})})
    warning = as_full.lora_tuned_retention_warning()
    assert "continual.distillation.feature_weight = 0.03" in warning
    assert "continual.bias_correction.old_class_weight = 3" in warning and "full fine-tuning" in warning
    for strategy in ("full", "top"):
        assert strategy_settings(project, strategy).lora_tuned_retention_warning() is None
