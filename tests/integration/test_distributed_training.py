"""The train stage under torchrun: 2 data-parallel workers (gloo on CPU) reach what 1 process
reaches, on a real continual increment (replay, class-balanced weights, logit and feature distillation)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from ratchet import atomic, dvc_repo
from ratchet.batch_state import BatchStates
from tests.conftest import synthetic_frame
from tests.integration.conftest import drop, project_with_champion

pytestmark = pytest.mark.slow  # torchrun's worker processes

# Stated tolerance: the workers add the same numbers in a different order (float32), nothing more.
LOSS_TOLERANCE = 1e-3
ACCURACY_TOLERANCE = 0.0  # on these eval splits no prediction changes


def _stage(root, name: str) -> None:
    done = subprocess.run([sys.executable, "-m", f"ratchet.stages.{name}"], cwd=root, env=dvc_repo._environment(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


def _train_and_evaluate(paths, processes: int) -> tuple[dict, dict]:
    params = yaml.safe_load(paths.params.read_text())
    params["train"]["processes"] = processes
    paths.params.write_text(yaml.safe_dump(params, sort_keys=False))
    _stage(paths.root, "train")
    _stage(paths.root, "evaluate")
    return atomic.read_json(paths.train_metrics), atomic.read_json(paths.eval_metrics)


def test_two_ddp_workers_match_one_process(tmp_path, champion_template, prefect_harness, no_tracking_server):
    from flows.watch import watch

    # the batch waits (offline policy) so that only the stages below train on it
    paths = project_with_champion(
        champion_template, tmp_path / "project",
        {"policy.train_on": "min_new_examples", "policy.min_new_examples": 10_000,
         # on the replayed rows only: its per-batch mean must split across workers exactly
         "continual.distillation.feature_weight": 0.5,
         # its held-out rows and fitted offsets must be the same on every worker (whatever params.yaml says)
         "continual.bias_correction.enabled": True})
    drop(paths, "01-blue.csv", synthetic_frame({"blue": 50}, seed=1, prefix="b1"), minute=1)
    watch(str(paths.root))
    assert {e.file: e.state for e in BatchStates(paths).current()}["01-blue.csv"] == "accumulated"
    dvc_repo.run_dvc(paths.root, "repro", "prepare", capture=True)

    single_train, single_eval = _train_and_evaluate(paths, processes=1)
    ddp_train, ddp_eval = _train_and_evaluate(paths, processes=2)

    assert single_train["processes"] == 1 and ddp_train["processes"] == 2
    assert single_train["n_replay"] > 0, "the increment replays old rows (weighted loss, distillation)"
    # blue is new to the champion: 5 of its rows fit the bias correction, on every worker alike
    assert single_train["held_out_new"] == ddp_train["held_out_new"] == 5
    assert set(single_train["bias_offsets"]) == set(ddp_train["bias_offsets"]) == {"blue"}
    assert abs(single_train["bias_offsets"]["blue"] - ddp_train["bias_offsets"]["blue"]) <= 0.05
    assert ddp_train["steps"] == single_train["steps"], "the global batch is split, not multiplied"
    assert abs(ddp_train["final_loss"] - single_train["final_loss"]) <= LOSS_TOLERANCE, (single_train, ddp_train)
    for name, split in single_eval["splits"].items():
        other = ddp_eval["splits"][name]["candidate"]["accuracy"]
        assert abs(other - split["candidate"]["accuracy"]) <= ACCURACY_TOLERANCE, (name, split, other)
