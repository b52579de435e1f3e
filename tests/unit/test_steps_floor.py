"""`train.new_class_min_steps`: a floor on optimiser steps only for increments that bring new classes."""

import math

from ratchet import modeling
from ratchet.config import ContinualSettings, ModelSettings, TrainSettings
from ratchet.continual.increment import learn_increment, steps_floor
from ratchet.continual.mix import IncrementData
from tests.conftest import synthetic_frame

LABELS = ["red", "green", "blue"]
FLOORED = TrainSettings(epochs=1, batch_size=16, min_steps=4, new_class_min_steps=12, warmup_ratio=0.0)


def _increment(new_counts: dict[str, int], known: list[str]) -> IncrementData:
    old = synthetic_frame({"red": 20, "green": 20}, seed=1)
    return IncrementData.from_parts(synthetic_frame(new_counts, seed=3, prefix="n"), old.iloc[:10], old.iloc[10:],
                                    known, seed=0)


def test_the_floor_rises_only_when_a_champion_meets_classes_it_has_not_learned():
    assert steps_floor(FLOORED, _increment({"blue": 20}, ["red", "green"])).min_steps == 12
    assert steps_floor(FLOORED, _increment({"red": 20}, ["red", "green"])).min_steps == 4, "known classes only"
    assert steps_floor(FLOORED, _increment({"red": 20, "green": 20}, [])).min_steps == 4, "the first increment"
    lower = FLOORED.model_copy(update={"new_class_min_steps": 2})
    assert steps_floor(lower, _increment({"blue": 20}, ["red", "green"])).min_steps == 4, "the larger floor applies"


def test_an_increment_with_a_new_class_trains_the_steps_the_floor_asks_for(tiny_model_dir):
    settings = ModelSettings(base=str(tiny_model_dir), max_length=32, finetune="full")
    model, tokenizer = modeling.build_trainable(settings, LABELS, 0, None), modeling.load_tokenizer(settings)
    continual = ContinualSettings(bias_correction={"enabled": False})
    report, mix = learn_increment(model, tokenizer, _increment({"blue": 20}, ["red", "green"]), LABELS, continual,
                                  FLOORED, 32, show_progress=False)
    per_epoch = math.ceil(len(mix) / FLOORED.batch_size)           # 30 rows: 2 steps an epoch
    assert report.training.steps == per_epoch * math.ceil(12 / per_epoch) >= 12
