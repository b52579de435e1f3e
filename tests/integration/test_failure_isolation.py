"""No batch wedges the loop: an unexpected error ends one batch `failed` (out of data/, file kept),
the next batch is processed in the same run, and `ratchet retry` / `ratchet drop` end the story."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ratchet import dvc_repo, store
from ratchet.batch_state import BatchStates
from ratchet.cli import app
from ratchet.intake import load_batch
from ratchet.project import Project
from tests.conftest import synthetic_frame
from tests.integration.conftest import drop, make_project, project_with_champion


def cli(paths, *args):
    return CliRunner().invoke(app, [*args, "--project", str(paths.root)])


def test_a_crashing_stage_fails_its_batch_and_the_next_is_promoted_in_the_same_run(
        tmp_path, champion_template, prefect_harness, no_tracking_server, monkeypatch):
    from flows.watch import watch

    paths = project_with_champion(champion_template, tmp_path / "project")
    crashing = drop(paths, "01-crashes-prepare.csv", synthetic_frame({"blue": 40}, seed=1, prefix="c"), minute=1)
    crashing_bytes = crashing.read_bytes()
    crashing_id, _ = load_batch(crashing, Project.load(paths.root).settings)
    # the wedging batch of issue 16: JSON Lines whose text values are objects
    wedge = paths.incoming / "02-text-objects.jsonl"
    wedge.write_text("\n".join(json.dumps({"id": f"w{i}", "text": {"body": "ocean sky whale"}, "label": "blue"})
                               for i in range(30)) + "\n")
    drop(paths, "03-blue.csv", synthetic_frame({"blue": 40}, seed=3, prefix="b"), minute=3)

    monkeypatch.setenv("RATCHET_FAULT", "prepare:raise")          # prepare crashes for this batch only
    monkeypatch.setenv("RATCHET_FAULT_BATCH", crashing_id)
    rows = {r["file"]: r for r in watch(str(paths.root))}
    validating = drop(paths, "04-breaks-validation.csv", synthetic_frame({"green": 30}, seed=4, prefix="g"), minute=4)
    validating_id, _ = load_batch(validating, Project.load(paths.root).settings)
    monkeypatch.setenv("RATCHET_FAULT", "mid_validation:raise")   # a crash inside validation
    monkeypatch.setenv("RATCHET_FAULT_BATCH", validating_id)
    rows.update({r["file"]: r for r in watch(str(paths.root))})
    monkeypatch.delenv("RATCHET_FAULT")

    assert {f: r["state"] for f, r in rows.items()} == {
        "data/reference": "promoted", "01-crashes-prepare.csv": "failed", "02-text-objects.jsonl": "quarantined",
        "03-blue.csv": "promoted", "04-breaks-validation.csv": "failed"}
    failed = rows["01-crashes-prepare.csv"]
    assert "training (dvc repro, register) failed" in failed["reason"] and "prepare" in failed["reason"]
    assert "not a string" in rows["02-text-objects.jsonl"]["reason"]
    assert "validation failed: InjectedFault" in rows["04-breaks-validation.csv"]["reason"]
    # the failed batch is out of data/, its file kept; data.dvc is consistent
    assert crashing_id not in {e.batch_id for e in store.read_catalog(paths)}
    assert not paths.batch_dir(crashing_id).exists()
    assert (paths.quarantine / crashing_id / "01-crashes-prepare.csv").read_bytes() == crashing_bytes
    reason = json.loads((paths.quarantine / crashing_id / "reason.json").read_text())
    assert reason["state"] == "failed" and "InjectedFault" in reason["error"]
    assert dvc_repo.status_clean(paths.root)
    assert store.champion_manifest(paths).version == rows["03-blue.csv"]["details"]["version"]

    # `ratchet retry` puts it back in line; the next run promotes it
    retried = cli(paths, "retry", crashing_id)
    assert retried.exit_code == 0, retried.output
    assert (paths.incoming / "01-crashes-prepare.csv").read_bytes() == crashing_bytes
    rows = {r["file"]: r for r in watch(str(paths.root))}
    assert rows["01-crashes-prepare.csv"]["state"] == "promoted"
    history = [e.state for e in BatchStates(paths).events() if e.batch_id == crashing_id]
    assert history == ["received", "accepted", "failed", "received", "received", "accepted", "promoted"]

    # `ratchet drop` ends the other one for good, the file kept in quarantine/
    dropped = cli(paths, "drop", validating_id, "--reason", "labels were wrong")
    assert dropped.exit_code == 0, dropped.output
    assert (paths.quarantine / validating_id / "04-breaks-validation.csv").exists()
    last = next(e for e in BatchStates(paths).current() if e.batch_id == validating_id)
    assert last.state == "quarantined" and "dropped by hand: labels were wrong" in last.reason
    again = cli(paths, "retry", validating_id)
    assert again.exit_code == 2 and "not failed" in again.output
    assert dvc_repo.status_clean(paths.root)


def test_validate_gives_the_verdict_without_processing(tmp_path, tiny_model_dir):
    paths = make_project(tmp_path / "project", tiny_model_dir)
    good = tmp_path / "good.csv"
    synthetic_frame({"blue": 20}, seed=1, prefix="v").to_csv(good, index=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps({"id": str(i), "text": ["a", "list"] if i == 5 else "sky ocean whale",
                                         "label": "blue"}) for i in range(20)) + "\n")
    assert cli(paths, "validate", str(good)).exit_code == 0
    result = cli(paths, "validate", str(good), str(bad), "--json")
    assert result.exit_code == 1
    verdicts = {v["file"]: v for v in json.loads(result.stdout)}
    assert verdicts[str(good)]["passed"] and not verdicts[str(bad)]["passed"]
    [typed] = [f for f in verdicts[str(bad)]["failures"] if f["check"] == "expect_column_values_to_be_of_type"]
    assert typed["column"] == "text" and typed["rows"] == [5]
    assert good.exists() and bad.exists() and not paths.state_db.exists(), "nothing processed"


def test_the_ledger_exports_as_json_lines(tmp_path, tiny_model_dir):
    from ratchet.batch_state import BatchState

    paths = make_project(tmp_path / "project", tiny_model_dir)
    BatchStates(paths).move(1, "b-1", "one.csv", BatchState.RECEIVED, "read")
    result = cli(paths, "ledger")
    assert result.exit_code == 0, result.output
    [event] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (event["arrival"], event["batch_id"], event["state"], event["reason"]) == (1, "b-1", "received", "read")
