"""The token-classification model on a tiny random BERT: sub-token alignment, training, tagging,
save/load, pseudo-labels and entity-level scores."""

import random

import numpy as np
import pandas as pd
import pytest

from ratchet import modeling
from ratchet.config import ModelSettings, TrainSettings
from ratchet.entities.alignment import IGNORE, encode_words, piece_labels
from ratchet.entities.fit import fit_tags
from ratchet.entities.increment import pseudo_label
from ratchet.entities.metrics import entity_scores
from ratchet.entities.tagger import Tagger, load_tagger
from ratchet.entities.tags import active_tags, tag_set
from tests.conftest import CLASS_WORDS, FILLER

TYPES = ["red", "green", "blue"]
TAGS = tag_set(TYPES)
TASK = "token-classification"


def tagged_sentences(n: int, seed: int, types=TYPES, prefix: str = "s") -> pd.DataFrame:
    """Filler words with one- or two-word entities drawn from each type's vocabulary."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        tokens, tags = [], []
        for _ in range(rng.randint(2, 4)):
            tokens += [rng.choice(FILLER) for _ in range(rng.randint(1, 3))]
            tags += ["O"] * (len(tokens) - len(tags))
            kind = rng.choice(types)
            words = [rng.choice(CLASS_WORDS[kind]) for _ in range(rng.randint(1, 2))]
            tokens += words
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        rows.append({"id": f"{prefix}{i}", "tokens": tokens, "tags": tags})
    return pd.DataFrame(rows)


def settings_for(tiny_model_dir, finetune="full") -> ModelSettings:
    return ModelSettings(base=str(tiny_model_dir), max_length=48, finetune=finetune,
                         lora={"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["query", "value"]})


# 32-40 sentences, 12 epochs of 4: full fine-tuning of the tiny BERT tags them all (8 epochs of 8 do not)
TRAIN = TrainSettings(epochs=12, batch_size=4, learning_rate=3e-3, warmup_ratio=0.1, seed=0)


def test_only_the_first_sub_token_of_a_word_carries_its_tag(tiny_model_dir):
    tokenizer = modeling.load_tokenizer(settings_for(tiny_model_dir))
    [encoded] = encode_words(tokenizer, [["Obama", "visited", "Kalamazoo"]], max_length=32)
    assert len(encoded.first_pieces) == 3 and encoded.cut_off == 0
    labels = piece_labels(encoded, [1, 0, 3])
    assert [labels[p] for p in encoded.first_pieces] == [1, 0, 3]
    assert sum(label != IGNORE for label in labels) == 3   # [CLS], [SEP] and later pieces are ignored
    assert len(encoded.input_ids) == 7                     # Kalamazoo is split into three pieces
    [short] = encode_words(tokenizer, [["word"] * 40], max_length=12)
    assert short.cut_off == 40 - 10                        # 12 pieces minus [CLS] and [SEP]


def _fit(model, tokenizer, data: pd.DataFrame, train: TrainSettings):
    index = {tag: i for i, tag in enumerate(TAGS)}
    encoded = encode_words(tokenizer, list(data["tokens"]), 48)
    return fit_tags(model, tokenizer, encoded, [[index[t] for t in tags] for tags in data["tags"]], train)


def test_a_lora_tagger_saves_its_adapter_and_reloads_with_the_same_tags(tiny_model_dir, tmp_path):
    model_settings = settings_for(tiny_model_dir, finetune="lora")
    model = modeling.build_trainable(model_settings, TAGS, seed=0, start_from=None, task=TASK)
    tokenizer = modeling.load_tokenizer(model_settings)
    data = tagged_sentences(16, seed=1)
    _fit(model, tokenizer, data, TRAIN.model_copy(update={"epochs": 2}))
    probabilities = Tagger(model, tokenizer, TAGS, 48).word_probabilities(list(data["tokens"]))
    manifest = modeling.save_model(model, tmp_path / "lora", model_settings, TAGS, task=TASK)
    assert manifest.kind == "lora" and manifest.task == TASK and manifest.labels == TAGS
    reloaded = load_tagger(tmp_path / "lora", model_settings)   # adapter merged into a rebuilt token model
    for before, after in zip(probabilities, reloaded.word_probabilities(list(data["tokens"]))):
        np.testing.assert_allclose(before, after, atol=1e-5)


def test_a_text_champion_cannot_be_continued_as_a_tagger(tiny_model_dir, tmp_path):
    model_settings = settings_for(tiny_model_dir)
    text = modeling.build_trainable(model_settings, TAGS, seed=0, start_from=None)
    modeling.save_model(text, tmp_path / "text", model_settings, TAGS)
    with pytest.raises(modeling.ModelError, match="text-classification model"):
        modeling.build_trainable(model_settings, TAGS, seed=0, start_from=tmp_path / "text", task=TASK)


def test_tags_of_types_not_learned_yet_are_never_answered_and_get_no_gradient(tiny_model_dir):
    model_settings = settings_for(tiny_model_dir)
    model = modeling.build_trainable(model_settings, TAGS, seed=0, start_from=None, task=TASK)
    tokenizer = modeling.load_tokenizer(model_settings)
    active = active_tags(TAGS, ["red"])
    assert active == [True, True, True, False, False, False, False]
    data = tagged_sentences(8, seed=1, types=["red"])
    head = model.classifier.weight.detach().clone()
    index = {tag: i for i, tag in enumerate(TAGS)}
    encoded = encode_words(tokenizer, list(data["tokens"]), 48)
    fit_tags(model, tokenizer, encoded, [[index[t] for t in tags] for tags in data["tags"]],
             TRAIN.model_copy(update={"epochs": 1, "weight_decay": 0.0}), active=active)
    moved = (model.classifier.weight.detach() - head).abs().sum(dim=1)
    assert (moved[:3] > 0).all() and (moved[3:] == 0).all()      # green and blue rows untouched
    probabilities = Tagger(model, tokenizer, TAGS, 48, active=active).word_probabilities(list(data["tokens"]))
    assert all(p[:, 3:].max() == 0.0 for p in probabilities)
    assert {t for tags in Tagger(model, tokenizer, TAGS, 48, active=active).predict(list(data["tokens"]))
            for t in tags} <= {"O", "B-red", "I-red"}


def test_pseudo_labels_fill_only_confident_old_types_on_o_words():
    tags = [["O", "O", "B-blue", "O"]]
    probabilities = np.zeros((4, len(TAGS)), dtype=np.float32)
    probabilities[:, 0] = 1.0
    probabilities[0] = 0.0
    probabilities[0, TAGS.index("I-red")] = 0.9            # confident, old type, on an O word
    probabilities[1] = 0.0
    probabilities[1, TAGS.index("B-red")] = 0.4            # old type, below the threshold
    probabilities[1, 0] = 0.6
    probabilities[2] = 0.0
    probabilities[2, TAGS.index("B-red")] = 0.99           # the batch's own tag is never overwritten
    probabilities[3] = 0.0
    probabilities[3, TAGS.index("B-green")] = 0.99         # not an old type: never pseudo-labelled
    out, counts = pseudo_label(tags, [probabilities], TAGS, old_types={"red"}, threshold=0.5)
    assert out == [["B-red", "O", "B-blue", "O"]]          # repaired: an entity starts with B-
    assert (counts.words, counts.sentences, counts.entities) == (1, 1, {"red": 1})


def test_entity_scores_are_strict_and_macro_counts_a_missed_type_as_zero():
    reference = [["B-red", "I-red", "O", "B-blue"], ["B-green", "O"]]
    predicted = [["B-red", "O", "O", "B-blue"], ["O", "O"]]     # red's span is cut short: a miss
    scores = entity_scores(reference, predicted, TYPES)
    assert scores.per_type["blue"].f1 == 1.0 and scores.per_type["red"].f1 == 0.0
    assert scores.per_type["green"].support == 1 and scores.per_type["green"].f1 == 0.0
    assert scores.macro_f1 == pytest.approx(1 / 3) and scores.micro_f1 == pytest.approx(2 * (1 / 2 * 1 / 3) / (1 / 2 + 1 / 3))
    assert entity_scores(reference, predicted, ["blue"]).macro_f1 == 1.0    # other types left out


def test_typed_text_is_split_into_words_the_way_tweets_were_annotated():
    from ratchet.entities.tagger import split_words

    assert split_words("@Barack Obama's visit to New-York: https://t.co/x #win, isn't it?") == [
        "@Barack", "Obama's", "visit", "to", "New-York", ":", "https://t.co/x", "#win", ",", "isn't", "it", "?"]
