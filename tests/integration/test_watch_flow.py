"""The real loop: Prefect flow, Great Expectations, Evidently, DVC repro, MLflow sqlite, tiny BERT."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ratchet import dvc_repo
from ratchet.batch_state import BatchStates
from ratchet.status import project_status
from tests.conftest import synthetic_frame
from tests.integration.conftest import drop, project_with_champion


@pytest.fixture(scope="module")
def finished_project(tmp_path_factory, champion_template, prefect_harness):
    import os

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from flows.watch import watch

    paths = project_with_champion(champion_template, tmp_path_factory.mktemp("project") / "project")
    blue = synthetic_frame({"blue": 60}, seed=1, prefix="blue")
    drop(paths, "01-blue.csv", blue, minute=1)
    drop(paths, "02-no-text.csv", synthetic_frame({"red": 20}, seed=2, prefix="nt").drop(columns="text"), minute=2)
    drop(paths, "03-blue-again.jsonl", blue, minute=3)
    swapped = synthetic_frame({"red": 30, "green": 30}, seed=4, prefix="sw")
    swapped["label"] = swapped["label"].map({"red": "green", "green": "red"})
    drop(paths, "04-swapped.parquet", swapped, minute=4)
    # entries that are not batches: listed as ignored, left where they are, never read
    (paths.incoming / "notes.txt").write_text("not a batch")
    (paths.incoming / "folder.csv").mkdir()
    outside = paths.root.parent / "outside-secret.csv"
    synthetic_frame({"red": 20}, seed=9, prefix="secret").to_csv(outside, index=False)
    (paths.incoming / "05-link.csv").symlink_to(outside)
    rows = watch(str(paths.root))
    return paths, rows


def project_client(paths):
    """A client on the project's own sqlite store (set_tracking_uri would leak into the environment)."""
    import mlflow

    uri = f"sqlite:///{paths.mlflow_db}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def by_file(status: dict) -> dict[str, dict]:
    return {b["file"]: b for b in status["batches"]}


def test_every_batch_ends_in_the_expected_terminal_state(finished_project):
    paths, rows = finished_project
    states = {row["file"]: row["state"] for row in rows}
    assert states == {"data/reference": "promoted", "01-blue.csv": "promoted", "02-no-text.csv": "quarantined",
                      "03-blue-again.jsonl": "duplicate", "04-swapped.parquet": "rejected"}
    left = sorted(p.name for p in paths.incoming.iterdir())
    assert left == ["05-link.csv", "folder.csv", "notes.txt"], "every batch file is moved beside its outcome"


def test_champion_alias_points_at_the_last_passing_candidate(finished_project):
    paths, _ = finished_project
    status = project_status(paths)
    batches = by_file(status)
    client = project_client(paths)
    champion = client.get_model_version_by_alias("ratchet", "champion")
    assert str(champion.version) == batches["01-blue.csv"]["version"] == status["champion"]["version"]
    assert str(client.get_model_version_by_alias("ratchet", "previous").version) == batches["data/reference"]["version"]
    rejected = client.get_model_version("ratchet", batches["04-swapped.parquet"]["version"])
    assert rejected.tags["ratchet.gate"] == "rejected"
    assert "champion" not in (rejected.aliases or [])
    assert status["champion"]["trained_batches"] == ["reference", batches["01-blue.csv"]["batch_id"]]


def test_each_attempt_is_a_run_with_evidence_and_inputs(finished_project):
    paths, _ = finished_project
    client = project_client(paths)
    swapped = by_file(project_status(paths))["04-swapped.parquet"]
    run = client.get_run(client.get_model_version("ratchet", swapped["version"]).run_id)
    assert run.data.tags["ratchet.batches"] == swapped["batch_id"]
    assert run.data.metrics["gate_passed"] == 0.0
    artifacts = {a.path for folder in ("metrics", "drift", "validation")
                 for a in client.list_artifacts(run.info.run_id, f"evidence/{folder}")}
    assert run.info.artifact_uri.startswith(paths.mlflow_artifacts.as_uri()), "artifacts stay in the project"
    assert {"evidence/metrics/gate.json", "evidence/metrics/eval.json", f"evidence/drift/{swapped['batch_id']}.html",
            f"evidence/drift/{swapped['batch_id']}.json", f"evidence/validation/{swapped['batch_id']}.json"} <= artifacts
    digests = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    train_file = paths.batch_dir(swapped["batch_id"]) / "train.parquet"
    assert digests[f"{swapped['batch_id']}/train"] == dvc_repo.file_md5(train_file)
    assert "reference/eval" in digests


def test_quarantine_holds_the_file_the_reason_and_the_ge_result(finished_project):
    paths, _ = finished_project
    batch = by_file(project_status(paths))["02-no-text.csv"]
    folder = paths.quarantine / batch["batch_id"]
    assert (folder / "02-no-text.csv").exists()
    reason = json.loads((folder / "reason.json").read_text())
    assert "required column 'text' is missing" in reason["reason"]
    assert reason["failures"][0] == {**reason["failures"][0], "check": "expect_column_to_exist", "column": "text"}
    assert json.loads((folder / "ge_result.json").read_text())["success"] is False


def test_gate_file_explains_the_rejection(finished_project):
    paths, _ = finished_project
    gate = json.loads(paths.gate_result.read_text())
    assert gate["passed"] is False
    failing = [c for c in gate["checks"] if not c["passed"]]
    assert failing and gate["checks"][: len(failing)] == failing
    for check in gate["checks"]:
        assert {"name", "split", "value", "threshold", "passed", "reason"} <= set(check)


def test_data_is_versioned_and_reports_are_written(finished_project):
    paths, _ = finished_project
    assert dvc_repo.status_clean(paths.root)
    batches = by_file(project_status(paths))
    blue_id = batches["01-blue.csv"]["batch_id"]
    assert (paths.drift_reports / f"{blue_id}.html").exists()
    drift = json.loads((paths.drift_reports / f"{blue_id}.json").read_text())
    assert drift["severity"] == "high" and drift["new_labels"] == ["blue"]
    assert drift["champion"]["key"].startswith("v1:")  # compared in the first champion's own space
    assert drift["calibration"]["draws"] > 0 and 0 <= drift["calibration"]["false_alarm_rate"] <= 1
    assert json.loads((paths.drift_reports / f"{blue_id}.evidently.json").read_text())["metrics"]
    client = project_client(paths)
    experiment = client.get_experiment_by_name("ratchet")
    [run] = client.search_runs([experiment.experiment_id], f"tags.`ratchet.batch` = '{blue_id}'")
    assert run.data.tags["ratchet.kind"] == "drift" and run.data.tags["ratchet.drift.severity"] == "high"
    assert run.data.metrics["drift.accuracy.fired"] == 1.0
    assert {a.path for a in client.list_artifacts(run.info.run_id, "drift")} == {
        f"drift/{blue_id}.html", f"drift/{blue_id}.json"}
    assert (paths.archive / blue_id / "01-blue.csv").exists()
    assert (paths.archive / blue_id / "duplicates").is_dir()
    train = pd.read_parquet(paths.batch_dir(blue_id) / "train.parquet")
    assert set(train["label"]) == {"blue"}


def test_status_json_follows_the_contract(finished_project):
    from ratchet.cli import app

    paths, _ = finished_project
    result = CliRunner().invoke(app, ["status", "--json", "--project", str(paths.root)])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert set(status) == {"champion", "batches", "ignored"}
    ignored = {entry["file"]: entry["reason"] for entry in status["ignored"]}
    assert set(ignored) == {"05-link.csv", "folder.csv", "notes.txt"}
    assert "symbolic link" in ignored["05-link.csv"] and "folder" in ignored["folder.csv"]
    assert "unsupported file type '.txt'" in ignored["notes.txt"]
    assert not any(b["file"] == "05-link.csv" for b in status["batches"]), "a link is never read"
    text = CliRunner().invoke(app, ["status", "--project", str(paths.root)]).output
    assert "ignored" in text and "incoming/notes.txt" in text
    assert status["champion"]["version"]
    for batch in status["batches"]:
        assert {"batch_id", "file", "state", "reason", "metrics"} <= set(batch)
    promoted = by_file(status)["01-blue.csv"]
    assert promoted["metrics"]["new_split_accuracy"] >= 0.6
    assert promoted["drift"]["severity"] == "high" and promoted["drift"]["report"].endswith(".html")
    assert by_file(status)["02-no-text.csv"]["drift"] is None  # quarantined before the drift step


def test_champion_loads_offline_as_a_pyfunc_and_predicts(finished_project, monkeypatch):
    import mlflow

    paths, _ = finished_project
    uri = f"sqlite:///{paths.mlflow_db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # restored after the test
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/ratchet@champion")
    texts = synthetic_frame({"blue": 3, "red": 3}, seed=9, prefix="serve")
    out = model.predict(texts[["text"]])
    assert list(out.columns) == ["label", "probabilities"]
    assert set(out["label"]) <= {"red", "green", "blue"}
    for probabilities in out["probabilities"]:
        assert abs(sum(probabilities.values()) - 1.0) < 1e-4
    accuracy = (out["label"] == texts["label"]).mean()
    assert accuracy >= 0.5, "the served champion is the trained model, not a fresh one"


def test_each_batch_has_a_markdown_summary(finished_project):
    from ratchet.summary import batch_markdown

    paths, rows = finished_project
    swapped = next(r for r in rows if r["file"] == "04-swapped.parquet")
    text = batch_markdown(paths, swapped["arrival"])
    assert text.startswith("# 04-swapped.parquet: **rejected**")
    assert "| **no** |" in text.split("| check |")[1].splitlines()[2], "failing checks come first"
    assert "- validation (Great Expectations): passed" in text
    assert "- drift verdict: **" in text
    assert "| new_split_accuracy |" in text, "the batch's metrics table"
    assert "**gate: rejected, " in text and text.index("**gate: rejected") < text.index("| check |")
    quarantined = next(r for r in rows if r["state"] == "quarantined")
    quarantined_text = batch_markdown(paths, quarantined["arrival"])
    assert "reason.json" in quarantined_text
    assert "- validation (Great Expectations): **failed** (expect_column_to_exist" in quarantined_text


def test_history_records_every_alias_move(finished_project):
    from ratchet.cli import app

    paths, _ = finished_project
    batches = by_file(project_status(paths))
    result = CliRunner().invoke(app, ["history", "--json", "--project", str(paths.root)])
    assert result.exit_code == 0, result.output
    events = json.loads(result.output)
    first, second = batches["data/reference"]["version"], batches["01-blue.csv"]["version"]
    moves = [(e["alias"], e["from_version"], e["to_version"]) for e in events]
    assert moves == [("champion", None, first), ("previous", None, first), ("champion", first, second)]
    assert events[-1]["run_id"] == project_status(paths)["champion"]["run_id"]
    assert "passed all" in events[-1]["reason"]


def test_predict_uses_the_champion(finished_project):
    from ratchet.cli import app

    paths, _ = finished_project
    text = " ".join(["ocean", "whale", "the", "sky", "of", "lagoon", "navy", "harbor"])
    result = CliRunner().invoke(app, ["predict", text, "--project", str(paths.root)])
    assert result.exit_code == 0, result.output
    assert "blue" in result.output.split("(")[0]
    assert f"champion v{project_status(paths)['champion']['version']}" in result.output
    as_json = CliRunner().invoke(app, ["predict", text, "--json", "--project", str(paths.root)])
    [answer] = json.loads(as_json.stdout)
    assert answer["label"] == "blue" and answer["probabilities"]["blue"] == max(answer["probabilities"].values())
    assert answer["champion"] == project_status(paths)["champion"]["version"]


def test_lineage_walks_back_to_the_base_model(finished_project):
    from ratchet.cli import app

    paths, _ = finished_project
    status = project_status(paths)
    result = CliRunner().invoke(app, ["lineage", status["champion"]["version"], "--json", "--project", str(paths.root)])
    assert result.exit_code == 0, result.output
    chain = json.loads(result.output)
    batches = by_file(status)
    assert [link["version"] for link in chain] == [batches["01-blue.csv"]["version"], batches["data/reference"]["version"]]
    assert [link["batches"] for link in chain] == [batches["01-blue.csv"]["batch_id"], "reference"]
    assert chain[-1]["parent_version"] == "base"
    newest = chain[0]
    assert "champion" in newest["aliases"]
    assert len(newest["base_model_sha256"]) == 64 and len(newest["params_sha256"]) == 64
    assert set(json.loads(newest["eval_md5"])) == {"reference", batches["01-blue.csv"]["batch_id"]}
    assert newest["attempt"] == "0" and newest["strategy"].startswith("full + replay class_balanced")
    missing = CliRunner().invoke(app, ["lineage", "99", "--project", str(paths.root)])
    assert missing.exit_code == 2 and "no version 99" in missing.output


@pytest.mark.slow
def test_champion_is_served_over_http_on_loopback(finished_project):
    """`mlflow models serve -m models:/ratchet@champion --env-manager local` answers /invocations."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    paths, _ = finished_project
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # mlflow execs `uvicorn` by name: the virtualenv's bin must be on PATH (as when it is activated)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{paths.mlflow_db}",
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/ratchet@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server did not start: {server.stderr.read()[-2000:]}") from None
                time.sleep(1)
        body = json.dumps({"dataframe_split": {"columns": ["text"], "data": [
            ["ocean whale the sky of lagoon navy harbor"], ["apple cherry the fire of rose ruby brick"]]}})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    from ratchet import modeling
    from ratchet.config import load_settings

    local = modeling.load_classifier(paths.champion, load_settings(paths.params).model)
    texts = ["ocean whale the sky of lagoon navy harbor", "apple cherry the fire of rose ruby brick"]
    assert [p["label"] for p in predictions] == local.predict(texts), "the server answers with the champion"
    expected = local.predict_proba(texts)
    for row, served in zip(expected, predictions):
        assert abs(sum(served["probabilities"].values()) - 1.0) < 1e-4
        for label, value in zip(local.labels, row):
            assert abs(served["probabilities"][label] - float(value)) < 1e-4


def test_replay_buffer_follows_the_champion_with_lineage(finished_project):
    paths, _ = finished_project
    status = by_file(project_status(paths))
    blue_id = status["01-blue.csv"]["batch_id"]
    buffer = pd.read_parquet(paths.replay_buffer / "buffer.parquet")
    # the promoted batch entered the buffer; the rejected (swapped) one never did
    assert set(buffer["batch_id"]) == {"reference", blue_id}
    assert set(buffer.loc[buffer["batch_id"] == blue_id, "entered_at"]) == {1}
    assert buffer["reason"].str.startswith("class_balanced").all()
    assert dvc_repo.status_clean(paths.root), "data/replay is part of the DVC-tracked data/"


def test_forgetting_metrics_and_plots_are_written(finished_project):
    paths, _ = finished_project
    increments = pd.read_csv(paths.increments_plot)
    assert increments["model"].tolist()[-1] == "candidate" and len(increments) == 3   # v1, v2, rejected candidate
    assert increments["average_accuracy"].between(0, 1).all()
    assert paths.accuracy_heatmap.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    evaluation = json.loads(paths.eval_metrics.read_text())
    per_class = next(iter(evaluation["splits"].values()))["candidate"]["per_class"]
    assert set(next(iter(per_class.values()))) == {"precision", "recall", "f1", "support"}


def test_swapped_labels_show_as_a_drop_in_the_champions_accuracy(finished_project):
    paths, _ = finished_project
    swapped_id = by_file(project_status(paths))["04-swapped.parquet"]["batch_id"]
    drift = json.loads((paths.drift_reports / f"{swapped_id}.json").read_text())
    accuracy = {s["key"]: s for s in drift["signals"]}["accuracy"]
    # Same texts, same label mix: only a model-aware signal can see that the labels now disagree.
    assert accuracy["fired"] and drift["severity"] == "high", drift["reasons"]
    assert drift["champion"]["batch_accuracy"] < drift["champion"]["reference_accuracy"] - 0.3
    assert not drift["new_labels"]


def _chromium() -> str:
    import os
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("RATCHET_REQUIRE_BROWSER", "").lower() in ("1", "true", "yes"):
            pytest.fail("RATCHET_REQUIRE_BROWSER is set but no chromium is on PATH")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def render(url: str, tmp_path) -> str:
    """The DOM after the page's scripts ran, from a real headless Chromium (no network, fresh profile)."""
    import subprocess

    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000", "--dump-dom", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_reviewer_report_renders_in_a_real_browser(finished_project, tmp_path):
    paths, _ = finished_project
    blue_id = by_file(project_status(paths))["01-blue.csv"]["batch_id"]
    dom = render((paths.drift_reports / f"{blue_id}.html").resolve().as_uri(), tmp_path)
    assert 'id="ratchet-verdict"' in dom and "verdict: high" in dom
    assert "labels the champion never learned: blue" in dom
    # Evidently's widgets exist only once its scripts have run (the file itself holds none).
    assert dom.count('class="Mui') > 20
    index = render((paths.drift_reports / "index.html").resolve().as_uri(), tmp_path)
    assert f"{blue_id}.html" in index and "ratchet-index" in index and "01-blue.csv" in index


def test_reviewers_preview_a_batch_without_processing_it(finished_project, tmp_path):
    from flows.watch import report
    from ratchet.cli import app

    paths, _ = finished_project
    before = BatchStates(paths).events()
    waiting = drop(paths, "05-green-preview.csv", synthetic_frame({"green": 30}, seed=9, prefix="pv"), minute=9)
    invalid = tmp_path / "no-label.csv"
    synthetic_frame({"red": 20}, seed=10, prefix="nl").drop(columns="label").to_csv(invalid, index=False)
    try:
        result = CliRunner().invoke(app, ["drift", str(waiting), "--json", "--project", str(paths.root)])
        assert result.exit_code == 0, result.output
        [preview] = json.loads(result.output[result.output.index("[\n"):])  # after any log lines
        assert preview["severity"] in {"none", "low", "medium", "high"} and not preview["new_labels"]
        assert (paths.drift_reports / f"{preview['batch_id']}.html").exists()
        refused = CliRunner().invoke(app, ["drift", str(invalid), "--project", str(paths.root)])
        assert refused.exit_code == 2 and "'label'" in refused.output
        rows = report(str(paths.root))
        assert [r["file"] for r in rows] == ["05-green-preview.csv"]
        assert waiting.exists() and BatchStates(paths).events() == before, "previews move and record nothing"
    finally:
        waiting.unlink(missing_ok=True)
