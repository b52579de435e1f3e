"""Stream files: rows to steps by rules (labels, dates), label maps, test splits, clear errors."""

import pandas as pd
import pytest

from ratchet.bench.streams import StreamError, builtin_streams, load_stream, resolve_stream_file


def write_stream(tmp_path, body: str):
    file = tmp_path / "stream.yaml"
    file.write_text(body)
    return file


@pytest.fixture
def reviews(tmp_path):
    frame = pd.DataFrame({
        "review": [f"review number {i}" for i in range(40)],
        "stars": ["good", "bad"] * 20,
        "when": ["March 3, 2013"] * 20 + ["June 9, 2016"] * 20})
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    return tmp_path


def test_rows_go_to_steps_by_date_with_a_stratified_test_split(reviews):
    file = write_stream(reviews, """
name: tiny
labels: [negative, positive]
sources:
  - file: reviews.csv
    text: review
    label: stars
    label_map: {good: positive, bad: negative}
    columns: {when: date}
steps:
  - {name: early, where: {column: date, before: "2015-01-01"}}
  - {name: late, where: {column: date, from: "2015-01-01"}}
test: {fraction: 0.25}
""")
    stream = load_stream(file)
    assert [s.name for s in stream.steps] == ["early", "late"]
    early = stream.steps[0]
    assert (len(early.train), len(early.test)) == (16, 4)   # round(10 * 0.25) = 2 per class
    assert set(early.train["label"]) == {"negative", "positive"}
    assert not set(early.train["text"]) & set(early.test["text"])
    assert all(int(t.split()[-1]) < 20 for t in early.train["text"])
    halved = load_stream(file, train_fraction=0.4)
    assert len(halved.steps[0].train) == 6 and len(halved.steps[0].test) == 4, "tests stay whole"
    validated = load_stream(file, validation_fraction=0.25)
    step = validated.steps[0]
    assert (len(step.train), len(step.validation), len(step.test)) == (12, 4, 4)
    assert set(step.validation["label"]) == {"negative", "positive"}       # stratified
    assert step.test.equals(early.test), "the test rows do not move"
    assert not set(step.validation["text"]) & (set(step.train["text"]) | set(step.test["text"]))
    assert set(step.validation["text"]) | set(step.train["text"]) == set(early.train["text"])
    assert stream.steps[0].validation is None
    capped = load_stream(file, max_train_per_step=6, validation_fraction=0.25).steps[0]
    assert (len(capped.train), len(capped.validation)) == (4, 2), "by default the cap thins the slice too"
    drawn_first = load_stream(file, max_train_per_step=6, validation_fraction=0.25, max_validation_per_step=3).steps[0]
    assert (len(drawn_first.train), len(drawn_first.validation)) == (6, 3), "the slice comes first, then the cap"
    assert not set(drawn_first.validation["text"]) & set(drawn_first.train["text"])
    assert set(drawn_first.validation["text"]) <= set(early.train["text"])
    assert len(load_stream(file, max_train_per_step=6, validation_fraction=0.25,
                           max_validation_per_step=50).steps[0].validation) == 4, "the fraction still bounds it"


@pytest.mark.parametrize("source, labels, step, error", [
    ("{file: reviews.csv, text: body, label: stars}", "[negative, positive]", "[positive]",
     r"sources\[0\]: column\(s\) \['body'\] not in the data"),
    ("{file: reviews.csv, text: review, label: stars}", "[good, bad]", "[ugly]",
     r"steps\[0\] \(only\) matches no rows"),
    ("{file: missing.csv, text: review, label: stars}", "[good, bad]", "[good]", r"missing.csv does not exist"),
])
def test_errors_name_the_file_and_the_key(reviews, source, labels, step, error):
    file = write_stream(reviews, f"""
name: tiny
labels: {labels}
sources: [{source}]
steps: [{{name: only, where: {{column: label, in: {step}}}}}]
""")
    with pytest.raises(StreamError, match=error):
        load_stream(file)


def test_an_unknown_stream_name_lists_the_known_ones():
    with pytest.raises(StreamError, match="unknown stream 'nope'"):
        resolve_stream_file("nope", None)


def test_the_shipped_streams_are_there():
    assert {"bbc-class-incremental", "bbc-small-steps", "sentiment-domain-incremental",
            "drug-temporal", "chat-topics", "bbc-headlines"} <= set(builtin_streams())


CAPPED = """
name: capped
labels: [good, bad]
sources: [{file: reviews.csv, text: review, label: stars}]
steps: [{name: all, where: {column: label, in: [good, bad]}}]
test: {fraction: 0.25}
max_train_per_class: 6
"""


def test_a_stream_can_cap_its_training_rows_per_class(reviews):
    step = load_stream(write_stream(reviews, CAPPED)).steps[0]
    assert step.train["label"].value_counts().to_dict() == {"good": 6, "bad": 6} and len(step.test) == 10


def test_a_capped_stream_can_draw_its_validation_slices_from_the_rows_the_cap_leaves_out(reviews):
    file = write_stream(reviews, CAPPED + "validation_beyond_cap: true\n")
    plain = load_stream(file).steps[0]
    step = load_stream(file, validation_fraction=0.2, max_validation_per_step=8).steps[0]
    assert step.train.equals(plain.train), "the slice takes none of the capped training rows"
    assert len(step.validation) == 8 and set(step.validation["label"]) == {"good", "bad"}
    assert not set(step.validation["text"]) & (set(step.train["text"]) | set(step.test["text"]))
    # without max_validation_per_step the fraction sizes it: 0.2 of the step's 30 train rows
    assert len(load_stream(file, validation_fraction=0.2).steps[0].validation) == 6
    # at most what the cap leaves out (30 - 12 rows)
    assert len(load_stream(file, validation_fraction=0.2, max_validation_per_step=50).steps[0].validation) == 18
    inside = load_stream(write_stream(reviews, CAPPED), validation_fraction=0.2, max_validation_per_step=8).steps[0]
    assert len(inside.train) + len(inside.validation) == 12, "without the key the slice comes out of the cap"
    uncapped = write_stream(reviews, CAPPED.replace("max_train_per_class: 6", "") + "validation_beyond_cap: true\n")
    with pytest.raises(StreamError, match="validation_beyond_cap needs max_train_per_class"):
        load_stream(uncapped)
    with pytest.raises(StreamError, match="validation_beyond_cap is 'yes please': true or false"):
        load_stream(write_stream(reviews, CAPPED + "validation_beyond_cap: yes please\n"))
    # a cap that leaves no row of a class out has nothing to validate that class on: said, not carved from training
    whole = write_stream(reviews, CAPPED.replace("max_train_per_class: 6", "max_train_per_class: 15")
                         + "validation_beyond_cap: true\n")
    with pytest.raises(StreamError, match=r"steps\[0\] \(all\): .*leaves no row of \['bad', 'good'\] out"):
        load_stream(whole, validation_fraction=0.2)


def test_the_headlines_stream_reads_short_texts_with_validation_beyond_its_cap():
    from ratchet.corpora import load_bbc_headlines

    corpus = load_bbc_headlines()
    assert corpus["id"].is_unique and corpus.groupby("text")["label"].nunique().max() == 1
    assert corpus["text"].str.split().str.len().median() <= 8, "headlines, not articles"
    stream = load_stream(resolve_stream_file("bbc-headlines", None), validation_fraction=0.2,
                         max_validation_per_step=300)
    for step in stream.steps:
        assert step.train["label"].value_counts().max() == 30
        assert len(step.validation) >= 4 * len(step.train), f"{step.name}: the slice is not beyond the cap"
        assert not set(step.validation["text"]) & (set(step.train["text"]) | set(step.test["text"]))


def test_the_chat_topics_stream_reads_the_installed_corpus_into_five_class_incremental_steps():
    from ratchet.corpora import CHAT_TOPICS, load_chat_topics

    corpus = load_chat_topics()
    assert set(corpus["label"]) == set(CHAT_TOPICS) and corpus["id"].is_unique
    assert corpus.groupby("text")["label"].nunique().max() == 1, "a line under two topics is dropped"
    stream = load_stream(resolve_stream_file("chat-topics", None))
    assert len(stream.steps) == 5
    seen: set[str] = set()
    for step in stream.steps:
        classes = set(step.train["label"])
        assert classes == set(step.test["label"]) and not classes & seen, f"{step.name}: classes not new"
        assert not set(step.train["text"]) & set(step.test["text"]), f"{step.name}: a line in train and test"
        seen |= classes
    assert seen == set(stream.labels)
