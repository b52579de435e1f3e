"""The replay buffer: class balance within a budget, reservoir sampling, lineage that survives a round trip."""

import pandas as pd
import pytest

from ratchet.config import ReplaySettings, TrainSettings
from ratchet.continual.buffer import BufferError, ReplayBuffer, class_balanced_sample
from ratchet.continual.mix import IncrementData, class_balance_weights, compose_increment, floor_rows
from tests.conftest import synthetic_frame


def test_sample_is_balanced_and_a_small_class_gives_all_it_has():
    assert class_balanced_sample(synthetic_frame({"red": 40, "green": 40, "blue": 40}), 30, 0)[
        "label"].value_counts().to_dict() == {"red": 10, "green": 10, "blue": 10}
    assert class_balanced_sample(synthetic_frame({"red": 3, "green": 40}), 20, 0)[
        "label"].value_counts().to_dict() == {"red": 3, "green": 17}


def test_class_balanced_buffer_shares_its_budget_over_every_class_seen():
    buffer = ReplayBuffer(selection="class_balanced", budget=60)
    buffer.add(synthetic_frame({"red": 50, "green": 50}), "b-1", seed=0)
    assert buffer.rows["label"].value_counts().to_dict() == {"red": 30, "green": 30}
    buffer.add(synthetic_frame({"blue": 50}, seed=1), "b-2", seed=0)
    assert buffer.rows["label"].value_counts().to_dict() == {"red": 20, "green": 20, "blue": 20}
    # rows kept from the first batch keep their original lineage
    kept_red = buffer.rows[buffer.rows["label"] == "red"]
    assert set(kept_red["batch_id"]) == {"b-1"} and set(kept_red["entered_at"]) == {0}
    assert buffer.rows[buffer.rows["label"] == "blue"]["entered_at"].eq(1).all()
    assert all("class_balanced" in reason for reason in buffer.rows["reason"])


def test_reservoir_keeps_the_budget_and_a_fair_share_of_each_batch():
    buffer = ReplayBuffer(selection="reservoir", budget=100)
    for i in range(5):
        buffer.add(synthetic_frame({"red": 100}, seed=i).assign(label=f"c{i}"), f"b-{i}", seed=0)
    assert len(buffer.rows) == 100 and buffer.seen == 500
    share = buffer.rows["batch_id"].value_counts()
    # each of the 5 batches had the same chance: about 20 rows each, none crowded out
    assert share.min() >= 8 and share.max() <= 35, share.to_dict()


def test_lineage_survives_a_round_trip(tmp_path):
    buffer = ReplayBuffer(selection="class_balanced", budget=20)
    buffer.add(synthetic_frame({"red": 15, "green": 15}), "b-aaa", seed=3)
    buffer.save(tmp_path)
    loaded = ReplayBuffer.load(tmp_path, "class_balanced", 20)
    pd.testing.assert_frame_equal(loaded.rows.reset_index(drop=True), buffer.rows.reset_index(drop=True))
    assert (loaded.seen, loaded.increments) == (30, 1)


def test_a_lower_budget_in_params_shrinks_the_loaded_buffer_evenly(tmp_path):
    buffer = ReplayBuffer(selection="class_balanced", budget=40)
    buffer.add(synthetic_frame({"red": 30, "green": 30}), "b-1", seed=0)
    buffer.save(tmp_path)
    assert ReplayBuffer.load(tmp_path, "class_balanced", 10).rows["label"].value_counts().to_dict() == {
        "red": 5, "green": 5}


def test_a_foreign_parquet_is_named(tmp_path):
    ReplayBuffer(selection="class_balanced", budget=10).save(tmp_path)
    pd.DataFrame({"text": ["x"]}).to_parquet(tmp_path / "buffer.parquet")
    with pytest.raises(BufferError, match="buffer.parquet lacks column"):
        ReplayBuffer.load(tmp_path, "class_balanced", 10)


def test_the_training_mix_holds_the_old_classes_in_the_configured_ratio():
    buffer = ReplayBuffer(selection="class_balanced", budget=300)
    buffer.add(synthetic_frame({"red": 100, "green": 100, "blue": 100}), "b-1", seed=0)
    per_class = ReplaySettings(ratio=0.5, min_per_old_class=10).per_old_class(n_new=150, n_new_classes=3, n_old_classes=3)
    assert per_class == 25
    replay, held_out = buffer.replay_and_validation(per_class, validation_per_class=10, seed=0)
    assert held_out["label"].value_counts().to_dict() == {"red": 10, "green": 10, "blue": 10}
    assert not set(held_out["id"]) & set(replay["id"]), "early stopping never sees a replayed row"
    new = synthetic_frame({"red": 150}, seed=2, prefix="new").assign(label="yellow")
    mix = IncrementData.from_parts(new, replay, replay.iloc[:0], ["red", "green", "blue"], seed=0).mix
    assert mix[mix["replayed"]]["label"].value_counts().to_dict() == {"red": 25, "green": 25, "blue": 25}
    assert mix["replayed"].mean() == pytest.approx(75 / 225)
    weights = pd.Series(class_balance_weights(mix["label"].tolist(), {"yellow"})).groupby(mix["label"]).sum()
    assert weights.to_dict() == pytest.approx({"red": 56.25, "green": 56.25, "blue": 56.25, "yellow": 56.25})


def test_class_balance_leaves_the_new_datas_own_label_balance_alone():
    labels = ["pos"] * 75 + ["neg"] * 25 + ["old"] * 10
    weights = pd.Series(class_balance_weights(labels, {"pos", "neg"})).groupby(pd.Series(labels)).sum()
    # pos and neg keep their 3:1 ratio; the replayed-only class weighs as much as a mean new class (50)
    assert weights["pos"] / weights["neg"] == pytest.approx(3.0)
    assert weights["old"] / weights["neg"] == pytest.approx(2.0)


def test_each_old_class_replays_a_share_of_the_mean_new_class():
    settings = ReplaySettings(ratio=0.1, min_per_old_class=10)
    assert settings.per_old_class(n_new=684, n_new_classes=2, n_old_classes=2) == 35   # ceil(0.1 * 342)
    assert settings.per_old_class(n_new=290, n_new_classes=1, n_old_classes=4) == 29
    assert settings.per_old_class(n_new=60, n_new_classes=2, n_old_classes=4) == 10    # the floor
    assert settings.per_old_class(n_new=100, n_new_classes=1, n_old_classes=0) == 0
    assert ReplaySettings(selection="none").per_old_class(n_new=100, n_new_classes=1, n_old_classes=4) == 0


FLOOR = TrainSettings(epochs=2, batch_size=16, new_class_min_steps=20)   # 20 steps of 16 over 2 passes: 160 rows


def _old_buffer() -> ReplayBuffer:
    buffer = ReplayBuffer(selection="class_balanced", budget=300)
    buffer.add(synthetic_frame({"red": 100, "green": 100, "blue": 100}), "b-1", seed=0)
    return buffer


def test_the_step_floor_covers_so_many_rows_only_for_an_increment_with_a_new_class():
    assert floor_rows(FLOOR, ["yellow"], ["red", "green"]) == 160
    assert floor_rows(FLOOR, ["red"], ["red", "green"]) == 0, "no new class"
    assert floor_rows(FLOOR, ["red", "green"], []) == 0, "the first increment has no champion"
    assert floor_rows(FLOOR.model_copy(update={"min_steps": 30}), ["yellow"], ["red"]) == 0, "min_steps is larger"


def test_filling_the_step_floor_replays_more_of_the_buffer_and_leaves_the_held_out_rows():
    new = synthetic_frame({"red": 40}, seed=2, prefix="new").assign(label="yellow")
    known = ["blue", "green", "red"]
    replay = ReplaySettings(ratio=0.1, min_per_old_class=5, validation_per_class=10)
    plain = compose_increment(new, _old_buffer(), replay, known, seed=0, train=FLOOR)
    assert plain.replay["label"].value_counts().to_dict() == {"red": 5, "green": 5, "blue": 5}, "off: as before"

    filling = replay.model_copy(update={"fill_step_floor": True})
    filled = compose_increment(new, _old_buffer(), filling, known, seed=0, train=FLOOR)
    assert filled.replay["label"].value_counts().to_dict() == {"red": 40, "green": 40, "blue": 40}  # (160-40)/3
    assert len(filled.mix) == 160
    assert filled.old_validation["label"].value_counts().to_dict() == {"red": 10, "green": 10, "blue": 10}
    assert not set(filled.old_validation["id"]) & set(filled.replay["id"])

    wide = compose_increment(new, _old_buffer(), filling, known, seed=0,
                             train=FLOOR.model_copy(update={"new_class_min_steps": 200}))
    assert wide.replay["label"].value_counts().to_dict() == {"red": 90, "green": 90, "blue": 90}, \
        "capped so that every old class keeps its validation rows"
    same_labels = synthetic_frame({"red": 40}, seed=2, prefix="new")
    assert len(compose_increment(same_labels, _old_buffer(), filling, known, seed=0, train=FLOOR).replay) == 15, \
        "no new class: no floor, nothing to fill"
