"""The entity demo's project and stream: params for a token project, dvc.yaml pointing at this
repository's code, batches that bring new types, a malformed batch that validation names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ratchet import demo_ner
from ratchet.config import parse_settings
from ratchet.entities.sentences import read_sentences
from ratchet.entities.tags import entity_types_in
from ratchet.entities.validation import validate_sentences
from ratchet.paths import ProjectPaths

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def test_the_demo_params_are_the_repository_params_set_for_a_token_project():
    params = yaml.safe_load(demo_ner.ner_params_text(REPO / "params.yaml"))
    settings = parse_settings(params)
    assert settings.task == "token-classification" and len(settings.data.entity_types) == 10
    assert (settings.train.epochs, settings.train.learning_rate) == (10, 0.003)
    repository = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(params) == set(repository), "every group dvc.yaml names must be there"


def test_the_demo_dvc_yaml_points_its_code_deps_at_this_repository(tmp_path):
    project = tmp_path / "demo-ner"
    project.mkdir()
    pipeline = yaml.safe_load(demo_ner.project_dvc_yaml(REPO, project))
    original = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for name, stage in pipeline["stages"].items():
        assert len(stage["deps"]) == len(original["stages"][name]["deps"])
        for dep in stage["deps"]:
            if "ratchet" in dep:
                assert (project / dep).resolve().exists(), dep
            else:
                assert dep in original["stages"][name]["deps"]


def test_each_batch_brings_new_types_and_the_malformed_one_fails_by_sentence(tmp_path):
    reference, files = demo_ner.build_stream()
    assert set(entity_types_in(reference)) == {"person", "geo-loc", "other", "company"}
    assert set(entity_types_in(files["01-venues-goods.conll"])) == {"facility", "product"}
    assert set(entity_types_in(files["02-music-sport.jsonl"])) == {"musicartist", "sportsteam"}
    paths = ProjectPaths.at(tmp_path)
    demo_ner.write_incoming(paths, files)
    settings = parse_settings(yaml.safe_load(demo_ner.ner_params_text(REPO / "params.yaml")))
    verdicts = {p.name: validate_sentences(read_sentences(p), settings.data, settings.validation)
                for p in sorted(paths.incoming.iterdir())}
    assert [name for name, v in verdicts.items() if not v.passed] == ["03-malformed.conll"]
    reason = verdicts["03-malformed.conll"].summary()
    assert "tag 'B-city' is not declared" in reason and "'I-person' after 'O'" in reason
    assert read_sentences(paths.incoming / "02-music-sport.jsonl")["tokens"].tolist() == \
        files["02-music-sport.jsonl"]["tokens"].map(list).tolist()
