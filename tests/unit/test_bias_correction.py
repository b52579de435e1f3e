"""Bias correction of new classes: the offset fit, folding it into the head, the held-out rows."""

import pandas as pd
import torch

from ratchet import modeling
from ratchet.config import ContinualSettings, LoraSettings, ModelSettings, TrainSettings
from ratchet.continual.bias_correction import (
    balanced_cross_entropy,
    class_recall,
    fit_offsets,
    hold_out_new_rows,
    shift_new_classes,
)
from ratchet.continual.increment import learn_increment
from ratchet.continual.mix import IncrementData
from ratchet.continual.plasticity import check_step
from tests.conftest import synthetic_frame

LABELS = ["red", "green", "blue"]


def _two_class_logits(new_bias: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Old class 0 and new class 1, cleanly separated by 3 logits, the new logit raised by `new_bias`."""
    old = torch.tensor([[3.0, 0.0 + new_bias]] * 20)
    new = torch.tensor([[0.0, 3.0 + new_bias]] * 5)
    return torch.cat([old, new]), torch.tensor([0] * 20 + [1] * 5)


def test_balanced_cross_entropy_is_the_mean_of_the_per_class_means():
    logits, targets = _two_class_logits(1.0)      # 20 old rows, 5 new ones
    per_example = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    expected = (per_example[:20].mean() + per_example[20:].mean()) / 2
    assert torch.isclose(balanced_cross_entropy(logits, targets), expected)
    assert not torch.isclose(per_example.mean(), expected)   # the plain mean would favour the old class


def test_class_weights_weigh_each_class_mean():
    logits, targets = _two_class_logits(1.0)
    per_example = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    expected = (3 * per_example[:20].mean() + per_example[20:].mean()) / 4
    assert torch.isclose(balanced_cross_entropy(logits, targets, {0: 3.0}), expected)


def test_weighing_old_classes_more_moves_the_offset_against_the_new_class():
    """Two overlapping classes, symmetric: the neutral fit leaves β at 0; weighing the old class 3x
    lowers the new class's logit, and the more, the further."""
    old = torch.tensor([[1.0, 0.0]] * 10 + [[0.0, 1.0]] * 2)   # 2 of 12 old rows look new
    new = torch.tensor([[0.0, 1.0]] * 10 + [[1.0, 0.0]] * 2)
    logits, targets = torch.cat([old, new]), torch.tensor([0] * 12 + [1] * 12)
    neutral = fit_offsets(logits, targets, new_classes=[1])[1]
    favour_old = fit_offsets(logits, targets, new_classes=[1], old_class_weight=3.0)[1]
    more = fit_offsets(logits, targets, new_classes=[1], old_class_weight=8.0)[1]
    assert abs(neutral) < 1e-6
    assert more < favour_old < 0


def test_the_offset_undoes_a_bias_toward_the_new_class_and_is_zero_without_one():
    logits, targets = _two_class_logits(0.0)
    assert abs(fit_offsets(logits, targets, new_classes=[1])[1]) < 1e-6
    biased, targets = _two_class_logits(2.0)
    assert abs(fit_offsets(biased, targets, new_classes=[1])[1] + 2.0) < 1e-6


def test_each_new_class_gets_its_own_offset():
    """Old class 0; new class 1 biased by +2 and new class 2 unbiased: only class 1 is corrected."""
    rows = [[3.0, 2.0, 0.0]] * 20 + [[0.0, 5.0, 0.0]] * 5 + [[0.0, 2.0, 3.0]] * 5
    targets = torch.tensor([0] * 20 + [1] * 5 + [2] * 5)
    offsets = fit_offsets(torch.tensor(rows), targets, new_classes=[1, 2])
    assert abs(offsets[1] + 2.0) < 0.1 and abs(offsets[2]) < 0.1


def test_the_offset_is_folded_into_the_head_and_moves_only_the_new_classes(tiny_model_dir):
    settings = ModelSettings(base=str(tiny_model_dir), max_length=32, finetune="lora",
                             lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    model, tokenizer = modeling.build_trainable(settings, LABELS, 0, None), modeling.load_tokenizer(settings)
    model.eval()
    batch = tokenizer(["a red thing", "a blue thing"], padding=True, return_tensors="pt")
    with torch.no_grad():
        before = model(**batch).logits
        shift_new_classes(model, {2: -1.5})
        after = model(**batch).logits
    assert torch.allclose(after[:, 2], before[:, 2] - 1.5, atol=1e-5)
    assert torch.allclose(after[:, :2], before[:, :2])


def test_held_out_rows_come_from_the_new_classes_only_within_their_limits():
    new = pd.concat([synthetic_frame({"blue": 40}), synthetic_frame({"red": 40}, seed=1, prefix="r"),
                     synthetic_frame({"green": 6}, seed=2, prefix="g")], ignore_index=True)
    kept, held = hold_out_new_rows(new, {"blue", "green"}, fraction=0.1, minimum=5, seed=0)
    assert held["label"].value_counts().to_dict() == {"blue": 5, "green": 3}   # the floor; at most half
    assert len(kept) + len(held) == len(new) and not set(kept["id"]) & set(held["id"])
    assert (kept["label"] == "red").sum() == 40
    again_kept, again_held = hold_out_new_rows(new, {"blue", "green"}, 0.1, 5, seed=0)
    assert again_held.equals(held) and again_kept.equals(kept)


def test_an_increment_without_new_classes_is_not_corrected(tiny_model_dir):
    settings = ModelSettings(base=str(tiny_model_dir), max_length=32, finetune="full")
    model, tokenizer = modeling.build_trainable(settings, LABELS, 0, None), modeling.load_tokenizer(settings)
    first = synthetic_frame({"red": 20, "green": 20}, seed=1)
    fast = TrainSettings(epochs=1, batch_size=16, learning_rate=1e-3, warmup_ratio=0.0)
    continual = ContinualSettings()
    more = synthetic_frame({"red": 10, "green": 10}, seed=3, prefix="m")
    data = IncrementData.from_parts(more, first.iloc[:4], first.iloc[4:], ["red", "green"], seed=0)
    report, mix = learn_increment(model, tokenizer, data, LABELS, continual, fast, 32, show_progress=False)
    assert report.bias_offsets is None and report.held_out_new == 0 and len(mix) == 24


def test_the_plasticity_guard_keeps_a_new_class_at_its_uncorrected_recall():
    """Old class 0 weighs 8x and 4 of its 12 rows lean new: unconstrained, the fit lowers the new
    class until some of its own rows go to the old class; with its recall floor it stops before."""
    old = torch.tensor([[1.0, 0.0]] * 8 + [[0.0, 0.6]] * 4)
    new = torch.tensor([[0.0, 1.0]] * 8 + [[0.0, 0.5]] * 4)     # every new row answered new: recall 1
    logits, targets = torch.cat([old, new]), torch.tensor([0] * 12 + [1] * 12)
    free = fit_offsets(logits, targets, new_classes=[1], old_class_weight=8.0)[1]
    shifted = logits.clone()
    shifted[:, 1] += free
    assert class_recall(shifted, targets, [1])[1] < 1.0          # the unconstrained fit costs the new class
    guarded = fit_offsets(logits, targets, new_classes=[1], old_class_weight=8.0, recall_floor={1: 1.0})[1]
    shifted = logits.clone()
    shifted[:, 1] += guarded
    assert class_recall(shifted, targets, [1])[1] == 1.0
    assert free < guarded <= 0                                    # still corrected, as far as allowed


def test_a_plasticity_check_undoes_a_step_that_lowers_any_new_class():
    kept = check_step("align_head", {1: 0.8, 2: 0.5}, {1: 0.9, 2: 0.5}, {1: 10, 2: 4}, {1: "a", 2: "b"})
    assert all(c.kept for c in kept) and [c.after for c in kept] == [0.9, 0.5]
    undone = check_step("align_head", {1: 0.8, 2: 0.5}, {1: 0.9, 2: 0.25}, {1: 10, 2: 4}, {1: "a", 2: "b"})
    assert not any(c.kept for c in undone) and [c.after for c in undone] == [0.8, 0.5]


def test_an_increment_with_a_new_class_reports_the_guards_checks(tiny_model_dir):
    settings = ModelSettings(base=str(tiny_model_dir), max_length=32, finetune="full")
    model, tokenizer = modeling.build_trainable(settings, LABELS, 0, None), modeling.load_tokenizer(settings)
    first = synthetic_frame({"red": 30, "green": 30}, seed=1)
    fast = TrainSettings(epochs=1, batch_size=16, learning_rate=1e-3, warmup_ratio=0.0)
    new = synthetic_frame({"blue": 30}, seed=3, prefix="b")
    data = IncrementData.from_parts(new, first.iloc[:10], first.iloc[10:], ["red", "green"], seed=0)
    report, _ = learn_increment(model, tokenizer, data, LABELS, ContinualSettings(), fast, 32, show_progress=False)
    steps = [c.step for c in report.plasticity]
    assert steps == ["align_head", "bias_correction"] and all(c.label == "blue" for c in report.plasticity)
    guarded = report.plasticity[-1]
    assert guarded.kept and guarded.after >= guarded.without and guarded.rows == report.held_out_new
    model = modeling.build_trainable(settings, LABELS, 0, None)
    unguarded, _ = learn_increment(model, tokenizer, data, LABELS, ContinualSettings(plasticity_guard=False), fast, 32,
                                   show_progress=False)
    assert unguarded.plasticity == [] and unguarded.bias_offsets is not None
