"""The predictions file between the train and evaluate stages: written once, read back exactly,
and refused (naming the split) when it does not belong to the suite being scored."""

from __future__ import annotations

import pandas as pd
import pytest

from ratchet import predictions
from ratchet.comparison import EvalSplit, compare_predictions
from ratchet.entities.comparison import SentenceSplit
from ratchet.paths import ProjectPaths
from ratchet.predictions import SplitPredictions


def _text_suite() -> list[EvalSplit]:
    old = pd.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", "z"], "label": ["red", "blue", "red"]})
    new = pd.DataFrame({"id": [7, 8], "text": ["p", "q"], "label": ["green", "green"]})
    return [EvalSplit("reference", "old", old), EvalSplit("b-new", "new", new)]


def test_labels_of_both_models_round_trip_and_score(tmp_path):
    paths, suite = ProjectPaths.at(tmp_path), _text_suite()
    said = {"reference": SplitPredictions(candidate=["red", "red", "red"], champion=["red", "blue", "blue"]),
            "b-new": SplitPredictions(candidate=["green", "red"], champion=["red", "red"])}
    predictions.write(paths, suite, said)
    back = predictions.read(paths, suite, with_champion=True)
    assert back == said
    scores = compare_predictions(suite, back)
    assert scores["reference"].candidate.accuracy == pytest.approx(2 / 3)
    assert scores["reference"].champion.accuracy == pytest.approx(2 / 3)
    assert scores["reference"].paired.champion_only == 1 and scores["reference"].paired.candidate_only == 1
    assert scores["b-new"].candidate.accuracy == 0.5 and scores["b-new"].champion.accuracy == 0.0


def test_without_a_champion_only_the_candidate_is_read(tmp_path):
    paths, suite = ProjectPaths.at(tmp_path), _text_suite()
    said = {"reference": SplitPredictions(candidate=["red", "blue", "red"], champion=None),
            "b-new": SplitPredictions(candidate=["green", "green"], champion=None)}
    predictions.write(paths, suite, said)
    assert predictions.read(paths, suite, with_champion=False) == said
    with pytest.raises(ValueError, match="'reference' lacks predictions of the champion"):
        predictions.read(paths, suite, with_champion=True)


def test_tag_sequences_round_trip_as_lists(tmp_path):
    paths = ProjectPaths.at(tmp_path)
    frame = pd.DataFrame({"id": ["s1", "s2"], "tokens": [["Ann", "ran"], ["in", "Rome", "today"]],
                          "tags": [["B-PER", "O"], ["O", "B-LOC", "O"]]})
    suite = [SentenceSplit("reference", "old", frame, ["PER", "LOC"])]
    said = {"reference": SplitPredictions(candidate=[["B-PER", "O"], ["O", "O", "O"]],
                                          champion=[["O", "O"], ["O", "B-LOC", "O"]])}
    predictions.write(paths, suite, said)
    assert predictions.read(paths, suite, with_champion=True) == said


def test_a_file_written_for_another_suite_is_refused_naming_the_split(tmp_path):
    paths, suite = ProjectPaths.at(tmp_path), _text_suite()
    predictions.write(paths, suite, {s.name: SplitPredictions(candidate=["red"] * len(s.frame), champion=None)
                                     for s in suite})
    reordered = [suite[0], EvalSplit("b-new", "new", suite[1].frame.iloc[::-1])]
    with pytest.raises(ValueError, match="split 'b-new' do not match its rows"):
        predictions.read(paths, reordered, with_champion=False)
    with pytest.raises(ValueError, match="split 'b-other' do not match"):
        predictions.read(paths, [EvalSplit("b-other", "new", suite[1].frame)], with_champion=False)


def test_a_missing_file_names_the_stage_that_writes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="eval_predictions.parquet is missing: the train stage writes it"):
        predictions.read(ProjectPaths.at(tmp_path), _text_suite(), with_champion=False)


@pytest.mark.parametrize("module", ["ratchet.stages.evaluate", "flows.watch"])
def test_the_evaluate_stage_and_the_flow_do_not_import_torch_to_start(module):
    """The evaluate stage scores the predictions file (no model, no torch: seconds a batch); the flow
    process (`ratchet run`, a deployment's run) imports torch only in the steps that run a model."""
    import subprocess
    import sys

    probe = (f"import sys, {module}; "
             "print(sorted(m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
