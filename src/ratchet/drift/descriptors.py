"""Text descriptors that need no downloaded corpus: length, out-of-vocabulary share, non-letter share.

Evidently's OOV and sentiment descriptors load NLTK corpora at run time, which fails offline; these
are computed here and handed to Evidently as plain numeric columns. The vocabulary is the
reference's own: a word is out of vocabulary when no reference document has it. Reference rows are
scored leave-one-out (their own words do not count), so a same-distribution batch and the
reference get the same OOV distribution and the test stays calibrated.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd

WORD = re.compile(r"[^\W\d_]+")
DESCRIPTORS = {"length_chars": "text length (characters)",
               "oov_share": "out-of-vocabulary share",
               "non_letter_share": "non-letter share"}


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def document_frequency(texts: Iterable[str]) -> Counter:
    """How many documents contain each word (each document counted once)."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(set(words(text)))
    return counts


def _oov_share(tokens: list[str], df: Counter, own_document: bool) -> float:
    if not tokens:
        return 0.0
    # Leave-one-out for reference rows: a word only this document has is unknown to the others.
    floor = 1 if own_document else 0
    return sum(1 for t in tokens if df.get(t, 0) <= floor) / len(tokens)


def _non_letter_share(text: str) -> float:
    visible = [c for c in text if not c.isspace()]
    return sum(1 for c in visible if not c.isalpha()) / len(visible) if visible else 0.0


def describe(texts: pd.Series, df: Counter, in_reference: bool) -> pd.DataFrame:
    """One row of descriptors per text; `in_reference`: the texts are the ones `df` was counted on."""
    tokens = [words(t) for t in texts]
    return pd.DataFrame({
        "length_chars": texts.str.len().astype(float).to_numpy(),
        "oov_share": np.array([_oov_share(t, df, in_reference) for t in tokens]),
        "non_letter_share": np.array([_non_letter_share(t) for t in texts]),
    }, index=texts.index)
