from ratchet.config import PolicySettings
from ratchet.policy import should_train


def test_every_batch_always_trains():
    assert should_train(PolicySettings(train_on="every_batch"), drifted=False, pending_examples=1).train


def test_drift_policy_waits_without_drift():
    settings = PolicySettings(train_on="drift")
    assert not should_train(settings, drifted=False, pending_examples=1000).train
    assert should_train(settings, drifted=True, pending_examples=10).train


def test_min_new_examples_accumulates_until_enough():
    settings = PolicySettings(train_on="min_new_examples", min_new_examples=100)
    decision = should_train(settings, drifted=True, pending_examples=99)
    assert not decision.train and "99 < 100" in decision.reason
    assert should_train(settings, drifted=False, pending_examples=100).train
