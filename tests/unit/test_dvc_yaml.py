"""dvc.yaml and ratchet.paths must name the same places (every path has one home)."""

from pathlib import Path

import yaml

from ratchet.paths import ProjectPaths

ROOT = Path(__file__).resolve().parents[2]
PATHS = ProjectPaths.at(ROOT)


def stages():
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def rel(path: Path) -> str:
    return str(path.relative_to(PATHS.root))


def _names(items):
    return [next(iter(i)) if isinstance(i, dict) else i for i in items]


def test_outputs_match_paths():
    s = stages()
    assert s["prepare"]["outs"] == [rel(PATHS.prepared)]
    assert s["train"]["outs"] == [rel(PATHS.candidate), rel(PATHS.eval_predictions)]
    assert _names(s["train"]["metrics"]) == [rel(PATHS.train_metrics)]
    assert _names(s["evaluate"]["metrics"]) == [rel(PATHS.eval_metrics)]
    assert _names(s["evaluate"]["plots"]) == [rel(PATHS.split_accuracy_plot), rel(PATHS.accuracy_matrix),
                                              rel(PATHS.increments_plot), rel(PATHS.accuracy_heatmap)]
    assert _names(s["gate"]["metrics"]) == [rel(PATHS.gate_result)]


def test_no_stage_writes_inside_data():
    for stage in stages().values():
        for out in _names(stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", [])):
            assert not out.startswith(rel(PATHS.data)), out


def test_every_dependency_exists_or_is_a_pipeline_path():
    produced = {rel(PATHS.prepared), rel(PATHS.candidate), rel(PATHS.eval_predictions), rel(PATHS.eval_metrics)}
    data_paths = {rel(PATHS.data), rel(PATHS.champion)}
    for name, stage in stages().items():
        assert stage["cmd"] == f"python -m ratchet.stages.{name}"
        for dep in stage["deps"]:
            assert dep in produced or dep in data_paths or (ROOT / dep).exists(), dep


def test_stage_params_exist_in_params_yaml():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for stage in stages().values():
        for key in stage.get("params", []):
            if isinstance(key, dict):  # another params file: attempt.yaml, with its keys
                [(file, keys)] = key.items()
                assert file == rel(PATHS.attempt) and set(keys) <= set(yaml.safe_load((ROOT / file).read_text()))
                continue
            node = params
            for part in key.split("."):
                assert part in node, key
                node = node[part]
