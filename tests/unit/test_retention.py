"""Retention mathematics: distillation, EWC / L2-SP anchors, FGM, early stopping on old data."""

import pytest
import torch

from ratchet import modeling
from ratchet.config import ContinualSettings, LoraSettings, ModelSettings, TrainSettings
from ratchet.continual.early_stopping import OldDataMonitor
from ratchet.continual.increment import learn_increment
from ratchet.continual.mix import IncrementData
from ratchet.continual.plugins import LogitDistillation
from ratchet.continual.retention import (
    FGM,
    WeightAnchor,
    distillation_loss,
    distillation_per_example,
    fisher_diagonal,
    rows_the_teacher_contradicts,
)
from ratchet.training.plugins import TrainingStep
from tests.conftest import synthetic_frame

LABELS = ["red", "green", "blue"]


def tiny(tiny_model_dir, finetune="full"):
    settings = ModelSettings(base=str(tiny_model_dir), max_length=32, finetune=finetune,
                             lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    return modeling.build_trainable(settings, LABELS, 0, None), modeling.load_tokenizer(settings)


def test_distillation_is_zero_when_student_equals_teacher_and_positive_otherwise():
    logits = torch.randn(8, 5)
    assert float(distillation_loss(logits, logits.clone(), temperature=2.0)) == 0.0
    assert float(distillation_loss(logits + torch.randn(8, 5), logits, temperature=2.0)) > 0.0
    # restricted to the old classes: changing only a new class's logit costs nothing
    moved = logits.clone()
    moved[:, 4] += 3.0
    assert float(distillation_loss(moved, logits, 2.0, classes=torch.tensor([0, 1, 2]))) < 1e-7


def test_the_teacher_contradicts_a_row_only_where_it_answers_another_class_it_knows():
    known = torch.tensor([0, 1])                      # class 2 is new: the teacher never learned it
    teacher = torch.tensor([[3.0, 0.0, 9.0],          # label 0, answers 0 (class 2 is not its answer)
                            [3.0, 0.0, 0.0],          # label 1, answers 0: contradicted
                            [0.0, 3.0, 0.0],          # label 2 (new), answers 1: not contradicted
                            [0.0, 3.0, 0.0]])         # label 1, answers 1
    labels = torch.tensor([0, 1, 2, 1])
    assert rows_the_teacher_contradicts(teacher, labels, known).tolist() == [False, True, False, False]


def _distillation_step(logits: torch.Tensor, mine: list[int], batch: list[int]) -> TrainingStep:
    return TrainingStep(model=None, logits=logits, mine=mine, batch=batch, share=len(mine) / len(batch), world=1,
                        task_loss=lambda: torch.tensor(0.0), epoch=1, step=1)


def test_distillation_that_leaves_rows_out_sums_the_others_over_the_whole_batch():
    torch.manual_seed(0)
    teacher, student = torch.randn(6, 3), torch.randn(6, 3)
    classes = torch.tensor([0, 1])
    step = _distillation_step(student, list(range(6)), list(range(6)))
    plain = LogitDistillation(teacher, 0.5, 2.0, classes).loss_term(step)
    every_row = LogitDistillation(teacher, 0.5, 2.0, classes, torch.ones(6)).loss_term(step)
    assert float(every_row) == pytest.approx(float(plain), rel=1e-6)
    kept = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    some_rows = LogitDistillation(teacher, 0.5, 2.0, classes, kept).loss_term(step)
    per_row = distillation_per_example(student, teacher, 2.0, classes)
    assert float(some_rows) == pytest.approx(0.5 * float(per_row[kept.bool()].sum()) / 6, rel=1e-6)
    # a row left out gets no gradient from the term
    moved = student.clone().requires_grad_(True)
    LogitDistillation(teacher, 0.5, 2.0, classes, kept).loss_term(_distillation_step(moved, list(range(6)),
                                                                                      list(range(6)))).backward()
    assert moved.grad[1].abs().sum() == 0 and moved.grad[0].abs().sum() > 0


def test_the_increment_distils_nothing_on_rows_the_champion_gets_wrong_when_asked(tiny_model_dir):
    from ratchet.continual.plugins import build_plugins
    from ratchet.training.batching import batch_logits, encode

    model, tokenizer = tiny(tiny_model_dir)
    mix = synthetic_frame({"red": 10, "green": 10, "blue": 6}, seed=3).assign(replayed=False)
    label_index = {label: i for i, label in enumerate(LABELS)}
    asked = ContinualSettings.model_validate({"distillation": {"skip_champion_errors": True, "feature_weight": 0}})
    [lwf] = build_plugins(model, tokenizer, mix, mix.iloc[:0], ["red", "green"], label_index, asked, 32, seed=0)
    answers = batch_logits(model, tokenizer, encode(tokenizer, mix["text"].tolist(), 32))[:, :2].argmax(dim=-1)
    wrong = [label != "blue" and LABELS[int(a)] != label for label, a in zip(mix["label"], answers)]
    assert any(wrong) and not all(wrong)                 # a random champion gets some rows right
    assert lwf.distilled_rows.tolist() == [0.0 if w else 1.0 for w in wrong]
    assert lwf.distilled_rows[mix["label"].eq("blue").to_numpy()].eq(1.0).all()   # new class: always distilled
    [plain] = build_plugins(model, tokenizer, mix, mix.iloc[:0], ["red", "green"], label_index,
                            ContinualSettings.model_validate({"distillation": {"feature_weight": 0}}), 32, seed=0)
    assert plain.distilled_rows is None


def test_anchor_penalty_is_zero_at_the_anchor_and_grows_away_from_it(tiny_model_dir):
    model, _ = tiny(tiny_model_dir)
    anchor = WeightAnchor(model, weight=10.0)
    assert float(anchor.penalty(model).detach()) == 0.0
    with torch.no_grad():
        model.classifier.weight.add_(0.1)
    n = model.classifier.weight.numel()     # 0.5 * weight * n * 0.1²
    assert abs(float(anchor.penalty(model).detach()) - 0.5 * 10.0 * n * 0.01) < 1e-4


@pytest.mark.parametrize("finetune", ["full", "lora"])   # under LoRA the head is peft's trained copy
def test_anchor_leaves_the_head_rows_of_classes_the_champion_never_learned_free(tiny_model_dir, finetune):
    from ratchet.continual.retention import classifier_head

    model, _ = tiny(tiny_model_dir, finetune=finetune)
    head = classifier_head(model)
    anchor = WeightAnchor(model, weight=10.0, free_classes=[2])
    with torch.no_grad():                    # only the free rows move: no penalty
        head.weight[2:].add_(1.0)
        head.bias[2:].add_(1.0)
    assert float(anchor.penalty(model).detach()) == 0.0
    with torch.no_grad():                    # a learned class's row moves: the full L2-SP pull
        head.weight[0].add_(0.1)
    n = head.weight.shape[1]
    assert abs(float(anchor.penalty(model).detach()) - 0.5 * 10.0 * n * 0.01) < 1e-4


def test_ewc_fisher_is_non_negative_normalised_and_zero_penalty_at_the_anchor(tiny_model_dir):
    model, tokenizer = tiny(tiny_model_dir)
    frame = synthetic_frame({"red": 8, "green": 8})
    encoded = tokenizer(frame["text"].tolist(), truncation=True, max_length=32)["input_ids"]
    batches = [tokenizer.pad({"input_ids": encoded[i:i + 4]}, return_tensors="pt") for i in range(0, 16, 4)]
    fisher = fisher_diagonal(model, batches, torch.tensor([LABELS.index(v) for v in frame["label"]]), 4)
    values = torch.cat([f.flatten() for f in fisher.values()])
    assert (values >= 0).all() and abs(float(values.mean()) - 1.0) < 1e-4
    ewc = WeightAnchor(model, weight=1.0, importance=fisher)
    assert float(ewc.penalty(model).detach()) == 0.0
    with torch.no_grad():
        model.classifier.weight.add_(0.1)
    assert float(ewc.penalty(model).detach()) > 0.0


def test_fgm_adds_an_adversarial_gradient_and_leaves_the_embeddings_as_they_were(tiny_model_dir):
    model, tokenizer = tiny(tiny_model_dir, finetune="lora")   # frozen embeddings: the harder case
    batch = tokenizer(["red apple fire", "blue ocean sky"], padding=True, return_tensors="pt")
    target = torch.tensor([0, 2])
    embeddings_before = model.get_input_embeddings().weight.detach().clone()
    fgm = FGM(model, epsilon=1.0)

    def loss():
        return torch.nn.functional.cross_entropy(model(**batch).logits, target)

    loss().backward()
    clean = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    fgm.adversarial_step(loss)
    fgm.remove()
    changed = [n for n, p in model.named_parameters() if p.grad is not None and not torch.equal(p.grad, clean[n])]
    assert changed, "the adversarial pass must add to the gradients"
    assert torch.equal(model.get_input_embeddings().weight, embeddings_before)


def test_early_stopping_restores_the_last_weights_within_tolerance(tiny_model_dir):
    model, tokenizer = tiny(tiny_model_dir)
    old = synthetic_frame({"red": 10, "green": 10}, seed=5)
    monitor = OldDataMonitor(model, tokenizer, old["text"].tolist(), [LABELS.index(v) for v in old["label"]],
                             32, max_old_drop=0.0, checks_per_epoch=1)
    monitor.baseline = 0.0                                   # anything is within tolerance at first
    assert not monitor.should_stop(model, step=1)
    good = model.classifier.weight.detach().clone()
    monitor.baseline = 2.0                                   # now nothing is: the next check stops
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    assert monitor.should_stop(model, step=2)
    monitor.restore_best(model)
    assert torch.equal(model.classifier.weight, good)
    assert [s for s, _ in monitor.trace] == [0, 1, 2]


def test_early_stopping_waits_for_patience(tiny_model_dir):
    model, tokenizer = tiny(tiny_model_dir)
    old = synthetic_frame({"red": 10, "green": 10}, seed=5)
    monitor = OldDataMonitor(model, tokenizer, old["text"].tolist(), [LABELS.index(v) for v in old["label"]],
                             32, max_old_drop=0.0, checks_per_epoch=1, patience=2)
    monitor.baseline = 2.0                                   # every check misses
    assert not monitor.should_stop(model, step=1)            # one miss: keep going
    assert monitor.should_stop(model, step=2)                # two in a row: stop
    monitor.restore_best(model)                              # nothing within tolerance: weights stay


def test_an_increment_with_every_retention_term_learns_the_new_class(tiny_model_dir):
    """Mechanics end to end on the tiny model: replay + KD + EWC + early-stop checks + FGM together.

    A memorisation check (the tiny random model does not generalise from 30 examples): after the
    increment it must know the new class and still know the old ones on the rows it saw.
    """
    model, tokenizer = tiny(tiny_model_dir)
    first = synthetic_frame({"red": 30, "green": 30}, seed=1)
    fast = TrainSettings(epochs=8, batch_size=16, learning_rate=2e-3, warmup_ratio=0.0)
    off = ContinualSettings.model_validate({"early_stopping": {"enabled": False}})
    learn_increment(model, tokenizer, IncrementData.from_parts(first, first.iloc[:0], first.iloc[:0], [], seed=0), LABELS, off,
                    fast, 32, show_progress=False)
    settings = ContinualSettings.model_validate({
        "regularization": {"method": "ewc", "weight": 1.0, "fisher_examples": 16},
        "early_stopping": {"enabled": True, "max_old_drop": 1.0, "checks_per_epoch": 1, "min_epochs": 0},
        "fgm_epsilon": 0.1})
    new, replay = synthetic_frame({"blue": 30}, seed=2), first.sample(n=20, random_state=0)
    data = IncrementData.from_parts(new, replay, first.drop(replay.index), ["red", "green"], seed=0)
    report, mix = learn_increment(model, tokenizer, data, LABELS, settings, fast, 32, show_progress=False)
    # blue is new to the champion: 5 of its rows are held out to fit the bias correction
    assert report.held_out_new == 5 and set(report.bias_offsets) == {"blue"}
    assert len(mix) == 45 and report.examples_processed == 360 and not report.stopped_early
    assert len(report.old_accuracy_trace) == 9           # the champion's baseline + one check per epoch
    classifier = modeling.Classifier(model, tokenizer, LABELS, 32)
    for frame in (mix[~mix["replayed"]], replay):
        predicted = classifier.predict(frame["text"].tolist())
        assert sum(p == t for p, t in zip(predicted, frame["label"])) / len(frame) >= 0.9


def test_weight_aligning_gives_new_classes_the_old_classes_mean_norm(tiny_model_dir):
    from ratchet.continual.retention import align_head, classifier_head

    model, _ = tiny(tiny_model_dir, finetune="lora")   # the head is LoRA's saved copy of the classifier
    head = classifier_head(model)
    with torch.no_grad():
        head.weight[2] *= 3.0
    norms = head.weight.norm(dim=1)
    factor = align_head(model, old_classes=[0, 1], new_classes=[2])
    assert factor is not None and abs(float(head.weight[2].norm()) - float(norms[:2].mean())) < 1e-5
    assert align_head(model, old_classes=[], new_classes=[2]) is None


def test_feature_distillation_reads_what_the_head_reads_and_keeps_it_near_the_champion(tiny_model_dir):
    from ratchet.continual.retention import classifier_head, feature_distances, text_vector_module
    from ratchet.training.batching import batch_logits, batch_module_outputs, encode

    model, tokenizer = tiny(tiny_model_dir, finetune="lora")
    first = synthetic_frame({"red": 30, "green": 30}, seed=1)
    fast = TrainSettings(epochs=6, batch_size=16, learning_rate=2e-3, warmup_ratio=0.0)
    off = ContinualSettings.model_validate({"bias_correction": {"enabled": False}})
    learn_increment(model, tokenizer, IncrementData.from_parts(first, first.iloc[:0], first.iloc[:0], [], seed=0), LABELS, off,
                    fast, 32, show_progress=False)
    encoded = encode(tokenizer, first["text"].tolist(), 32)
    champion = batch_module_outputs(model, text_vector_module(model), tokenizer, encoded)
    assert champion.shape == (60, model.config.hidden_size)
    assert float(feature_distances(champion, champion.clone()).max()) == 0.0
    # the pooler's output is exactly what the (LoRA-saved) head turns into logits
    with torch.no_grad():
        torch.testing.assert_close(classifier_head(model)(champion), batch_logits(model, tokenizer, encoded),
                                   atol=1e-5, rtol=1e-5)

    new, replay = synthetic_frame({"blue": 30}, seed=2), first.sample(n=20, random_state=0)
    data = IncrementData.from_parts(new, replay, first.drop(replay.index), ["red", "green"], seed=0)
    encoded = encode(tokenizer, replay["text"].tolist(), 32)   # the rows whose vectors are kept
    champion = batch_module_outputs(model, text_vector_module(model), tokenizer, encoded)
    drift = {}
    for weight in (0.0, 50.0):
        continued = tiny(tiny_model_dir, finetune="lora")[0]
        continued.load_state_dict(model.state_dict())
        settings = off.model_copy(update={"distillation": off.distillation.model_copy(
            update={"weight": 0.0, "feature_weight": weight})})
        learn_increment(continued, tokenizer, data, LABELS, settings, fast, 32, show_progress=False)
        after = batch_module_outputs(continued, text_vector_module(continued), tokenizer, encoded)
        drift[weight] = float(feature_distances(after, champion).mean())
    assert drift[50.0] < 0.5 * drift[0.0]


def test_der_pulls_only_the_replayed_rows_logits_toward_the_stored_ones():
    from ratchet.continual.plugins import StoredLogitReplay
    from ratchet.training.plugins import TrainingStep

    stored = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]])
    kept = torch.tensor([True, False, True])        # row 1 is new data: no stored logits
    plugin = StoredLogitReplay(stored, kept, weight=0.5)

    def step(logits, rows):
        return TrainingStep(model=None, logits=logits, mine=rows, batch=rows, share=1.0, world=1,
                            task_loss=lambda: None, epoch=0, step=1)

    assert float(plugin.loss_term(step(stored.clone(), [0, 1, 2]))) == 0.0
    moved = stored.clone()
    moved[1] += 10.0                                   # the new row's logits are free
    assert float(plugin.loss_term(step(moved, [0, 1, 2]))) == 0.0
    moved[2] = torch.tensor([0.0, 0.0])                # a replayed row drifts: 0.5 x mean((0, 2)^2) / 2 rows
    assert float(plugin.loss_term(step(moved, [0, 1, 2]))) == pytest.approx(0.5 * 2.0 / 2)
    assert plugin.loss_term(step(stored[[1]], [1])) is None   # a batch without replayed rows
