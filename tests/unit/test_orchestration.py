"""Prefect glue: JSON-only step results, the store that refuses anything else, retry classification."""

from __future__ import annotations

import json
import sqlite3

import pytest

from flows.orchestration import StepJSONSerializer, StepResultStorage, UnsafeResult, transient
from ratchet.attempt import EarlierAttempt, TrainingOutcome
from ratchet.intake import Arrival


def test_step_results_round_trip_as_plain_json():
    outcome = TrainingOutcome(batch_ids=["b-1"], passed=False, reason="old split dropped",
                              version="3", run_id="abc", metrics={"bwt": -0.01}, attempt=1, retry="more_retention", retries=["less_retention"],
                              earlier_attempts=[EarlierAttempt(attempt=0, version="2", run_id="r0", reason="forgot")])
    serializer = StepJSONSerializer()
    blob = serializer.dumps([outcome, Arrival(1, "b-1", "a.csv", "/x/a.csv", "received"), None])
    assert json.loads(blob)[0]["__step__"] == "TrainingOutcome"
    decoded = serializer.loads(blob)
    assert decoded == [outcome, Arrival(1, "b-1", "a.csv", "/x/a.csv", "received"), None]
    assert isinstance(decoded[0].earlier_attempts[0], EarlierAttempt)
    error = serializer.loads(serializer.dumps(ValueError("bad value")))
    assert isinstance(error, RuntimeError) and str(error) == "ValueError: bad value"


def test_results_name_only_ratchet_step_types():
    with pytest.raises(UnsafeResult, match="unknown type 'Popen'"):
        StepJSONSerializer().loads(b'{"__step__": "Popen", "data": {"args": "rm -rf /"}}')
    with pytest.raises(TypeError, match="cannot hold"):
        StepJSONSerializer().dumps(object())


def test_the_result_store_refuses_records_of_other_serializers(tmp_path):
    storage = StepResultStorage(basepath=str(tmp_path))
    ours = {"metadata": {"serializer": {"type": "ratchet-json"}}, "result": "6"}
    (tmp_path / "good").write_text(json.dumps(ours))
    assert json.loads(storage.read_path("good", _sync=True)) == ours
    pickled = {"metadata": {"serializer": {"type": "pickle", "picklelib": "cloudpickle"}}, "result": "gAR..."}
    (tmp_path / "evil").write_text(json.dumps(pickled))
    with pytest.raises(UnsafeResult, match="serializer 'pickle'"):
        storage.read_path("evil", _sync=True)
    (tmp_path / "junk").write_bytes(b"\x80\x04junk")
    with pytest.raises(UnsafeResult, match="not a ratchet result record"):
        storage.read_path("junk", _sync=True)


class _State:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def result(self):
        raise self.error


class _Task:
    name = "register (MLflow)"


@pytest.mark.parametrize("error, retried", [
    (ConnectionError("reset by peer"), True),
    (TimeoutError("read timed out"), True),
    (sqlite3.OperationalError("database is locked"), True),
    (FileNotFoundError("s3://bucket/x.csv"), True),
    (ValueError("label column empty"), False),
    (RuntimeError("CUDA out of memory"), False),
])
def test_only_transient_failures_are_retried(error, retried):
    assert transient(_Task(), None, _State(error)) is retried


def test_tracking_server_errors_are_retried_on_5xx_only():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

    unavailable = MlflowException("the tracking server is busy", error_code=TEMPORARILY_UNAVAILABLE)
    bad_request = MlflowException("metric value is not a number", error_code=INVALID_PARAMETER_VALUE)
    assert transient(_Task(), None, _State(unavailable)) is True
    assert transient(_Task(), None, _State(bad_request)) is False


def test_old_step_results_are_pruned(tmp_path):
    import os
    import time

    from flows.orchestration import prune_results

    from ratchet.paths import ProjectPaths

    results = ProjectPaths.at(tmp_path).prefect_results
    results.mkdir(parents=True)
    (results / "fresh").write_text("{}")
    (results / "stale").write_text("{}")
    month_ago = time.time() - 31 * 86400
    os.utime(results / "stale", (month_ago, month_ago))
    assert prune_results(str(tmp_path)) == 1
    assert [p.name for p in results.iterdir()] == ["fresh"]
