"""`ratchet bench cl` end to end on a tiny stream: the accuracy matrix, the cost accounting, the files."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from ratchet.cli import app
from tests.conftest import synthetic_frame
from tests.integration.conftest import tiny_params

STREAM = """
name: colours
labels: [red, green, blue]
sources: [{file: colours.csv, text: text, label: label}]
steps:
  - {name: warm, where: {column: label, in: [red, green]}}
  - {name: cool, where: {column: label, in: [blue]}}
test: {fraction: 0.25}
"""


def _colours(tmp_path, tiny_model_dir) -> list[str]:
    frame = synthetic_frame({"red": 40, "green": 40, "blue": 40}, seed=3)
    frame.to_csv(tmp_path / "colours.csv", index=False)
    (tmp_path / "stream.yaml").write_text(STREAM)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(tiny_model_dir)))
    return ["bench", "cl", "--stream-file", str(tmp_path / "stream.yaml"), "--seeds", "0", "--device", "cpu",
            "--params", str(tmp_path / "params.yaml")]


def test_bench_runs_a_stream_file_and_accounts_for_every_training_example(tmp_path, tiny_model_dir):
    out = tmp_path / "out" / "colours.json"
    result = CliRunner().invoke(app, [*_colours(tmp_path, tiny_model_dir),
                                      "--strategies", "naive,default,er,derpp,ncm,tfidf-joint,joint",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    runs = {run["strategy"]: run for run in payload["runs"]}
    assert [len(row) for row in runs["naive"]["matrix"]] == [2, 2], "every task after every step"
    epochs = payload["settings"]["train"]["epochs"]
    # 60 warm + 30 cool training rows; joint retrains on everything seen at each step
    assert runs["naive"]["examples_processed"] == (60 + 30) * epochs
    assert runs["joint"]["examples_processed"] == (60 + 90) * epochs
    # the default holds 5 blue rows out for bias correction (where params.yaml turns it on) and replays
    # min_per_old_class rows of each old class (ratio x the new rows is fewer), as many as the
    # buffer's 30 a class allow
    held_out = 5 if payload["settings"]["continual"]["bias_correction"]["enabled"] else 0
    per_old_class = min(30, payload["settings"]["continual"]["replay"]["min_per_old_class"])
    assert runs["default"]["examples_processed"] == (60 + (30 - held_out) + 2 * per_old_class) * epochs
    # er and derpp replay the whole memory (all 60 warm rows fit in the buffer) next to the 30 blue
    assert runs["er"]["examples_processed"] == runs["derpp"]["examples_processed"] == (60 + 30 + 60) * epochs
    # the baselines that train no transformer: refitted on all 60 then 90 rows / encoded once
    assert runs["tfidf-joint"]["examples_processed"] == 60 + 90 and runs["tfidf-joint"]["notes"]["C"] in (0.1, 1.0, 10.0)
    assert runs["ncm"]["examples_processed"] == 90
    # ncm keeps each class's mean: its warm-step accuracy cannot change when blue arrives...
    ncm = runs["ncm"]["matrix"]
    assert 0 <= ncm[0]["cool"] == 0.0 and runs["ncm"]["summary"]["newest_step_accuracy"] == ncm[1]["cool"]
    # ...except where blue rows now win the nearest-mean vote (it can only lose warm rows to blue)
    assert ncm[1]["warm"] <= ncm[0]["warm"]
    assert payload["summary"]["joint"]["ratio_to_joint"] == 1.0
    assert payload["summary"]["joint"]["newest_vs_joint"] == 1.0
    assert "| tfidf-joint |" in (out.parent / "colours.md").read_text()
    assert runs["naive"]["summary"]["bwt"] is not None and set(runs["default"]["per_class"]) == {"red", "green", "blue"}
    assert (out.parent / "colours.default.png").read_bytes()[:4] == b"\x89PNG"
    assert "| default |" in (out.parent / "colours.md").read_text()
    majority = payload["majority_baseline"]
    assert set(majority["per_task"]) == {"warm", "cool"} and majority["label"] in {"red", "green", "blue"}


def test_selection_on_validation_picks_a_grid_point_without_reading_the_test_rows(tmp_path, tiny_model_dir):
    out = tmp_path / "out" / "colours.json"
    result = CliRunner().invoke(app, [*_colours(tmp_path, tiny_model_dir), "--strategies", "default",
                                      "--select-on", "validation", "--grid", "train.learning_rate=1e-9,0.01",
                                      "--max-train-per-step", "50", "--max-validation-per-step", "10",
                                      "--set", "train.learning_rate=0.01", "--out", str(out)])
    assert result.exit_code == 0, result.output
    selection = json.loads((out.parent / "colours.selection.json").read_text())
    # warm's 60 training rows: 10 held out first (the cap), then 50 left to train; cool's 30: a fifth, 6
    assert selection["validation_rows"] == {"colours": [10, 6]} and selection["max_validation_per_step"] == 10
    scores = {point["overrides"]["train.learning_rate"]: point["score"] for point in selection["points"]}
    assert set(scores) == {1e-9, 0.01}
    # a learning rate of 1e-9 learns nothing: validation must prefer the other (a tie would pick 1e-9)
    assert selection["picked"] == {"train.learning_rate": 0.01} and scores[0.01] > scores[1e-9]
    # each seed's score is on record, and the loser's paired margin (one seed: no standard error)
    assert [len(point["per_seed"]) for point in selection["points"]] == [1, 1]
    (margin,) = selection["others_against_the_pick"].values()
    assert margin["difference"] == scores[1e-9] - scores[0.01] and margin["standard_error"] is None
    # the training examples each point processed are on record beside its score (the examples
    # target); the learning rate does not change them
    examples = [point["per_stream"]["colours"]["examples_processed"] for point in selection["points"]]
    assert examples[0] == examples[1] > 0
    # the point equal to the settings as given (params + --set) is found as the incumbent
    assert selection["incumbent"] == {"train.learning_rate": 0.01}
    payload = json.loads(out.read_text())
    assert payload["options"]["selected_on_validation"] and payload["options"]["overrides"] == ["train.learning_rate=0.01"] * 2
    assert payload["settings"]["train"]["learning_rate"] == 0.01
    # the record answers again through `bench pool`, against the settings it ran on and no others
    record, params = str(out.parent / "colours.selection.json"), str(tmp_path / "params.yaml")
    pooled = CliRunner().invoke(app, ["bench", "pool", record, "--params", params, "--set", "train.learning_rate=0.01"])
    assert pooled.exit_code == 0, pooled.output
    assert "picked: (params.yaml as written)" in pooled.output and "note:" not in pooled.output
    assert f"training examples: colours {examples[0]:,.0f}" in pooled.output
    # without the --set the points are still what they ran with (lr named), but not with other epochs
    named = CliRunner().invoke(app, ["bench", "pool", record, "--params", params])
    assert named.exit_code == 0 and "picked: train.learning_rate=0.01" in named.output, named.output
    other = CliRunner().invoke(app, ["bench", "pool", record, "--params", params, "--set", "train.epochs=1"])
    assert other.exit_code == 2 and "ran on other settings" in other.output


def test_selection_refuses_the_test_split_and_unknown_strategies(tmp_path, tiny_model_dir):
    args = _colours(tmp_path, tiny_model_dir)
    refused = CliRunner().invoke(app, [*args, "--select-on", "test", "--grid", "train.epochs=1,2"])
    assert refused.exit_code == 2 and "never chosen on test splits" in refused.output
    unknown = CliRunner().invoke(app, [*args, "--strategies", "naive,icarl"])
    assert unknown.exit_code == 2 and "icarl" in unknown.output


def test_selection_refuses_a_validation_cap_on_an_entity_stream(tmp_path, tiny_model_dir):
    from tests.unit.test_entity_stream import write_stream

    stream = write_stream(tmp_path, "  - {name: warm, types: [red, green]}\n  - {name: cool, types: [blue]}\n", n=40)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(tiny_model_dir)))
    refused = CliRunner().invoke(app, ["bench", "cl", "--stream-file", str(stream), "--params",
                                       str(tmp_path / "params.yaml"), "--select-on", "validation",
                                       "--grid", "train.epochs=1,2", "--max-validation-per-step", "10"])
    assert refused.exit_code == 2 and "--max-validation-per-step is for text streams" in refused.output


def test_bench_runs_an_entity_stream_in_f1_with_naive_default_and_joint(tmp_path, tiny_model_dir):
    from tests.unit.test_entity_stream import write_stream

    stream = write_stream(tmp_path, "  - {name: warm, types: [red, green]}\n  - {name: cool, types: [blue]}\n", n=40)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(tiny_model_dir)))
    out = tmp_path / "out" / "ner.json"
    result = CliRunner().invoke(app, ["bench", "cl", "--stream-file", str(stream), "--seeds", "0", "--device", "cpu",
                                      "--params", str(tmp_path / "params.yaml"), "--set", "train.epochs=1",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["task"] == "token-classification" and payload["strategies"] == ["naive", "default", "joint"]
    runs = {run["strategy"]: run for run in payload["runs"]}
    warm, cool = (step["train"] for step in payload["steps"])
    assert warm + cool + payload["test_sentences"] == 40
    assert runs["naive"]["examples_processed"] == warm + cool
    assert runs["joint"]["examples_processed"] == warm + (warm + cool)
    # the default replays earlier sentences next to cool's and counts its pseudo-labels per step
    [cool_step] = [step for step in runs["default"]["notes"]["pseudo_labels"] if step["step"] == "cool"]
    assert runs["default"]["examples_processed"] == warm + cool + cool_step["replayed"] and cool_step["replayed"] > 0
    assert cool_step["distilled_words"] > 0
    for run in runs.values():
        assert [sorted(row) for row in run["matrix"]] == [["cool", "warm"]] * 2
        assert set(run["per_class"]) == {"red", "green", "blue"}
        assert 0.0 <= run["summary"]["final_macro_f1"] <= 1.0
    assert "| naive |" in (out.with_suffix(".md")).read_text()
    refused = CliRunner().invoke(app, ["bench", "cl", "--stream-file", str(stream), "--strategies", "er",
                                       "--params", str(tmp_path / "params.yaml")])
    assert refused.exit_code == 2 and "choose from ['naive', 'default', 'joint']" in refused.output
