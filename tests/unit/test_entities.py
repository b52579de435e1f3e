"""Token batches: BIO tags, CoNLL and JSON Lines reading, and their validation (task: token-classification)."""

import json

import pandas as pd
import pytest

from ratchet.config import ConfigError, DataSettings, ValidationSettings, parse_settings
from ratchet.entities.sentences import SentenceReadError, read_conll, read_jsonl
from ratchet.entities.tags import (
    TagError,
    bio_problems,
    entity_types_in,
    repair,
    spans,
    split_tag,
    tag_set,
)
from ratchet.entities.validation import validate_sentences

DATA = DataSettings(entity_types=["person", "geo-loc"])
RULES = ValidationSettings(min_rows=1, max_rows=100, min_tokens=1, max_tokens=6)


def test_tags_split_into_prefix_and_type_and_anything_else_is_named():
    assert split_tag("O") == ("O", None) and split_tag("B-geo-loc") == ("B", "geo-loc")
    with pytest.raises(TagError, match="'person' is not a BIO tag"):
        split_tag("person")
    assert tag_set(["person"]) == ["O", "B-person", "I-person"]


def test_iob2_breaks_are_found_and_the_begin_repair_fixes_iob1():
    tags = ["I-person", "I-person", "O", "B-geo-loc", "I-person"]
    problems = bio_problems(tags)
    assert [(p.position, p.tag) for p in problems] == [(0, "I-person"), (4, "I-person")]
    assert "after the sentence start" in problems[0].problem and "after 'B-geo-loc'" in problems[1].problem
    assert repair(tags, "begin") == ["B-person", "I-person", "O", "B-geo-loc", "B-person"]
    assert bio_problems(repair(tags, "begin")) == [] and repair(tags, "none") == tags


def test_spans_are_strict_iob2_entities():
    tokens = ["Ada", "Lovelace", "met", "Babbage", "in", "London"]
    tags = ["B-person", "I-person", "O", "B-person", "O", "B-geo-loc"]
    found = [(s.start, s.end, s.type, s.text) for s in spans(tokens, tags)]
    assert found == [(0, 2, "person", "Ada Lovelace"), (3, 4, "person", "Babbage"), (5, 6, "geo-loc", "London")]
    assert [(s.start, s.end) for s in spans(["a", "b"], ["B-person", "B-person"])] == [(0, 1), (1, 2)]


def test_conll_sentences_are_split_on_blank_lines_with_their_line_numbers(tmp_path):
    file = tmp_path / "batch.conll"
    file.write_text("-DOCSTART-\tO\n\nAda\tB-person\nsleeps\tO\n\t\nParis NNP B-NP B-geo-loc\n\n\n")
    frame = read_conll(file)
    # a tab-only line ends a sentence; whitespace columns take the tag from the last (CoNLL-2003)
    assert frame["tokens"].tolist() == [["Ada", "sleeps"], ["Paris"]]
    assert frame["tags"].tolist() == [["B-person", "O"], ["B-geo-loc"]] and frame["line"].tolist() == [3, 6]
    (tmp_path / "bad.conll").write_text("Ada\tB-person\nlonely\n")
    with pytest.raises(SentenceReadError, match=r"bad.conll:2: expected 'token<TAB>tag'"):
        read_conll(tmp_path / "bad.conll")


def test_jsonl_sentences_keep_their_ids_and_a_broken_line_is_named(tmp_path):
    file = tmp_path / "batch.jsonl"
    file.write_text(json.dumps({"id": "t1", "tokens": ["Ada"], "tags": ["B-person"]}) + "\n\n"
                    + json.dumps({"tokens": ["x"], "tags": ["O"]}) + "\n")
    frame = read_jsonl(file)
    assert frame["id"].tolist() == ["t1", "s2"] and frame["line"].tolist() == [1, 3]
    (tmp_path / "broken.jsonl").write_text('{"id": 1}\n{"id": \n')
    with pytest.raises(SentenceReadError, match=r"broken.jsonl:2: not JSON"):
        read_jsonl(tmp_path / "broken.jsonl")


def _frame(*sentences):
    return pd.DataFrame([{"id": f"s{i + 1}", "tokens": t, "tags": g, "line": 10 * i + 1}
                         for i, (t, g) in enumerate(sentences)])


def test_a_clean_token_batch_passes():
    result = validate_sentences(_frame((["Ada", "sleeps"], ["B-person", "O"]),
                                       (["in", "Paris"], ["O", "B-geo-loc"])), DATA, RULES)
    assert result.passed, result.summary()


def test_every_problem_names_the_sentence_the_line_and_the_token():
    result = validate_sentences(_frame(
        (["Ada", "sleeps"], ["B-person"]),                       # s1: length mismatch
        (["in", "Paris"], ["O", "B-city"]),                      # s2: undeclared tag
        (["the", "Ada"], ["O", "I-person"]),                     # s3: I- after O
        ([], []),                                                # s4: no tokens
        (["a"] * 7, ["O"] * 7),                                  # s5: too long
    ), DATA, RULES)
    assert not result.passed
    summary = result.summary()
    assert "sentence s1 (line 1): 2 tokens but 1 tags" in summary
    assert "sentence s2 (line 11): token 1 'Paris': tag 'B-city' is not declared" in summary
    assert "sentence s3 (line 21): token 1 'Ada': 'I-person' after 'O' does not continue a 'person' entity" in summary
    assert "sentence s4 (line 31): tokens must be a non-empty list" in summary
    assert "outside [1, 6] tokens: s5 has 7" in summary


def test_a_declared_repair_accepts_iob1():
    iob1 = _frame((["the", "Ada"], ["O", "I-person"]))
    assert not validate_sentences(iob1, DATA, RULES).passed
    assert validate_sentences(iob1, DATA.model_copy(update={"bio_repair": "begin"}), RULES).passed
    assert entity_types_in(_frame((["Ada", "x"], ["B-person", "O"]))) == {"person": 1}


def test_the_task_must_declare_its_classes():
    with pytest.raises(ConfigError, match="data.entity_types: token classification needs"):
        parse_settings({"task": "token-classification", "data": {}})
    with pytest.raises(ConfigError, match="data.labels: text classification needs at least 2"):
        parse_settings({"data": {"labels": ["a"]}})
    with pytest.raises(ConfigError, match="declare entity types without B-/I-"):
        parse_settings({"task": "token-classification", "data": {"entity_types": ["B-person"]}})
    assert parse_settings({"task": "token-classification", "data": {"entity_types": ["person"]}}).data.entity_types == ["person"]


def test_the_shipped_twitter_corpus_reads_and_passes_validation():
    from ratchet.entities.corpus import TWITTER_ENTITY_TYPES, load_twitter_ner

    tweets = load_twitter_ner()
    assert len(tweets) > 2000 and tweets["id"].is_unique
    assert set(entity_types_in(tweets)) == set(TWITTER_ENTITY_TYPES)
    data = DataSettings(entity_types=TWITTER_ENTITY_TYPES)
    assert validate_sentences(tweets, data, ValidationSettings(max_rows=10_000, max_tokens=128), ).passed
