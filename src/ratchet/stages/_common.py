"""What every stage does first: find the project (the working directory dvc runs it in) and its settings."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ratchet.config import Settings, load_settings
from ratchet.offline import configure_offline
from ratchet.paths import ProjectPaths


def start(stage: str) -> tuple[ProjectPaths, Settings]:
    configure_offline()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {stage}: %(message)s", stream=sys.stderr)
    paths = ProjectPaths.at(Path.cwd())
    return paths, load_settings(paths.params)
