"""Which errors are whose fault: the environment's for a moment (retry, resume later) or the batch's.

Used by the orchestration (which task failures to retry) and by failure isolation (which errors end
a batch `failed`): one classification for both.
"""

from __future__ import annotations

import sqlite3


def is_transient(error: BaseException) -> bool:
    """The network or the tracking server was away: not the batch's fault, worth trying again later."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    try:
        import requests

        if isinstance(error, (requests.ConnectionError, requests.Timeout)):
            return True
    except ImportError:  # pragma: no cover - requests comes with MLflow
        pass
    if type(error).__name__ in {"MlflowException", "RestException"}:
        status = getattr(error, "get_http_status_code", lambda: 0)()
        text = str(error).lower()
        return status >= 500 or "max retries exceeded" in text or "connection" in text
    return False


def is_retryable_io(error: BaseException) -> bool:
    """Transient, or an I/O error of storage (a busy sqlite file, a flaky mount): retry the step."""
    return is_transient(error) or isinstance(error, (OSError, sqlite3.OperationalError))
