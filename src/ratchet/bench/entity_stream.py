"""Entity-incremental streams: a token corpus cut into steps that each bring new entity types.

The field's protocol (Monaikul et al. 2021, ExtendNER; Zheng et al. 2022, CFNER): the first step
learns `a` types, each later step adds `b`. The training sentences are split into disjoint
slices, one per step, and each slice keeps only its own step's tags: every entity of another type,
old or future, is tagged `O`. The test sentences are shared and keep their gold tags; after each
step the model is scored on the types it has met so far.

A stream file (YAML, `task: token-classification`):

    name: twitter-ner-incremental
    task: token-classification
    corpus: twitter-ner                  # a built-in token corpus (CORPORA), or
    file: tweets.conll                   # a CoNLL / JSON Lines file (relative to this YAML)
    steps:
      - {name: people-places, types: [person, geo-loc, company, other]}
      - {name: venues-goods, types: [facility, product]}
    test: {fraction: 0.25}
    seed: 0

How a training sentence finds its step: among the steps that bring one of its types, the one
with the fewest sentences so far (ties to the earlier step), so rare types are not starved by a
sentence that also holds a frequent one. Sentences without any entity of the stream's types are
dealt to the steps in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from ratchet.bench.streams import StreamError
from ratchet.entities.corpus import load_twitter_ner
from ratchet.entities.metrics import only_types
from ratchet.entities.sentences import read_sentences
from ratchet.entities.tags import entity_types_in, entity_types_of
from ratchet.records import TOKEN_CLASSIFICATION

CORPORA = {"twitter-ner": load_twitter_ner}


@dataclass(frozen=True)
class EntityStep:
    name: str
    types: list[str]            # the entity types this step brings; its training tags name only these
    train: pd.DataFrame         # id, tokens, tags
    gold: pd.DataFrame          # the same sentences with every type of the stream tagged (joint retraining's data)


@dataclass(frozen=True)
class EntityStream:
    name: str
    description: str
    entity_types: list[str]     # every type of the stream, in the order the steps bring them
    steps: list[EntityStep]
    test: pd.DataFrame          # id, tokens, tags: gold tags of every type, shared by all steps
    source: str
    validation: pd.DataFrame | None = None   # gold-tagged sentences held out of training, to choose settings on

    def validation_rows(self) -> list[int]:
        """How many sentences the validation slice holds (one slice, shared by every step)."""
        return [0 if self.validation is None else len(self.validation)]

    def types_until(self, step_index: int) -> list[str]:
        return [t for step in self.steps[:step_index + 1] for t in step.types]

    def describe(self) -> str:
        parts = [f"{s.name} {s.types}: {len(s.train)} train sentences, "
                 f"{sum(entity_types_in(s.train).values())} entities" for s in self.steps]
        return f"{self.name} ({self.source}); {len(self.test)} test sentences\n  " + "\n  ".join(parts)


def is_entity_stream(file: Path) -> bool:
    try:
        spec = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return False
    return isinstance(spec, dict) and spec.get("task") == TOKEN_CLASSIFICATION


def assign_to_steps(train: pd.DataFrame, step_types: list[list[str]], seed: int) -> list[pd.DataFrame]:
    """Disjoint slices of `train`, one per step (see the module's docstring for the rule)."""
    owner = {kind: index for index, types in enumerate(step_types) for kind in types}
    shuffled = train.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    slices: list[list[int]] = [[] for _ in step_types]
    turn = 0
    for row, tags in enumerate(shuffled["tags"]):
        candidates = sorted({owner[t] for t in entity_types_of(tags) if t in owner})
        if candidates:
            target = min(candidates, key=lambda step: (len(slices[step]), step))
        else:
            target, turn = turn % len(step_types), turn + 1
        slices[target].append(row)
    return [shuffled.iloc[rows].reset_index(drop=True) for rows in slices]


def _split(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rest, held out): a random `fraction` of the sentences held out."""
    shuffled = frame.sample(frac=1.0, random_state=seed)
    n = int(round(len(shuffled) * fraction))
    return shuffled.iloc[n:].reset_index(drop=True), shuffled.iloc[:n].reset_index(drop=True)


def load_entity_stream(file: Path, train_fraction: float = 1.0, validation_fraction: float = 0.0) -> EntityStream:
    """Read an entity stream file and its corpus; `train_fraction` < 1 keeps that share of each
    step's training sentences (a time budget), `validation_fraction` > 0 holds that share of the
    training sentences out, gold-tagged like the test, to choose settings on. The test stays whole."""
    try:
        spec = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise StreamError(f"{file} is not valid YAML: {error}") from None
    for key in ("name", "steps"):
        if key not in spec:
            raise StreamError(f"{file} lacks the key {key!r}")
    if "corpus" in spec:
        if spec["corpus"] not in CORPORA:
            raise StreamError(f"{file}: corpus: unknown token corpus {spec['corpus']!r}; known: {sorted(CORPORA)}")
        sentences = CORPORA[spec["corpus"]]()
    elif "file" in spec:
        path = Path(spec["file"]).expanduser()
        sentences = read_sentences(path if path.is_absolute() else file.parent / path)
    else:
        raise StreamError(f"{file} needs a corpus or a file")
    step_types = [list(step.get("types", [])) for step in spec["steps"]]
    seen: list[str] = []
    for position, types in enumerate(step_types):
        if not types:
            raise StreamError(f"{file}: steps[{position}].types: a step brings at least one entity type")
        repeated = [t for t in types if t in seen]
        if repeated:
            raise StreamError(f"{file}: steps[{position}].types: {repeated} already came in an earlier step")
        seen += types
    seed = int(spec.get("seed", 0))
    gold = sentences.assign(tags=[only_types(tags, set(seen)) for tags in sentences["tags"]])
    train, test = _split(gold[["id", "tokens", "tags"]], float(spec.get("test", {}).get("fraction", 0.25)), seed)
    validation = None
    if validation_fraction > 0:
        train, validation = _split(train, validation_fraction, seed + 1)
    steps = []
    for position, (step, rows) in enumerate(zip(spec["steps"], assign_to_steps(train, step_types, seed))):
        if train_fraction < 1.0:
            rows, _ = _split(rows, 1.0 - train_fraction, seed)
        own = rows.assign(tags=[only_types(tags, set(step_types[position])) for tags in rows["tags"]])
        steps.append(EntityStep(name=str(step.get("name", f"step-{position}")), types=step_types[position],
                                train=own, gold=rows))
    return EntityStream(name=spec["name"], description=spec.get("description", ""), entity_types=seen,
                        steps=steps, test=test, source=str(file), validation=validation)
