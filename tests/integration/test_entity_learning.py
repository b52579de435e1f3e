"""Learning entities on a tiny random BERT: a tagger memorises its sentences, and an increment that
brings a new type keeps the old ones through pseudo-labels, replay and distillation (naively it does not)."""

import copy

import pytest

from ratchet import modeling
from ratchet.config import ContinualSettings
from ratchet.entities.increment import learn_entity_increment
from ratchet.entities.memory import SentenceMemory
from ratchet.entities.metrics import entity_scores
from ratchet.entities.tagger import Tagger, load_tagger
from tests.unit.test_entity_model import (
    TAGS,
    TASK,
    TRAIN,
    TYPES,
    _fit,
    settings_for,
    tagged_sentences,
)


def test_a_tiny_tagger_memorises_its_entities_and_reloads_identically(tiny_model_dir, tmp_path):
    model_settings = settings_for(tiny_model_dir)
    model = modeling.build_trainable(model_settings, TAGS, seed=0, start_from=None, task=TASK)
    tokenizer = modeling.load_tokenizer(model_settings)
    data = tagged_sentences(32, seed=1)
    report = _fit(model, tokenizer, data, TRAIN)
    assert report.examples_processed == 32 * TRAIN.epochs
    predicted = Tagger(model, tokenizer, TAGS, 48).predict(list(data["tokens"]))
    learned = entity_scores(list(data["tags"]), predicted, TYPES)
    assert learned.micro_f1 > 0.9, learned

    modeling.save_model(model, tmp_path / "tagger", model_settings, TAGS, task=TASK)
    reloaded = load_tagger(tmp_path / "tagger", model_settings)
    assert reloaded.predict(list(data["tokens"])) == predicted
    spans = reloaded.extract([data["tokens"][0]])[0]
    assert [s.span.type for s in spans] == [t[2:] for t in data["tags"][0] if t.startswith("B-")]
    assert all(0.0 < s.score <= 1.0 for s in spans)
    with pytest.raises(modeling.ModelError, match="not a text classifier"):
        modeling.load_classifier(tmp_path / "tagger", model_settings)


def test_predict_returns_the_token_champions_spans_and_refuses_a_champion_of_the_other_task(tiny_model_dir, tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    from ratchet import store
    from ratchet.cli import app
    from ratchet.paths import ProjectPaths
    from ratchet.records import ChampionManifest

    paths = ProjectPaths.at(tmp_path)
    model_settings = settings_for(tiny_model_dir)
    params = {"task": TASK, "data": {"entity_types": TYPES}, "model": model_settings.model_dump()}
    paths.params.write_text(yaml.safe_dump(params))
    model = modeling.build_trainable(model_settings, TAGS, seed=0, start_from=None, task=TASK)
    data = tagged_sentences(32, seed=1)
    _fit(model, modeling.load_tokenizer(model_settings), data, TRAIN)
    saved = modeling.save_model(model, tmp_path / "candidate", model_settings, TAGS, task=TASK)
    store.install_champion(paths, tmp_path / "candidate",
                           ChampionManifest(**saved.model_dump(), version="3", run_id="r"))
    sentence = data.iloc[0]
    result = CliRunner().invoke(app, ["predict", " ".join(sentence["tokens"]), "--json", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    [answer] = json.loads(result.stdout)
    assert answer["champion"] == "3" and answer["words"] == list(sentence["tokens"])
    expected = [t[2:] for t in sentence["tags"] if t.startswith("B-")]
    assert [e["type"] for e in answer["entities"]] == expected
    assert all(" ".join(answer["words"][e["start"]:e["end"]]) == e["text"] for e in answer["entities"])

    text_params = {"data": {"labels": ["a", "b"]}, "model": model_settings.model_dump()}
    paths.params.write_text(yaml.safe_dump(text_params))
    refused = CliRunner().invoke(app, ["predict", "hello", "--project", str(tmp_path)])
    assert refused.exit_code == 2 and "is a token-classification model" in " ".join(refused.output.split())


def test_an_increment_pseudo_labels_the_old_types_and_keeps_them(tiny_model_dir):
    """Step 1 learns red and green; step 2's sentences tag only blue (their red and green entities
    are O). With pseudo-labels, replay and distillation the model still tags step 1's sentences;
    naively it learns that red and green words are nothing. (Scored on the sentences each step
    trained on: a tiny random BERT memorises, it does not generalise to new sentences.)"""
    model_settings = settings_for(tiny_model_dir)
    tokenizer = modeling.load_tokenizer(model_settings)
    first = tagged_sentences(40, seed=2, types=["red", "green"], prefix="a")
    second = tagged_sentences(40, seed=3, types=TYPES, prefix="b")
    second_as_given = second.assign(tags=[[t if t == "O" or t.endswith("blue") else "O" for t in tags]
                                          for tags in second["tags"]])
    on = ContinualSettings(replay={"ratio": 0.5, "min_per_old_class": 10}, distillation={"weight": 1.0},
                           pseudo_labels={"threshold": 0.5})
    off = ContinualSettings(replay={"selection": "none"}, distillation={"weight": 0.0},
                            pseudo_labels={"enabled": False})
    champion = modeling.build_trainable(model_settings, TAGS, seed=0, start_from=None, task=TASK)
    _, trained = learn_entity_increment(champion, tokenizer, first, first.iloc[:0], TAGS, [], ["red", "green"],
                                        off, TRAIN, 48)
    memory = SentenceMemory(per_type=30)
    memory.add(trained, ["red", "green"])
    results = {}
    for name, continual in (("retained", on), ("naive", off)):
        model = copy.deepcopy(champion)
        replayed = memory.sample(10, seed=0) if name == "retained" else first.iloc[:0]
        report, _ = learn_entity_increment(model, tokenizer, second_as_given, replayed, TAGS, ["red", "green"], ["blue"],
                                           continual, TRAIN, 48)
        tagger = Tagger(model, tokenizer, TAGS, 48)
        old = entity_scores(list(first["tags"]), tagger.predict(list(first["tokens"])), ["red", "green"])
        new = entity_scores(list(second["tags"]), tagger.predict(list(second["tokens"])), ["blue"])
        results[name] = (report, old.macro_f1, new.macro_f1)
    (retained, retained_old, retained_new), (naive, naive_old, naive_new) = results["retained"], results["naive"]
    assert retained.pseudo_labels.words > 20 and set(retained.pseudo_labels.entities) == {"red", "green"}
    assert 0 < retained.replayed <= 20 and retained.distilled_words > 0
    assert naive.pseudo_labels.words == 0 and naive.replayed == 0 and naive.distilled_words == 0
    assert retained_new > 0.8 and naive_new > 0.8, results
    assert retained_old > 0.7 and retained_old > naive_old + 0.3, results
