"""The eval suite the prepare stage chose for this attempt (artifacts/prepared/plan.json), as typed
splits: read by the train stage (to predict on it) and the evaluate stage (to score those predictions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from ratchet import atomic, store
from ratchet.comparison import EvalSplit
from ratchet.paths import ProjectPaths

if TYPE_CHECKING:
    from ratchet.entities.comparison import SentenceSplit


def text_splits(paths: ProjectPaths) -> list[EvalSplit]:
    """The eval splits, then the canary (must-pass examples shipped with the project's data) if any."""
    plan = atomic.read_json(paths.plan)
    suite = [EvalSplit(s["name"], s["role"], pd.read_parquet(paths.eval_suite / f"{s['name']}.parquet"))
             for s in plan["eval_splits"]]
    if paths.prepared_canary.exists():
        suite.append(EvalSplit("canary", "canary", pd.read_parquet(paths.prepared_canary)))
    return suite


def sentence_splits(paths: ProjectPaths) -> list[SentenceSplit]:
    """The eval splits of a token-classification project, each with the entity types its batch tags."""
    from ratchet.entities.comparison import SentenceSplit   # here: seqeval imports scikit-learn (a second)

    plan = atomic.read_json(paths.plan)
    return [SentenceSplit(s["name"], s["role"], store.read_rows(paths.eval_suite / f"{s['name']}.parquet"),
                          s["types"])
            for s in plan["eval_splits"]]
