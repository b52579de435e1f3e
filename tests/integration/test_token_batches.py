"""task: token-classification: `ratchet validate` judges CoNLL and JSON Lines batches and names the
sentence and token; a text project refuses a CoNLL file by name (the loop itself: test_entity_loop.py)."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from ratchet.cli import app

PARAMS = {"task": "token-classification",
          "data": {"entity_types": ["person", "geo-loc"]},
          "validation": {"min_rows": 2, "max_tokens": 10}}


def _project(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    good = tmp_path / "good.conll"
    good.write_text("Ada\tB-person\nsleeps\tO\n\nin\tO\nParis\tB-geo-loc\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "tokens": ["Ada", "in", "Rome"], "tags": ["B-person", "O", "B-city"]},
        {"id": "b", "tokens": ["the", "Ada"], "tags": ["O", "I-person"]}]) + "\n")
    return good, bad


def test_validate_judges_token_batches_and_names_the_sentence_and_token(tmp_path):
    good, bad = _project(tmp_path)
    result = CliRunner().invoke(app, ["validate", str(good), str(bad), "--project", str(tmp_path), "--json"])
    assert result.exit_code == 1, result.output
    verdicts = {v["file"].split("/")[-1]: v for v in json.loads(result.stdout)}
    assert verdicts["good.conll"]["passed"] and verdicts["good.conll"]["rows"] == 2
    reason = verdicts["bad.jsonl"]["reason"]
    assert "sentence a (line 1): token 2 'Rome': tag 'B-city' is not declared" in reason
    assert "sentence b (line 2): token 1 'Ada': 'I-person' after 'O'" in reason
    assert good.exists() and bad.exists(), "validate moves nothing"


def test_a_text_project_refuses_a_conll_file_by_name_and_a_token_project_without_champion_says_so(tmp_path):
    good, _ = _project(tmp_path)
    no_champion = CliRunner().invoke(app, ["predict", "Ada sleeps", "--project", str(tmp_path)])
    assert no_champion.exit_code == 2 and "no champion yet" in no_champion.output
    text_project = tmp_path / "texts"
    text_project.mkdir()
    (text_project / "params.yaml").write_text(yaml.safe_dump({"data": {"labels": ["a", "b"]}}))
    result = CliRunner().invoke(app, ["validate", str(good), "--project", str(text_project), "--json"])
    assert result.exit_code == 1
    [verdict] = json.loads(result.stdout)
    assert "a CoNLL file of tokens and tags, but this project classifies texts" in verdict["reason"]
