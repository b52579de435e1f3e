"""`ratchet serve` on loopback: a real Prefect server, process work pools `cpu` and `gpu` with their
workers, the deployments of prefect.yaml; ratchet-watch is triggered through the API on a tiny
batch and dispatches its training to the gpu pool through run_deployment."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ratchet.batch_state import BatchStates
from tests.conftest import synthetic_frame
from tests.integration.conftest import REPO, drop, project_with_champion
from tests.servers import free_port

pytestmark = pytest.mark.slow  # a real Prefect server, its work pools and workers


def _wait_for(predicate, timeout_s: float, what: str, process: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(f"ratchet serve exited ({process.returncode}) waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def test_serve_runs_watch_and_dispatches_training_to_the_gpu_pool(tmp_path, champion_template, no_tracking_server):
    paths = project_with_champion(champion_template, tmp_path / "project",
                                  {"orchestration.train_pool": "gpu", "orchestration.watch_cron": "0 3 * * *"})
    shutil.copy(REPO / "prefect.yaml", paths.root / "prefect.yaml")
    drop(paths, "01-blue.csv", synthetic_frame({"blue": 40}, seed=1, prefix="b1"), minute=1)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    log = tmp_path / "serve.log"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)
    serve = subprocess.Popen([sys.executable, "-m", "ratchet.cli", "serve", "--project", str(paths.root),
                              "--port", str(port)], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        _wait_for(lambda: "ratchet serve:" in log.read_text(), 240, "the stack to be ready", serve, log)
        client_env = {**env, "PREFECT_API_URL": api}
        run = subprocess.run([sys.executable, "-m", "prefect", "deployment", "run", "ratchet-watch/ratchet-watch",
                              "--watch", "--watch-timeout", "600"], env=client_env, text=True,
                             capture_output=True, timeout=660)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "Completed" in run.stdout

        states = {e.file: e.state for e in BatchStates(paths).current()}
        assert states["01-blue.csv"] in ("promoted", "rejected"), states
        assert states["data/reference"] == "promoted"

        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            deployments = {d.name: d for d in client.read_deployments()}
            assert set(deployments) == {"ratchet-watch", "ratchet-train", "ratchet-report"}
            watch = deployments["ratchet-watch"]
            assert watch.parameters == {"project": str(paths.root)}
            assert [s.schedule.cron for s in watch.schedules] == ["0 3 * * *"], "cron from params.yaml"
            assert deployments["ratchet-train"].work_pool_name == "gpu"
            runs = client.read_flow_runs()
            by_deployment = {}
            for flow_run in runs:
                by_deployment.setdefault(flow_run.deployment_id, []).append(flow_run.state.type.value)
            # the batch's training ran on the gpu pool, completed (the first champion came trained)
            assert by_deployment[deployments["ratchet-train"].id] == ["COMPLETED"]
            assert "COMPLETED" in by_deployment[watch.id]
            limit = client.read_global_concurrency_limit_by_name("ratchet-training")
            assert limit.limit == 1 and limit.active_slots == 0
            artifacts = client.read_artifacts()
            keys = {a.key for a in artifacts}
            batch_id = next(e.batch_id for e in BatchStates(paths).current() if e.file == "01-blue.csv")
            assert {f"batch-{batch_id}", f"drift-{batch_id}"} <= keys
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
            pytest.fail(f"ratchet serve did not stop on Ctrl-C:\n{log.read_text()[-3000:]}")
    assert serve.returncode == 0, log.read_text()[-3000:]
    assert yaml.safe_load(paths.params.read_text())["orchestration"]["train_pool"] == "gpu"
