from ratchet.training.replay import class_balanced_sample, replay_size
from tests.conftest import synthetic_frame


def test_sample_is_balanced_over_old_classes():
    pool = synthetic_frame({"red": 40, "green": 40, "blue": 40})
    sample = class_balanced_sample(pool, 30, seed=0)
    assert sample["label"].value_counts().to_dict() == {"red": 10, "green": 10, "blue": 10}


def test_small_class_gives_all_and_others_fill_the_budget():
    pool = synthetic_frame({"red": 3, "green": 40})
    sample = class_balanced_sample(pool, 20, seed=0)
    assert sample["label"].value_counts().to_dict() == {"red": 3, "green": 17}


def test_budget_larger_than_pool_takes_everything_once():
    pool = synthetic_frame({"red": 4, "green": 5})
    sample = class_balanced_sample(pool, 100, seed=0)
    assert sorted(sample["id"]) == sorted(pool["id"])


def test_deterministic_for_a_seed():
    pool = synthetic_frame({"red": 30, "green": 30})
    assert class_balanced_sample(pool, 10, 1)["id"].tolist() == class_balanced_sample(pool, 10, 1)["id"].tolist()
    assert class_balanced_sample(pool, 10, 1)["id"].tolist() != class_balanced_sample(pool, 10, 2)["id"].tolist()


def test_replay_size_gives_each_old_class_a_new_class_share():
    # one new class of 96 against four old ones: 96 replayed per old class
    assert replay_size({"entertainment": 96}, {"a", "b", "c", "d"}, 1.0) == 384
    # two new classes of 80: each of two old classes gets 80 x 0.5
    assert replay_size({"tech": 80, "sport": 80}, {"a", "b"}, 0.5) == 80
    assert replay_size({"tech": 80}, set(), 1.0) == 0
    assert class_balanced_sample(synthetic_frame({"red": 5}), 0, 0).empty
