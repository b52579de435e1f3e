"""Words to sub-tokens and back: the first sub-token of each word carries its tag, the rest are ignored.

A word-piece tokenizer splits `Obama's` into several pieces; the model predicts one tag per piece.
Training labels only the first piece of every word (the others, and [CLS]/[SEP], get IGNORE, which
cross-entropy skips), and prediction reads each word's tag from its first piece. Words past
`max_length` pieces are cut off: they are never trained on and are predicted `O` (counted, so a
caller can say how many were).
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE = -100   # torch's cross_entropy ignore_index


@dataclass(frozen=True)
class EncodedSentence:
    input_ids: list[int]
    first_pieces: list[int]     # per word kept: the position of its first sub-token
    words: int                  # words in the sentence (kept or cut off)

    @property
    def cut_off(self) -> int:
        return self.words - len(self.first_pieces)


def encode_words(tokenizer, sentences: list[list[str]], max_length: int) -> list[EncodedSentence]:
    """Tokenise pre-split sentences once (a fast tokenizer: word_ids maps pieces back to words)."""
    if not sentences:
        return []
    encoding = tokenizer(sentences, is_split_into_words=True, truncation=True, max_length=max_length)
    out = []
    for index, words in enumerate(sentences):
        first_pieces, previous = [], None
        for position, word in enumerate(encoding.word_ids(index)):
            if word is not None and word != previous:
                first_pieces.append(position)
            previous = word
        out.append(EncodedSentence(encoding["input_ids"][index], first_pieces, len(words)))
    return out


def piece_labels(sentence: EncodedSentence, word_tag_ids: list[int]) -> list[int]:
    """One label per sub-token: the word's tag id on its first piece, IGNORE elsewhere."""
    labels = [IGNORE] * len(sentence.input_ids)
    for word, position in enumerate(sentence.first_pieces):
        labels[position] = word_tag_ids[word]
    return labels
