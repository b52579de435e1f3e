"""`ratchet bench cl` end to end on a tiny stream: the accuracy matrix, the cost accounting, the files."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from ratchet.cli import app
from tests.conftest import synthetic_frame
from tests.integration.conftest import tiny_params


def test_bench_runs_a_stream_file_and_accounts_for_every_training_example(tmp_path, tiny_model_dir):
    frame = synthetic_frame({"red": 40, "green": 40, "blue": 40}, seed=3)
    frame.to_csv(tmp_path / "colours.csv", index=False)
    (tmp_path / "stream.yaml").write_text("""
name: colours
labels: [red, green, blue]
sources: [{file: colours.csv, text: text, label: label}]
steps:
  - {name: warm, where: {column: label, in: [red, green]}}
  - {name: cool, where: {column: label, in: [blue]}}
test: {fraction: 0.25}
""")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(tiny_model_dir)))
    out = tmp_path / "out" / "colours.json"
    result = CliRunner().invoke(app, ["bench", "cl", "--stream-file", str(tmp_path / "stream.yaml"),
                                      "--strategies", "naive,default,joint", "--seeds", "0", "--device", "cpu",
                                      "--params", str(tmp_path / "params.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    runs = {run["strategy"]: run for run in payload["runs"]}
    assert [len(row) for row in runs["naive"]["matrix"]] == [2, 2], "every task after every step"
    epochs = payload["settings"]["train"]["epochs"]
    # 60 warm + 30 cool training rows; joint retrains on everything seen at each step
    assert runs["naive"]["examples_processed"] == (60 + 30) * epochs
    assert runs["joint"]["examples_processed"] == (60 + 90) * epochs
    # the default holds 5 blue rows out for bias correction and replays 14 rows of each old class
    assert runs["default"]["examples_processed"] == (60 + (30 - 5) + 2 * 14) * epochs
    assert payload["summary"]["joint"]["ratio_to_joint"] == 1.0
    assert runs["naive"]["summary"]["bwt"] is not None and set(runs["default"]["per_class"]) == {"red", "green", "blue"}
    assert (out.parent / "colours.default.png").read_bytes()[:4] == b"\x89PNG"
    assert "| default |" in (out.parent / "colours.md").read_text()
    majority = payload["majority_baseline"]
    assert set(majority["per_task"]) == {"warm", "cool"} and majority["label"] in {"red", "green", "blue"}
