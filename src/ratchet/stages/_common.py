"""What every stage does first: find the project (the working directory dvc runs it in) and its settings."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

from ratchet.attempt_plan import read_attempt
from ratchet.config import Settings, load_settings
from ratchet.offline import configure_offline
from ratchet.paths import ProjectPaths


def start(stage: str) -> tuple[ProjectPaths, Settings]:
    configure_offline()
    # Deprecation notices of the pinned libraries are not the user's concern in a stage log.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # messages name their stage themselves ("train: ..."), so the format does not repeat it
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    paths = ProjectPaths.at(Path.cwd())
    plan = read_attempt(paths.attempt)
    if plan.attempt:
        logging.getLogger("ratchet").info("%s: feedback-loop retry %d: %s", stage, plan.attempt,
                                          " then ".join(kind.replace("_", " ") for kind in plan.retries))
    settings = load_settings(paths.params)
    return paths, settings.for_retries(plan.retries)
