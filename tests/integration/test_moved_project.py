"""A project folder can be moved or renamed: MLflow's stored locations follow it, nothing else
needs them (DVC and the state store use relative paths)."""

from __future__ import annotations

import sqlite3

from ratchet import dvc_repo, registry
from ratchet.batch_state import BatchStates
from ratchet.config import load_settings
from tests.integration.conftest import project_with_champion


def stored_locations(db) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [row[0] for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                                             ("model_versions", "storage_location"))
                for row in connection.execute(f"SELECT {column} FROM {table}") if row[0]]


def test_a_moved_project_finds_its_models_and_leaves_the_original_alone(tmp_path, champion_template,
                                                                         no_tracking_server):
    before = stored_locations(champion_template / "mlflow.db")
    paths = project_with_champion(champion_template, tmp_path / "renamed" / "elsewhere")
    settings = load_settings(paths.params)
    assert registry.champion_version(paths, settings) == "1"
    model_dir, manifest = registry.download_champion(paths, settings, "1", tmp_path / "scratch")
    assert (model_dir / "model.safetensors").exists() and manifest.version == "1"
    moved = stored_locations(paths.mlflow_db)
    assert moved and all(str(champion_template) not in location for location in moved)
    assert any(str(paths.root) in location for location in moved)
    assert stored_locations(champion_template / "mlflow.db") == before, "the original is untouched"
    assert [e.state for e in BatchStates(paths).current()] == ["promoted"]
    assert dvc_repo.status_clean(paths.root)
