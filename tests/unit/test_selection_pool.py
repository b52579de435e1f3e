"""`ratchet bench pool`: one selection question answered from several commands' records."""

import copy
import json

import pytest
from typer.testing import CliRunner

from ratchet.bench.selection import (
    GridError,
    GridPoint,
    named_against,
    paired_margin,
    settings_digest,
)
from ratchet.bench.selection_pool import pool_records
from ratchet.cli import app

BASE = {"train": {"learning_rate": 0.002, "epochs": 2}, "model": {"lora": {"target_modules": ["query", "value"]}},
        "continual": {"replay": {"ratio": 0.1}}}
SLICES = {"select_for": "default", "streams": ["a", "b"], "validation_fraction": 0.2, "train_fraction": 1.0,
          "max_train_per_step": 300, "max_validation_per_step": 300, "validation_rows": {"a": [10, 6], "b": [8]}}


def _record(tmp_path, name, seeds, points, ran_on=None, examples=None, streams=("a", "b"), **changes) -> str:
    """A selection record as `bench cl --select-on validation` writes it: points are (overrides, per-seed
    scores); with `ran_on` (the base settings of that run) each point carries its settings digest, with
    `examples` every stream of every point that many training examples (older records kept none)."""
    entries = [{"overrides": overrides, "score": sum(scores) / len(scores), "bwt": 0.0, "per_seed": scores,
                "per_stream": {s: {"average_accuracy": sum(scores) / len(scores), "bwt": 0.0,
                                   "newest_step_accuracy": 0.5,
                                   **({} if examples is None else {"examples_processed": examples})}
                               for s in streams}}
               for overrides, scores in points]
    if ran_on is not None:
        for entry in entries:
            entry["settings_digest"] = settings_digest(
                GridPoint(tuple(entry["overrides"].items())).applied_to(copy.deepcopy(ran_on)))
    path = tmp_path / f"{name}.selection.json"
    measured = {"streams": list(streams), "validation_rows": {s: SLICES["validation_rows"].get(s, [9]) for s in streams}}
    path.write_text(json.dumps({**SLICES, **measured, "seeds": seeds, "points": entries, **changes}))
    return path


def test_a_point_is_named_by_what_it_changes_whatever_key_its_grid_spelled_out():
    assert named_against({"model.lora.target_modules": ["query", "value"]}, BASE) == GridPoint(())
    assert named_against({"train.learning_rate": "1e-3", "train.epochs": 2}, BASE) == \
        GridPoint((("train.learning_rate", 0.001),))
    both = named_against({"train.learning_rate": 0.001, "continual.replay.ratio": 0.2}, BASE)
    assert both.overrides == (("continual.replay.ratio", 0.2), ("train.learning_rate", 0.001))   # sorted: one name


def test_the_incumbent_from_one_question_pairs_seed_by_seed_with_a_challenger_run_alone(tmp_path):
    # seed 0 asked both points in one command (the incumbent spelled as its LoRA targets); seeds 1, 2
    # were asked in two; the challenger ran alone, one record per seed, named by its learning rate
    records = [_record(tmp_path, "targets0", [0], [({"model.lora.target_modules": ["query", "value"]}, [0.80]),
                                                  ({"model.lora.target_modules": ["query"]}, [0.70])]),
               _record(tmp_path, "targets12", [1, 2], [({"model.lora.target_modules": ["query", "value"]}, [0.82, 0.84])]),
               *[_record(tmp_path, f"lr{s}", [s], [({"train.learning_rate": 0.001}, [score])])
                 for s, score in ((0, 0.83), (1, 0.81), (2, 0.85))]]
    pooled = pool_records(records, BASE, only=[GridPoint((("train.learning_rate", 0.001),))])
    assert pooled.seeds == (0, 1, 2)
    incumbent, challenger = pooled.scores
    assert incumbent is pooled.incumbent and incumbent.per_seed == (0.80, 0.82, 0.84)
    assert challenger.per_seed == (0.83, 0.81, 0.85)
    # differences +0.03, -0.01, +0.01: a mean of +0.01 with a standard error of 0.0115: within noise
    assert pooled.picked is incumbent
    margin = pooled.margins["train.learning_rate=0.001"]
    assert margin == paired_margin(challenger, incumbent) and margin.difference == pytest.approx(0.01)
    assert not margin.beyond_noise
    # per-stream figures weigh each record by its seeds: (0.80 + 2 x 0.83) / 3
    assert incumbent.per_stream["a"]["average_accuracy"] == pytest.approx((0.80 + 0.83 * 2) / 3)
    # without --point every point of the records is pooled; the one that ran only seed 0 holds the
    # pairing to that seed, and the others' seeds 1 and 2 are said to be left out
    everything = pool_records(records, BASE)
    assert everything.seeds == (0,) and len(everything.scores) == 3
    assert any("seed(s) [1, 2] left out" in note for note in everything.notes)


def test_a_challenger_that_wins_on_every_seed_is_picked(tmp_path):
    records = [_record(tmp_path, "q", [0, 1, 2], [({"train.learning_rate": 0.002}, [0.80, 0.82, 0.84]),
                                                  ({"train.learning_rate": 0.003}, [0.82, 0.83, 0.86])])]
    pooled = pool_records(records, BASE)
    assert pooled.picked.point == GridPoint((("train.learning_rate", 0.003),))


def test_examples_are_pooled_where_every_record_kept_them(tmp_path):
    lr = {"train.learning_rate": 0.001}
    kept = [_record(tmp_path, "kept0", [0], [(lr, [0.80])], examples=1000),
            _record(tmp_path, "kept12", [1, 2], [(lr, [0.82, 0.84])], examples=1300)]
    (pooled,) = pool_records(kept, BASE).scores
    assert pooled.per_stream["a"]["examples_processed"] == pytest.approx((1000 + 2 * 1300) / 3)
    older = _record(tmp_path, "older", [3], [(lr, [0.81])])
    (mixed,) = pool_records([*kept, older], BASE).scores
    assert "examples_processed" not in mixed.per_stream["a"] and mixed.per_seed == (0.80, 0.82, 0.84, 0.81)


@pytest.mark.parametrize("change, message", [
    ({"validation_rows": {"a": [11, 6], "b": [8]}}, "a's validation slices hold"),
    ({"max_validation_per_step": 100}, "max_validation_per_step"),
    ({"select_for": "joint"}, "select_for"),
])
def test_records_measured_differently_are_refused_naming_what_differs(tmp_path, change, message):
    first = _record(tmp_path, "first", [0], [({"train.learning_rate": 0.002}, [0.8])])
    second = _record(tmp_path, "second", [1], [({"train.learning_rate": 0.002}, [0.8])], **change)
    with pytest.raises(GridError, match=f"not measured the same way: {message}"):
        pool_records([first, second], BASE)


def test_a_stream_measured_on_its_own_joins_the_streams_measured_before(tmp_path):
    # the question was asked on streams a and b (both points, one record a seed); a third stream, c,
    # asked both points later in one record of its own
    before = [_record(tmp_path, f"ab{seed}", [seed], [({"train.learning_rate": 0.002}, [ab_incumbent]),
                                                     ({"train.learning_rate": 0.001}, [ab_challenger])], BASE, 100)
              for seed, ab_incumbent, ab_challenger in ((0, 0.80, 0.80), (1, 0.82, 0.82), (2, 0.84, 0.85))]
    later = _record(tmp_path, "c", [0, 1, 2], [({"train.learning_rate": 0.002}, [0.60, 0.62, 0.61]),
                                               ({"train.learning_rate": 0.001}, [0.70, 0.71, 0.69])],
                    ran_on=BASE, examples=40, streams=("c",))
    pooled = pool_records([*before, later], BASE)
    incumbent, challenger = pooled.scores
    # a seed's score is the mean over the three streams: the a+b record's score counts twice
    assert incumbent.per_seed == pytest.approx(((2 * 0.80 + 0.60) / 3, (2 * 0.82 + 0.62) / 3, (2 * 0.84 + 0.61) / 3))
    assert challenger.per_seed == pytest.approx(((2 * 0.80 + 0.70) / 3, (2 * 0.82 + 0.71) / 3, (2 * 0.85 + 0.69) / 3))
    assert list(challenger.per_stream) == ["a", "b", "c"] and pooled.picked is challenger and not pooled.notes
    assert challenger.per_stream["c"] == {"average_accuracy": pytest.approx(0.70), "bwt": 0.0,
                                          "newest_step_accuracy": 0.5, "examples_processed": 40}
    # without c's record nothing is missing (two streams); without one a+b seed, that seed is left out
    assert len(pool_records(before, BASE).scores[0].per_stream) == 2
    partial = pool_records([*before[:2], later], BASE)
    assert partial.seeds == (0, 1) and any("seed(s) [2] left out" in note for note in partial.notes)
    # a challenger asked on a and b only (before c was added) is left out, said, not a reason to fail
    older = _record(tmp_path, "older", [0, 1, 2], [({"train.learning_rate": 0.003}, [0.9, 0.9, 0.9])], ran_on=BASE)
    with_older = pool_records([*before, later, older], BASE)
    assert [s.point.label for s in with_older.scores] == [s.point.label for s in pooled.scores]
    assert with_older.picked.point == challenger.point
    assert any(note.startswith("train.learning_rate=0.003: left out (no seed on which it ran every stream")
               for note in with_older.notes)
    # c measured on other validation slices than before cannot join
    other = _record(tmp_path, "c-other", [0], [({"train.learning_rate": 0.002}, [0.6])], streams=("c",),
                    validation_rows={"c": [5]})
    with pytest.raises(GridError, match="c's validation slices hold"):
        pool_records([later, other], BASE)


def test_digested_points_pool_across_a_changed_default_and_stale_ones_are_refused(tmp_path):
    # the question ran when lr was 0.002; since then 0.001 became the default: the point that ran at
    # 0.001 is today's incumbent, and its digest (base then + point) is today's settings
    asked = _record(tmp_path, "asked", [0, 1], [({"train.learning_rate": 0.002}, [0.80, 0.82]),
                                                ({"train.learning_rate": 0.001}, [0.83, 0.85])], ran_on=BASE)
    today = {**BASE, "train": {**BASE["train"], "learning_rate": 0.001}}
    pooled = pool_records([asked], today)
    assert pooled.incumbent.per_seed == (0.83, 0.85) and pooled.picked is pooled.incumbent and not pooled.notes
    assert [s.point.label for s in pooled.scores] == ["train.learning_rate=0.002", "(params.yaml as written)"]
    # a setting the points did not name changed since (epochs 2 -> 3): naming them today would be false
    with pytest.raises(GridError, match=r"asked.selection.json: point 0 \(train.learning_rate=0.002\) ran on other settings"):
        pool_records([asked], {**today, "train": {**today["train"], "epochs": 3}})


def test_a_record_given_twice_or_unreadable_is_refused(tmp_path):
    current = _record(tmp_path, "current", [0], [({"train.learning_rate": 0.002}, [0.8])], ran_on=BASE)
    assert not pool_records([current], BASE).notes            # digests that match need no note
    again = _record(tmp_path, "again", [0], [({"model.lora.target_modules": ["query", "value"]}, [0.8])])
    with pytest.raises(GridError, match=r"seed 0: \['a', 'b'\] in both .*current.selection.json and .*again.selection.json"):
        pool_records([current, again], BASE)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(GridError, match="broken.json: not a readable selection record"):
        pool_records([tmp_path / "broken.json"], BASE)
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(GridError, match="other.json: not a selection record"):
        pool_records([tmp_path / "other.json"], BASE)


def test_the_command_prints_the_pooled_answer_writes_it_and_names_a_bad_point(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps(BASE))                      # JSON is YAML
    record = _record(tmp_path, "q", [0, 1], [({"train.learning_rate": 0.002}, [0.80, 0.82]),
                                             ({"train.learning_rate": 0.001}, [0.81, 0.80])])
    out = tmp_path / "pooled.json"
    result = CliRunner().invoke(app, ["bench", "pool", str(record), "--params", str(params), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "picked: (params.yaml as written)" in result.output
    written = json.loads(out.read_text())
    assert written["picked"] == {} and written["seeds"] == [0, 1] and written["pooled_from"] == [str(record)]
    unknown = CliRunner().invoke(app, ["bench", "pool", str(record), "--params", str(params),
                                       "--point", "train.learning_rate=0.005"])
    assert unknown.exit_code == 2 and "train.learning_rate=0.005: in none of the records" in unknown.output
