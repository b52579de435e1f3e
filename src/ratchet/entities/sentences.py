"""Batches of tokens and tags: CoNLL files and JSON Lines, read into one frame of sentences.

CoNLL: one `token<TAB>tag` per line (or whitespace-separated columns, the tag last, as in
CoNLL-2003), a blank line between sentences, `-DOCSTART-` lines skipped. JSON Lines: one
`{"id": ..., "tokens": [...], "tags": [...]}` per line. Both become a frame with one row per
sentence: `id`, `tokens` (list), `tags` (list) and `line` (where the sentence starts in the file,
1-based), so validation can name the sentence, the token and the line.

What a file holds is not judged here beyond what reading needs (a CoNLL line without a tag, a
line that is not JSON): that is validation's job, which names every problem at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ratchet.batches import BatchReadError, content_hash

SENTENCE_COLUMNS = ["id", "tokens", "tags", "line"]
CONLL_SUFFIXES = (".conll", ".conllu", ".iob", ".bio")


class SentenceReadError(BatchReadError):
    """A token file that cannot be read; the message names the file and the line."""


def is_token_file(path: Path) -> bool:
    return path.suffix.lower() in CONLL_SUFFIXES or path.name.lower().endswith(".conll.txt")


def read_conll(path: Path, id_prefix: str = "s") -> pd.DataFrame:
    rows, tokens, tags, start = [], [], [], None
    text = _text_of(path)

    def close() -> None:
        if tokens:
            rows.append({"id": f"{id_prefix}{len(rows) + 1}", "tokens": list(tokens), "tags": list(tags),
                         "line": start})
        tokens.clear()
        tags.clear()

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            close()
            continue
        if line.startswith("-DOCSTART-"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f for f in fields if f != ""]
        if len(fields) < 2:
            raise SentenceReadError(f"{path.name}:{number}: expected 'token<TAB>tag', got {line!r}")
        if not tokens:
            start = number
        tokens.append(fields[0])
        tags.append(fields[-1].strip())
    close()
    return pd.DataFrame(rows, columns=SENTENCE_COLUMNS)


def read_jsonl(path: Path) -> pd.DataFrame:
    rows = []
    for number, raw in enumerate(_text_of(path).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            raise SentenceReadError(f"{path.name}:{number}: not JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise SentenceReadError(f"{path.name}:{number}: expected an object with id, tokens and tags")
        rows.append({"id": record.get("id", f"s{len(rows) + 1}"), "tokens": record.get("tokens"),
                     "tags": record.get("tags"), "line": number})
    return pd.DataFrame(rows, columns=SENTENCE_COLUMNS)


def _text_of(path: Path) -> str:
    if path.is_symlink():
        raise SentenceReadError(f"{path.name}: a symbolic link; refused, never followed")
    try:
        return path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError as error:
        raise SentenceReadError(f"{path.name}: not UTF-8 text (byte {error.start}): {error.reason}") from None


def read_sentences(path: Path) -> pd.DataFrame:
    """A CoNLL or JSON Lines token batch as a sentence frame."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return read_jsonl(path)
    if is_token_file(path) or path.suffix.lower() == ".txt":
        return read_conll(path)
    raise SentenceReadError(f"{path.name}: a token batch is CoNLL ({', '.join(CONLL_SUFFIXES)}) or JSON Lines (.jsonl)")


def load_sentence_batch(path: Path) -> tuple[str, pd.DataFrame]:
    """(batch id, sentences) of a token batch. The id hashes the sentences' ids (a CoNLL file's are
    s1..sN), tokens and tags, so a file sent again is a duplicate whatever its name; ids a CoNLL
    file does not carry become `<batch id>-s<n>`, unique across batches."""
    frame = read_sentences(path)
    if frame.empty:
        raise SentenceReadError(f"{path.name}: no sentences in the file")
    batch_id = content_hash(frame[["id", "tokens", "tags"]])
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        frame["id"] = [f"{batch_id}-s{n}" for n in range(1, len(frame) + 1)]
    else:
        frame["id"] = frame["id"].map(lambda v: None if v is None else str(v))
    return batch_id, frame
