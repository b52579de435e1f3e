import pytest

from ratchet.evaluation import average_accuracy, backward_transfer, split_metrics


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
    assert backward_transfer(matrix, ["t0", "t1", "t2"]) == pytest.approx(-0.1)
    assert backward_transfer(matrix[:1], ["t0"]) is None
    assert average_accuracy(matrix[-1]) == pytest.approx((0.6 + 0.9 + 0.95) / 3)
