"""`ratchet init`: a user's own reference set, validated, written to data/ and tracked by DVC."""

import shutil
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from ratchet import dvc_repo, store
from ratchet.cli import app
from ratchet.paths import ProjectPaths
from tests.conftest import synthetic_frame

REPO = Path(__file__).resolve().parents[2]


def reference_frame():
    frame = synthetic_frame({"red": 20, "green": 20})
    return frame.assign(label=frame["label"].map({"red": "business", "green": "politics"}))


def test_init_validates_writes_and_tracks_the_reference(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    reference_frame().to_csv(tmp_path / "mine.csv", index=False)
    result = CliRunner().invoke(app, ["init", str(tmp_path / "mine.csv"), "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    paths = ProjectPaths.at(tmp_path)
    [entry] = store.read_catalog(paths)
    assert (entry.batch_id, entry.status, entry.n_train + entry.n_eval) == ("reference", "pending", 40)
    assert dvc_repo.status_clean(tmp_path)

    again = CliRunner().invoke(app, ["init", str(tmp_path / "mine.csv"), "--project", str(tmp_path)])
    assert again.exit_code == 2 and "reference set already" in again.output


def test_init_refuses_a_bad_reference_and_says_why(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    bad = reference_frame()
    bad.loc[3, "label"] = "weather"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    result = CliRunner().invoke(app, ["init", str(tmp_path / "bad.csv"), "--project", str(tmp_path)])
    assert result.exit_code == 2
    assert "label" in result.output and "outside the declared set" in result.output
    assert not (tmp_path / "data").exists()
