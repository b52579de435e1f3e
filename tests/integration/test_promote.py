"""`ratchet promote`: gated unless forced, recorded either way, refused when the champion moved."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ratchet import registry, store
from ratchet.cli import app
from ratchet.config import load_settings
from tests.conftest import synthetic_frame
from tests.integration.conftest import drop, project_with_champion


@pytest.fixture(scope="module")
def project(tmp_path_factory, champion_template, prefect_harness):
    import os

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from flows.watch import watch

    # No retention on the first attempt, so the conflicting batch below surely makes it forget;
    # the feedback loop's retry switches replay and distillation on.
    paths = project_with_champion(champion_template, tmp_path_factory.mktemp("promote") / "project",
                         {"continual.replay": {"selection": "none"}, "continual.distillation": {"weight": 0.0}})
    drop(paths, "01-blue.csv", synthetic_frame({"blue": 60}, seed=1, prefix="blue"), minute=1)
    # red texts labeled blue: learning them means unlearning red, so the gate fails on forgetting
    conflict = synthetic_frame({"red": 60}, seed=4, prefix="cf").assign(label="blue")
    drop(paths, "02-red-called-blue.csv", conflict, minute=2)
    rows = {row["file"]: row for row in watch(str(paths.root))}
    assert rows["01-blue.csv"]["state"] == "promoted" and rows["02-red-called-blue.csv"]["state"] == "rejected"
    return paths, rows


def test_a_batch_that_makes_the_model_forget_is_retried_with_stronger_retention(project):
    """The feedback loop: each attempt is its own run and version; the ledger keeps every reason."""
    import mlflow

    paths, rows = project
    swapped = rows["02-red-called-blue.csv"]
    assert swapped["details"]["attempt"] == 1
    [earlier] = swapped["details"]["earlier_attempts"]
    assert earlier["attempt"] == 0 and int(earlier["version"]) == int(swapped["details"]["version"]) - 1
    assert "all 2 attempts" in swapped["reason"] and "earlier: attempt 1" in swapped["reason"]
    uri = f"sqlite:///{paths.mlflow_db}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    runs = [client.get_run(client.get_model_version("ratchet", v).run_id)
            for v in (earlier["version"], swapped["details"]["version"])]
    assert [r.data.tags["ratchet.attempt"] for r in runs] == ["0", "1"]
    assert all(r.data.tags["ratchet.batches"] == swapped["batch_id"] for r in runs)
    first, retry = (float(r.data.params["train.learning_rate"]) for r in runs)
    assert retry == first / 2, "the retry trains more gently"
    assert "lwf 2" in runs[1].data.tags["ratchet.strategy"]


def promote(paths, *args):
    return CliRunner().invoke(app, ["promote", *args, "--project", str(paths.root)])


def test_a_version_the_gate_rejects_is_refused_with_its_reasons(project):
    paths, rows = project
    settings = load_settings(paths.params)
    before = registry.champion_version(paths, settings)
    result = promote(paths, rows["02-red-called-blue.csv"]["details"]["version"], "--reason", "looks fine to me")
    assert result.exit_code == 3, result.output
    assert "refused" in result.output and "< floor 0.600" in result.output
    assert registry.champion_version(paths, settings) == before, "nothing moved"


def test_force_promotes_and_records_that_it_was_forced_then_the_gate_lets_the_good_one_back(project):
    paths, rows = project
    settings = load_settings(paths.params)
    good, bad = rows["01-blue.csv"]["details"]["version"], rows["02-red-called-blue.csv"]["details"]["version"]
    forced = promote(paths, bad, "--reason", "audit needs it live", "--force")
    assert forced.exit_code == 0, forced.output
    assert registry.champion_version(paths, settings) == bad
    assert registry.previous_version(paths, settings) == good
    history = json.loads(CliRunner().invoke(app, ["history", "--json", "--project", str(paths.root)]).output)
    assert "FORCED past the gate" in history[-1]["reason"] and "audit needs it live" in history[-1]["reason"]
    assert store.champion_manifest(paths).version == bad
    assert rows["02-red-called-blue.csv"]["batch_id"] in store.batches_with_status(paths, "trained")

    # the good version beats the forced one on the old splits: the gate lets it back
    back = promote(paths, good, "--reason", "undo the forced promotion")
    assert back.exit_code == 0, back.output
    assert registry.champion_version(paths, settings) == good
    assert rows["02-red-called-blue.csv"]["batch_id"] in store.batches_with_status(paths, "rejected")
    again = promote(paths, good, "--reason", "twice")
    assert again.exit_code == 2 and "already the champion" in again.output


def test_promotion_against_a_champion_that_moved_changes_nothing(project):
    paths, rows = project
    settings = load_settings(paths.params)
    current = registry.champion_version(paths, settings)
    with pytest.raises(registry.ChampionMoved, match="judged against v1"):
        registry.promote(paths, settings, rows["02-red-called-blue.csv"]["details"]["version"], reason="stale gate",
                         expected_champion="1")
    assert registry.champion_version(paths, settings) == current
