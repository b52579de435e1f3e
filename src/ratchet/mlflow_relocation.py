"""A project folder that was moved or renamed: its MLflow store follows it.

MLflow's sqlite store keeps absolute artifact locations (file:///old/root/mlartifacts/...) in its
experiments, runs, logged models, model versions and dataset sources. The experiment's location is
the project's mlartifacts/ as it was when the store was created, so it tells the old root; if that
is not the project's root now, every stored location under the old root is rewritten to the new one
(one transaction), before MLflow opens the store.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

log = logging.getLogger("ratchet")

ARTIFACTS_FOLDER = "mlartifacts"
LOCATION_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                    ("logged_models", "artifact_location"), ("model_versions", "storage_location"),
                    ("model_versions", "source"), ("datasets", "dataset_source"))


def follow_moved_project(db: Path, root: Path) -> int:
    """Point every stored location under the store's old project root at `root`; returns the
    number of records changed (0 when the project did not move)."""
    if not db.exists():
        return 0
    new_root = root.resolve()
    with sqlite3.connect(db) as connection:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "experiments" not in tables:
            return 0
        old_root = None
        for (location,) in connection.execute("SELECT artifact_location FROM experiments"):
            parsed = urlparse(location or "")
            path = Path(unquote(parsed.path))
            if parsed.scheme == "file" and path.name == ARTIFACTS_FOLDER:
                old_root = path.parent
                break
        if old_root is None or old_root == new_root:
            return 0
        changed = 0
        # URIs first (file:///old%20root), then plain paths (dataset sources)
        for old, new in ((old_root.as_uri(), new_root.as_uri()), (str(old_root), str(new_root))):
            for table, column in LOCATION_COLUMNS:
                if table not in tables:
                    continue
                cursor = connection.execute(
                    f"UPDATE {table} SET {column} = replace({column}, ?, ?) WHERE instr({column}, ?) > 0",  # noqa: S608
                    (old, new, old))
                changed += cursor.rowcount
    log.warning("mlflow store: the project moved from %s to %s; %d stored location(s) now point at the new place",
                old_root, new_root, changed)
    return changed
