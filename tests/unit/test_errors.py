"""Whose fault an error is: transient (resume later) or the batch's (it ends `failed`)."""

import errno
import sqlite3

import requests
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

from ratchet.errors import is_retryable_io, is_transient
from ratchet.failure import should_isolate


def test_the_network_and_the_tracking_server_are_transient_bad_data_is_not():
    for error in (ConnectionError("reset"), TimeoutError(), requests.ConnectionError("refused"),
                  MlflowException("API request failed: Max retries exceeded"),
                  MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE)):
        assert is_transient(error) and not should_isolate(error), error
    for error in (ValueError("cannot mix struct and non-struct"), KeyError("text"), MlflowException("bad", error_code=INVALID_PARAMETER_VALUE),
                  OSError(errno.ENOSPC, "No space left on device")):
        assert not is_transient(error) and should_isolate(error), error
    assert not should_isolate(KeyboardInterrupt()), "a person stopping the run is not a batch failure"


def test_storage_errors_are_retried_by_the_step_before_anyone_decides():
    assert is_retryable_io(OSError(errno.EIO, "I/O error")) and is_retryable_io(sqlite3.OperationalError("locked"))
    assert not is_retryable_io(ValueError("bad rows"))
