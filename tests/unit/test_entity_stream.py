"""Entity-incremental streams: disjoint slices per step, each tagging only its own types; gold test."""

import pytest

from ratchet.bench.entity_stream import (
    assign_to_steps,
    is_entity_stream,
    load_entity_stream,
    )
from ratchet.bench.streams import StreamError, builtin_streams
from ratchet.entities.tags import entity_types_of
from tests.unit.test_entity_model import tagged_sentences


def write_stream(tmp_path, steps: str, n: int = 60):
    sentences = tagged_sentences(n, seed=5)
    (tmp_path / "sentences.jsonl").write_text(sentences[["id", "tokens", "tags"]].to_json(orient="records", lines=True))
    stream = tmp_path / "stream.yaml"
    stream.write_text(f"name: colours\ntask: token-classification\nfile: sentences.jsonl\nsteps:\n{steps}"
                      f"test: {{fraction: 0.25}}\nseed: 0\n")
    return stream


def test_each_step_tags_only_its_own_types_and_the_test_keeps_every_gold_tag(tmp_path):
    file = write_stream(tmp_path, "  - {name: warm, types: [red]}\n  - {name: cool, types: [green, blue]}\n")
    assert is_entity_stream(file)
    stream = load_entity_stream(file, validation_fraction=0.2)
    assert stream.entity_types == ["red", "green", "blue"] and stream.types_until(0) == ["red"]
    warm, cool = stream.steps
    assert all(entity_types_of(tags) <= {"red"} for tags in warm.train["tags"])
    assert all(entity_types_of(tags) <= {"green", "blue"} for tags in cool.train["tags"])
    assert any("green" in entity_types_of(tags) for tags in cool.gold["tags"])
    assert any("red" in entity_types_of(tags) for tags in cool.gold["tags"])      # joint sees what cool hides
    ids = [set(warm.train["id"]), set(cool.train["id"]), set(stream.test["id"]), set(stream.validation["id"])]
    assert sum(map(len, ids)) == 60 and len(set().union(*ids)) == 60              # disjoint, nothing lost
    assert len(stream.test) == 15 and {"red", "green", "blue"} <= set().union(*map(entity_types_of, stream.test["tags"]))


def test_a_sentence_goes_to_the_emptier_of_the_steps_that_bring_its_types():
    frame = tagged_sentences(30, seed=6)
    slices = assign_to_steps(frame, [["red"], ["green"], ["blue"]], seed=0)
    assert sum(len(s) for s in slices) == 30
    for types, rows in zip([["red"], ["green"], ["blue"]], slices):
        assert all(types[0] in entity_types_of(tags) for tags in rows["tags"])   # every sentence here has an entity
    assert max(map(len, slices)) - min(map(len, slices)) <= 2


def test_a_type_in_two_steps_or_a_step_without_types_is_refused(tmp_path):
    with pytest.raises(StreamError, match=r"steps\[1\].types: \['red'\] already came"):
        load_entity_stream(write_stream(tmp_path, "  - {name: a, types: [red]}\n  - {name: b, types: [red, blue]}\n"))
    with pytest.raises(StreamError, match=r"steps\[0\].types: a step brings at least one"):
        load_entity_stream(write_stream(tmp_path, "  - {name: a, types: []}\n"))


def test_entity_summaries_give_final_f1_and_its_ratio_to_joint():
    from ratchet.bench.entity_cl import aggregate_entities
    from ratchet.bench.results import RunResult

    def run(strategy, seed, macro, examples):
        summary = {"average_accuracy": macro, "bwt": 0.0, "fwt": None, "newest_step_accuracy": macro,
                   "final_micro_f1": macro + 0.1, "final_macro_f1": macro}
        return RunResult(strategy, seed, [], {}, summary, {}, examples, 1.0, 0)

    table = aggregate_entities([run("joint", 0, 0.40, 100), run("joint", 1, 0.20, 100),
                                run("default", 0, 0.27, 40), run("default", 1, 0.27, 40)])
    assert table["joint"]["final_macro_f1"]["mean"] == pytest.approx(0.30)
    assert table["default"]["macro_f1_vs_joint"] == pytest.approx(0.9)
    assert table["default"]["examples_vs_joint"] == pytest.approx(0.4)
    assert table["default"]["final_micro_f1"] == {"mean": pytest.approx(0.37), "std": 0.0}


def test_the_built_in_twitter_stream_follows_the_protocol():
    stream = load_entity_stream(builtin_streams()["twitter-ner-incremental"])
    assert [len(s.types) for s in stream.steps] == [4, 2, 2, 2] and len(stream.entity_types) == 10
    for step in stream.steps:
        assert set().union(*map(entity_types_of, step.train["tags"])) == set(step.types)
