import pytest

from ratchet.evaluation import average_accuracy, backward_transfer, forward_transfer, matrix_summary, split_metrics


def test_split_metrics_by_hand():
    truth = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    m = split_metrics(truth, pred)
    assert m.accuracy == pytest.approx(4 / 6)
    assert m.per_class_recall == pytest.approx({"a": 2 / 3, "b": 1 / 2, "c": 1.0})
    # F1: a = 0.8 (p=1, r=2/3); b = 0.5 (p=1/2, r=1/2); c = 2/3 (p=1/2, r=1)
    assert m.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 labels but 1 predictions"):
        split_metrics(["a", "b"], ["a"])


def test_backward_transfer_on_a_hand_made_matrix():
    # R[i][task]: accuracy on task after step i
    matrix = [{"t0": 0.9}, {"t0": 0.7, "t1": 0.8}, {"t0": 0.6, "t1": 0.9, "t2": 0.95}]
    # BWT = mean(R[2][t0]-R[0][t0], R[2][t1]-R[1][t1]) = mean(-0.3, +0.1) = -0.1
    learned_at = {"t0": 0, "t1": 1, "t2": 2}
    assert backward_transfer(matrix, learned_at) == pytest.approx(-0.1)
    assert backward_transfer(matrix[:1], {"t0": 0}) is None
    assert average_accuracy(matrix[-1]) == pytest.approx((0.6 + 0.9 + 0.95) / 3)


def test_per_class_precision_recall_f1_by_hand():
    m = split_metrics(["a", "a", "a", "b", "b", "c"], ["a", "a", "b", "b", "c", "c"])
    assert m.per_class["b"].model_dump() == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m.per_class["a"].precision == 1.0 and m.per_class["c"].recall == 1.0


def test_forward_transfer_uses_the_model_before_each_task_was_learned():
    # the full matrix of a benchmark: every task evaluated after every step
    matrix = [{"t0": 0.9, "t1": 0.4, "t2": 0.3},
              {"t0": 0.8, "t1": 0.9, "t2": 0.5},
              {"t0": 0.7, "t1": 0.85, "t2": 0.95}]
    baseline = {"t0": 0.3, "t1": 0.3, "t2": 0.3}
    learned_at = {"t0": 0, "t1": 1, "t2": 2}
    # FWT = mean(R[0][t1]-b1, R[1][t2]-b2) = mean(0.1, 0.2) = 0.15
    assert forward_transfer(matrix, learned_at, baseline) == pytest.approx(0.15)
    summary = matrix_summary(matrix, learned_at, baseline)
    assert summary["average_accuracy"] == pytest.approx((0.7 + 0.85 + 0.95) / 3)
    # BWT = mean(0.7-0.9, 0.85-0.9) = -0.125
    assert summary["bwt"] == pytest.approx(-0.125)


def test_several_tasks_learned_in_one_step():
    matrix = [{"a": 0.9}, {"a": 0.8, "b": 0.7, "c": 0.6}]
    assert backward_transfer(matrix, {"a": 0, "b": 1, "c": 1}) == pytest.approx(-0.1)
    assert matrix_summary(matrix, {"a": 0, "b": 1, "c": 1})["average_accuracy"] == pytest.approx(0.7)
