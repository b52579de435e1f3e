"""Baselines that train no transformer: what a continual learner must beat to be worth its cost.

- `tfidf-joint`  TF-IDF (word 1-2 grams, sublinear tf) + a linear SVM, refitted from scratch on
                 every row seen so far after each step: joint retraining at almost no cost. The
                 SVM's C is picked from C_GRID on validation rows (the steps' validation slices,
                 or a fifth of each step's train rows held out for it), never on the test rows.
- `ncm`          nearest class mean on the frozen base encoder's features (mean-pooled last layer,
                 L2-normalised, cosine): each class's mean is computed once, from its rows, and
                 never changes, so nothing is forgotten by construction; it learns nothing
                 beyond what the pretrained encoder already separates.

Both return the benchmark's RunResult, with the same accuracy matrix as the trained strategies
(`examples_processed` counts the rows fitted, or encoded for ncm).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from ratchet import modeling
from ratchet.bench.results import RunResult, final_metrics, per_class_dicts
from ratchet.bench.streams import Stream, split_stratified
from ratchet.config import Settings
from ratchet.evaluation import split_metrics

C_GRID = (0.1, 1.0, 10.0)
NON_TRANSFORMER = ("tfidf-joint", "ncm")


def _tfidf_svm(c: float):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1), LinearSVC(C=c))


def pick_tfidf_c(stream: Stream) -> float:
    """C for tfidf-joint: the best final average accuracy on validation rows, the steps' validation
    slices when they have them, else a stratified fifth of each step's train rows held out for it."""
    fits, checks = [], []
    for step in stream.steps:
        if step.validation is not None and len(step.validation):
            fits.append(step.train)
            checks.append(step.validation)
        else:
            train, held = split_stratified(step.train, 0.2, 1)
            fits.append(train)
            checks.append(held)
    seen = pd.concat(fits, ignore_index=True)
    scores = {}
    for c in C_GRID:
        model = _tfidf_svm(c).fit(seen["text"], seen["label"])
        scores[c] = float(np.mean([(model.predict(v["text"]) == v["label"]).mean() for v in checks if len(v)]))
    return max(C_GRID, key=lambda c: (scores[c], -abs(np.log10(c))))


def run_tfidf_joint(stream: Stream, seed: int, tests: dict[str, pd.DataFrame]) -> RunResult:
    started = time.perf_counter()
    c = pick_tfidf_c(stream)
    matrix, processed, model = [], 0, None
    for index in range(len(stream.steps)):
        seen = pd.concat([s.train for s in stream.steps[:index + 1]], ignore_index=True)
        model = _tfidf_svm(c).fit(seen["text"], seen["label"])
        processed += len(seen)
        matrix.append({name: float((model.predict(frame["text"]) == frame["label"]).mean())
                       for name, frame in tests.items()})
    learned_at = {step.name: i for i, step in enumerate(stream.steps)}
    everything = pd.concat(list(tests.values()), ignore_index=True)
    final = split_metrics(everything["label"].tolist(), list(model.predict(everything["text"])))
    return RunResult(strategy="tfidf-joint", seed=seed, matrix=matrix, baseline={},
                     summary=final_metrics(matrix, learned_at, stream), per_class=per_class_dicts(final),
                     examples_processed=processed, seconds=time.perf_counter() - started,
                     stopped_early_steps=0, notes={"C": c})


def _features(classifier: modeling.Classifier, texts: list[str], batch_size: int) -> np.ndarray:
    embeddings, _ = classifier.embed_and_predict(texts, batch_size)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def run_ncm(stream: Stream, settings: Settings, seed: int, device: torch.device, tests: dict[str, pd.DataFrame],
            eval_batch_size: int = 128) -> RunResult:
    started = time.perf_counter()
    # the untrained classifier's encoder is the base model (a LoRA adapter starts as the identity)
    model = modeling.build_trainable(settings.model, stream.labels, seed, start_from=None).to(device)
    classifier = modeling.Classifier(model, modeling.load_tokenizer(settings.model), stream.labels,
                                     settings.model.max_length)
    test_features = {name: _features(classifier, frame["text"].tolist(), eval_batch_size)
                     for name, frame in tests.items()}
    means: dict[str, np.ndarray] = {}
    matrix, processed = [], 0
    for step in stream.steps:
        features = _features(classifier, step.train["text"].tolist(), eval_batch_size)
        processed += len(step.train)
        labels = step.train["label"].to_numpy()
        for label in sorted(set(labels)):
            if label not in means:  # a class's mean is fixed once it is learned: nothing to forget
                mean = features[labels == label].mean(axis=0)
                means[label] = mean / max(np.linalg.norm(mean), 1e-12)
        names, centres = list(means), np.stack(list(means.values()))
        row = {}
        for name, frame in tests.items():
            predicted = np.array(names)[(test_features[name] @ centres.T).argmax(axis=1)]
            row[name] = float((predicted == frame["label"].to_numpy()).mean())
        matrix.append(row)
    learned_at = {step.name: i for i, step in enumerate(stream.steps)}
    names, centres = list(means), np.stack(list(means.values()))
    everything = pd.concat(list(tests.values()), ignore_index=True)
    predicted = np.array(names)[(np.concatenate(list(test_features.values())) @ centres.T).argmax(axis=1)]
    final = split_metrics(everything["label"].tolist(), predicted.tolist())
    return RunResult(strategy="ncm", seed=seed, matrix=matrix, baseline={},
                     summary=final_metrics(matrix, learned_at, stream), per_class=per_class_dicts(final),
                     examples_processed=processed, seconds=time.perf_counter() - started, stopped_early_steps=0)
