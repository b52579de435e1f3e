from ratchet.config import PolicySettings
from ratchet.policy import should_train


def test_every_batch_always_trains():
    assert should_train(PolicySettings(train_on="every_batch"), "none", 1, None).train


def test_drift_policy_trains_from_the_configured_severity():
    settings = PolicySettings(train_on="drift", min_severity="medium")
    assert not should_train(settings, "none", 1000, 5.0).train
    assert not should_train(settings, "low", 1000, 5.0).train
    assert should_train(settings, "medium", 10, 5.0).train
    assert should_train(settings, "high", 10, 5.0).train


def test_min_new_examples_accumulates_until_enough():
    settings = PolicySettings(train_on="min_new_examples", min_new_examples=100)
    decision = should_train(settings, "high", 99, 1.0)
    assert not decision.train and "99 < 100" in decision.reason
    assert should_train(settings, "none", 100, 1.0).train


def test_schedule_trains_once_the_interval_has_passed():
    settings = PolicySettings(train_on="schedule", every_hours=24)
    assert should_train(settings, "none", 1, None).train  # never trained
    waiting = should_train(settings, "high", 1000, 23.0)
    assert not waiting.train and "23.0 h" in waiting.reason
    assert should_train(settings, "none", 1, 24.5).train


def test_cooldown_holds_back_every_rule():
    settings = PolicySettings(train_on="every_batch", cooldown_hours=2)
    held = should_train(settings, "high", 1000, 1.5)
    assert not held.train and held.reason.startswith("cooldown")
    assert should_train(settings, "none", 1, 2.5).train
