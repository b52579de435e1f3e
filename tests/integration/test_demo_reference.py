"""The committed data.dvc must be satisfiable on a fresh clone: the demo rebuilds data/ byte for byte."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import yaml

from ratchet import demo, dvc_repo
from ratchet.paths import ProjectPaths

REPO = Path(__file__).resolve().parents[2]


def committed_data_md5() -> str:
    """data.dvc's md5 as committed (HEAD), not as the working tree holds it: `make demo` moves the
    working tree's data.dvc forward, and `make test` must pass after it."""
    shown = subprocess.run(["git", "show", "HEAD:data.dvc"], cwd=REPO, capture_output=True, text=True)
    text = shown.stdout if shown.returncode == 0 else (REPO / "data.dvc").read_text()   # not a git checkout
    return yaml.safe_load(text)["outs"][0]["md5"]


def test_demo_reference_matches_the_committed_data_dvc(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc_repo.init(tmp_path)
    reference, _ = demo.build_stream()
    demo.build_reference(ProjectPaths.at(tmp_path), reference)
    assert dvc_repo.add(tmp_path) == committed_data_md5()


def test_demo_stream_tells_its_story():
    reference, files = demo.build_stream()
    assert sorted(reference["label"].unique()) == ["business", "politics"]
    assert [f.name for f in demo.DEMO_FILES] == list(files)
    assert set(files["02-new-topics-tech-sport.csv"]["label"]) == {"tech", "sport"}
    assert set(files["03-new-topic-entertainment.jsonl"]["label"]) == {"entertainment"}
    malformed = files["04-malformed.csv"]
    assert "weather" in set(malformed["label"]) and (malformed["text"] == "").any()
    assert malformed["id"].duplicated().any()
    assert "label" not in files["05-missing-label-column.csv"].columns
    shuffled = files["06-shuffled-labels.csv"]
    truth = shuffled["id"].str.split("-").str[1]
    assert (truth != shuffled["label"]).mean() > 0.6, "most shuffled labels are wrong"
    ids = pd.concat([reference["id"]] + [f["id"] for n, f in files.items() 
                     if n not in ("04-malformed.csv", "07-tech-sport-resent.csv")])
    assert ids.is_unique, "no article is used twice"
    assert files["07-tech-sport-resent.csv"].equals(files["02-new-topics-tech-sport.csv"])
