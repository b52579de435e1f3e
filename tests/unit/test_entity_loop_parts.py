"""The pure parts of a token project's loop: batch ids and splits, paired counts over gold entities,
the sentence memory on disk, the entity-type drift signal."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ratchet.entities.comparison import paired_entities
from ratchet.entities.drift import as_texts, type_distribution_signal
from ratchet.entities.memory import SentenceMemory
from ratchet.entities.sentences import SentenceReadError, load_sentence_batch
from ratchet.store import split_sentences

pytestmark = pytest.mark.unit

SENTENCES = pd.DataFrame([
    {"id": "a", "tokens": ["Ada", "met", "Bob", "in", "Rome"], "tags": ["B-person", "O", "B-person", "O", "B-geo"]},
    {"id": "b", "tokens": ["New", "York", "sleeps"], "tags": ["B-geo", "I-geo", "O"]},
])


def test_gold_entities_found_by_one_model_and_not_the_other_are_counted_per_type():
    champion = [["B-person", "O", "B-person", "O", "O"], ["B-geo", "I-geo", "O"]]
    candidate = [["B-person", "O", "O", "O", "B-geo"], ["B-geo", "O", "O"]]   # New alone is not New York
    paired = paired_entities(SENTENCES, ["person", "geo"], champion, candidate)
    assert (paired.n, paired.champion_only, paired.candidate_only) == (4, 2, 1)
    assert (paired.per_class["person"].champion_only, paired.per_class["person"].candidate_only) == (1, 0)
    assert (paired.per_class["geo"].champion_only, paired.per_class["geo"].candidate_only) == (1, 1)
    only_person = paired_entities(SENTENCES, ["person"], champion, candidate)
    assert only_person.n == 2 and set(only_person.per_class) == {"person"}


def test_a_token_batch_id_depends_on_content_not_on_the_file_name(tmp_path):
    text = "Ada\tB-person\nsleeps\tO\n\nRome\tB-geo\n"
    (tmp_path / "one.conll").write_text(text)
    (tmp_path / "two.conll").write_text(text)
    (tmp_path / "three.conll").write_text(text.replace("sleeps", "naps"))
    first, frame = load_sentence_batch(tmp_path / "one.conll")
    assert load_sentence_batch(tmp_path / "two.conll")[0] == first != load_sentence_batch(tmp_path / "three.conll")[0]
    assert list(frame["id"]) == [f"{first}-s1", f"{first}-s2"]
    (tmp_path / "empty.conll").write_text("\n\n")
    with pytest.raises(SentenceReadError, match="empty.conll: no sentences"):
        load_sentence_batch(tmp_path / "empty.conll")
    (tmp_path / "ids.jsonl").write_text(json.dumps({"id": 7, "tokens": ["x"], "tags": ["O"]}) + "\n")
    assert list(load_sentence_batch(tmp_path / "ids.jsonl")[1]["id"]) == ["7"]


def test_sentences_split_by_a_hash_of_their_id_whatever_the_order():
    frame = pd.DataFrame({"id": [f"s{i}" for i in range(20)], "tokens": [["w"]] * 20, "tags": [["O"]] * 20})
    train, held_out = split_sentences(frame, 0.25)
    again_train, again_held_out = split_sentences(frame.iloc[::-1], 0.25)
    assert len(held_out) == 5 and len(train) == 15
    assert list(held_out["id"]) == list(again_held_out["id"]) and set(train["id"]) == set(again_train["id"])


def test_the_sentence_memory_keeps_each_type_and_reloads_within_its_budget(tmp_path):
    memory = SentenceMemory(per_type=5, seed=0)
    memory.add(SENTENCES, ["person", "geo"])
    memory.save(tmp_path / "memory.parquet")
    again = SentenceMemory.load(tmp_path / "memory.parquet", per_type=1, seed=0)
    assert {kind: len(frame) for kind, frame in again.by_type.items()} == {"person": 1, "geo": 1}
    assert isinstance(again.sample(1, seed=0)["tokens"][0], list)
    assert SentenceMemory.load(tmp_path / "none.parquet", per_type=3).sample(3, seed=0).empty


def test_the_entity_type_signal_fires_on_another_mix_of_types_only():
    same = type_distribution_signal({"person": 40, "geo": 38}, {"person": 200, "geo": 205}, alpha=0.05)
    other = type_distribution_signal({"product": 30, "person": 5}, {"person": 200, "geo": 205}, alpha=0.05)
    assert not same.fired and other.fired and other.p_value < 1e-6
    texts = as_texts(SENTENCES.assign(tags=[["O"] * 5, ["B-geo", "I-geo", "O"]]))
    assert list(texts["text"]) == ["Ada met Bob in Rome", "New York sleeps"]
    assert list(texts["label"]) == ["no entity", "has entities"]
