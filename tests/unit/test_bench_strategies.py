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
    # the bias fit's weight is named only where bias correction runs (params.yaml has it off)
    assert ("continual.bias_correction.old_class_weight = 3" in warning) == project.continual.bias_correction.enabled
    assert "full fine-tuning" in warning
    with_bias_correction = as_full.model_copy(update={"continual": as_full.continual.model_copy(update={
        "bias_correction": as_full.continual.bias_correction.model_copy(update={"enabled": True})})})
    assert "continual.bias_correction.old_class_weight = 3" in with_bias_correction.lora_tuned_retention_warning()
    for strategy in ("full", "top"):
        assert strategy_settings(project, strategy).lora_tuned_retention_warning() is None
    for strategy in ("joint", "naive"):     # retention off: its LoRA-tuned values do nothing, nothing to warn of
        assert strategy_settings(as_full, strategy).lora_tuned_retention_warning() is None


@pytest.mark.parametrize("strategy", ["er", "derpp"])
def test_replay_baselines_replay_the_whole_memory_and_nothing_else(strategy):
    continual = strategy_settings(_project_settings(), strategy).continual
    assert continual.replay.selection == "class_balanced" and not continual.replay.balance_classes
    assert continual.replay.per_old_class(n_new=300, n_new_classes=2, n_old_classes=3) >= continual.replay.buffer_size
    assert continual.replay.validation_per_class == 0
    assert continual.distillation.weight == 0.0 and continual.distillation.feature_weight == 0.0
    assert not continual.bias_correction.enabled and not continual.align_head


def test_a_grid_is_the_product_of_its_axes_with_numbers_read_as_numbers():
    from ratchet.bench.selection import parse_grid

    points = parse_grid(["train.learning_rate=1e-4,1e-3", "continual.align_head=true,false"])
    assert [dict(p.overrides) for p in points] == [
        {"train.learning_rate": 1e-4, "continual.align_head": True},
        {"train.learning_rate": 1e-4, "continual.align_head": False},
        {"train.learning_rate": 1e-3, "continual.align_head": True},
        {"train.learning_rate": 1e-3, "continual.align_head": False}]
    assert points[0].as_set_flags() == "--set train.learning_rate=0.0001 --set continual.align_head=True"
    assert [p.overrides for p in parse_grid([])] == [()]


def test_a_grid_value_may_be_a_list_in_brackets():
    from ratchet.bench.selection import incumbent_point, parse_grid

    points = parse_grid(["model.lora.target_modules=[query,value],[query,key,value,output.dense]"])
    assert [dict(p.overrides) for p in points] == [
        {"model.lora.target_modules": ["query", "value"]},
        {"model.lora.target_modules": ["query", "key", "value", "output.dense"]}]
    base = {"model": {"lora": {"target_modules": ["query", "value"]}}}
    assert incumbent_point(points, base) == points[0]
    # the rerun flags printed for a pick read back as the same point
    assert points[1].as_set_flags() == "--set model.lora.target_modules=[query,key,value,output.dense]"
    assert parse_grid([points[1].as_set_flags().removeprefix("--set ")]) == [points[1]]
    assert points[1].applied_to(base) == {"model": {"lora": {"target_modules": ["query", "key", "value", "output.dense"]}}}


@pytest.mark.parametrize("spec, message", [("train.epochs", "expected KEY=VALUE"), ("train.epochs=", "expected KEY=VALUE")])
def test_a_bad_grid_axis_is_named(spec, message):
    from ratchet.bench.selection import GridError, parse_grid

    with pytest.raises(GridError, match=message):
        parse_grid([spec])
    with pytest.raises(GridError, match="given twice"):
        parse_grid(["a=1,2", "a=3"])


@pytest.mark.parametrize("spec", ["model.lora.target_modules=[query,value", "train.epochs=1,,2"])
def test_a_grid_axis_that_is_not_yaml_is_named_not_a_traceback(spec):
    from ratchet.bench.selection import GridError, apply_assignments, parse_grid

    with pytest.raises(GridError, match=r"--grid '.*': not a YAML value"):
        parse_grid([spec])
    with pytest.raises(GridError, match=r"--set value '\[query': not a YAML value"):
        apply_assignments({}, ["model.lora.target_modules=[query"])


def test_the_pick_is_the_best_mean_over_streams_then_the_better_bwt_then_the_earlier_point():
    from ratchet.bench.selection import GridPoint, PointScore, pick

    def point(value, per_stream):
        return PointScore(GridPoint((("k", value),)), per_stream)

    a = point(1, {"s1": {"average_accuracy": 0.9, "bwt": -0.1}, "s2": {"average_accuracy": 0.5, "bwt": 0.0}})
    b = point(2, {"s1": {"average_accuracy": 0.7, "bwt": 0.0}, "s2": {"average_accuracy": 0.7, "bwt": 0.0}})
    c = point(3, {"s1": {"average_accuracy": 0.8, "bwt": 0.0}, "s2": {"average_accuracy": 0.6, "bwt": 0.0}})
    assert pick([a, b]) is b                 # equal means 0.7: b forgets less
    assert pick([b, c]) is b                 # equal means and BWT: the earlier point
    assert pick([a, point(4, {"s1": {"average_accuracy": 0.95, "bwt": -0.2},
                              "s2": {"average_accuracy": 0.5, "bwt": -0.2}})]).point.overrides == (("k", 4),)


def test_a_point_is_scored_per_seed_and_keeps_each_streams_examples():
    from ratchet.bench.results import RunResult
    from ratchet.bench.selection import GridPoint, examples_per_stream, score_point

    def run(seed, accuracy, examples):
        summary = {"average_accuracy": accuracy, "bwt": -0.01 * seed, "newest_step_accuracy": 0.5}
        return RunResult("default", seed, [], {}, summary, {}, examples, 1.0, 0)

    score = score_point(GridPoint((("k", 1),)), {"bbc": [run(0, 0.9, 1000), run(1, 0.8, 1200)],
                                                 "drug": [run(0, 0.7, 400), run(1, 0.6, 400)]})
    assert score.per_seed == pytest.approx((0.8, 0.7))          # each seed: the mean over streams
    assert score.per_stream["bbc"]["examples_processed"] == 1100  # each stream: the mean over seeds
    assert score.per_stream["drug"]["bwt"] == pytest.approx(-0.005)
    assert examples_per_stream(score) == "bbc 1,100; drug 400"
    older = GridPoint((("k", 2),))
    assert examples_per_stream(type(score)(older, {"bbc": {"average_accuracy": 0.9, "bwt": 0.0}})) == ""


def _seeded(value, per_seed, bwt=0.0):
    from ratchet.bench.selection import GridPoint, PointScore

    score = sum(per_seed) / len(per_seed)
    return PointScore(GridPoint((("k", value),)), {"s": {"average_accuracy": score, "bwt": bwt}}, tuple(per_seed))


def test_with_several_seeds_the_incumbent_stays_unless_beaten_beyond_the_seeds_noise():
    from ratchet.bench.selection import GridPoint, paired_margin, pick

    incumbent = _seeded(40, [0.90, 0.92, 0.94])
    noisy = _seeded(80, [0.93, 0.90, 0.95])        # differences +0.03, -0.02, +0.01: mean +0.0067
    margin = paired_margin(noisy, incumbent)
    assert margin.difference == pytest.approx(0.02 / 3)
    assert margin.standard_error == pytest.approx(0.0251661 / 3 ** 0.5, rel=1e-4)   # sample sd / sqrt(3)
    assert not margin.beyond_noise
    assert pick([incumbent, noisy], incumbent=GridPoint((("k", 40),))) is incumbent
    assert pick([incumbent, noisy]) is noisy                      # no incumbent named: the best mean
    steady = _seeded(120, [0.92, 0.94, 0.96])                      # +0.02 on every seed: beyond noise
    assert pick([incumbent, steady], incumbent=GridPoint((("k", 40),))) is steady


def test_with_one_seed_the_best_mean_wins_whatever_the_incumbent():
    from ratchet.bench.selection import GridPoint, pick

    incumbent, challenger = _seeded(40, [0.900]), _seeded(80, [0.901])
    assert pick([incumbent, challenger], incumbent=GridPoint((("k", 40),))) is challenger


def test_the_incumbent_is_the_grid_point_that_changes_nothing():
    from ratchet.bench.selection import incumbent_point, parse_grid

    points = parse_grid(["train.new_class_min_steps=40,80", "train.learning_rate=1e-3,2e-3"])
    base = {"train": {"new_class_min_steps": 80, "learning_rate": 0.002}}
    assert incumbent_point(points, base).overrides == (("train.new_class_min_steps", 80),
                                                       ("train.learning_rate", 0.002))
    assert incumbent_point(points, {"train": {"new_class_min_steps": 60, "learning_rate": 0.002}}) is None
    assert incumbent_point(points, {}) is None
