"""Telemetry off and hubs offline, for every tool ratchet drives. Called by entry points, not at import."""

from __future__ import annotations

import os

OFFLINE_ENVIRONMENT = {
    "DO_NOT_TRACK": "true",  # MLflow accepts only "true"
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "ratchet",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",  # core code also logs outside flows
    "TOKENIZERS_PARALLELISM": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # progress bars would fill logs and CLI output
    # Prefect's 20 s for the embedded server to come up is too short on a busy 2-core machine
    # (seen with three runs starting at once, one of them migrating a fresh database)
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def configure_offline() -> None:
    """Set the switches unless the user set them already; must run before those libraries import."""
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
