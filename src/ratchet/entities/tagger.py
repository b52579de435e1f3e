"""A token classifier at inference: per-word tag probabilities, IOB2 tags, entity spans with scores.

The model (built and saved by ratchet.modeling with task token-classification) predicts one tag
per sub-token; each word is read from its first sub-token (ratchet.entities.alignment).
Predicted sequences are made well formed the way seqeval reads IOB1 (an I-X that starts an
entity is read as B-X), so every prediction has spans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ratchet import modeling
from ratchet.config import ModelSettings
from ratchet.entities.alignment import EncodedSentence, encode_words
from ratchet.entities.tags import OUTSIDE, EntitySpan, active_tags, repair, spans

# A text typed by a person becomes words the way annotated corpora split them: URLs, @mentions and
# #hashtags whole, words with inner apostrophes or hyphens whole, every other punctuation mark alone.
_WORD = re.compile(r"https?://\S+|[@#]\w+|\w+(?:['’-]\w+)*|[^\w\s]")


def split_words(text: str) -> list[str]:
    return _WORD.findall(text)


def mask_inactive(logits: torch.Tensor, active: list[bool] | None) -> torch.Tensor:
    """Logits with the tags the model may not answer pushed out of the softmax (see tags.active_tags)."""
    if active is None or all(active):
        return logits
    allowed = torch.tensor(active, device=logits.device)
    return logits.masked_fill(~allowed, torch.finfo(logits.dtype).min / 2)


@dataclass(frozen=True)
class ScoredSpan:
    span: EntitySpan
    score: float           # the mean, over the span's words, of the probability of the tag predicted

    def as_record(self) -> dict:
        """What `ratchet predict --json` and the served model answer for one entity (start/end in words)."""
        return {"text": self.span.text, "type": self.span.type, "start": self.span.start, "end": self.span.end,
                "score": round(self.score, 6)}


def word_logits(model: torch.nn.Module, tokenizer, encoded: list[EncodedSentence],
                batch_size: int = 64, active: list[bool] | None = None) -> list[torch.Tensor]:
    """Per sentence, the logits at each kept word's first sub-token (words x tags, fp32, on the CPU),
    computed without gradients in length-sorted batches; tags not `active` are masked out."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[torch.Tensor | None] = [None] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i].input_ids for i in idx]}, return_tensors="pt").to(device)
            logits = mask_inactive(model(**batch).logits.float(), active).cpu()
            for row, i in enumerate(idx):
                out[i] = logits[row, encoded[i].first_pieces]
    model.train(was_training)
    return [t for t in out if t is not None]


@dataclass
class Tagger:
    model: torch.nn.Module
    tokenizer: object
    tags: list[str]
    max_length: int
    active: list[bool] | None = None      # per tag: may it be answered (None: every tag)

    def word_probabilities(self, sentences: list[list[str]], batch_size: int = 64) -> list[np.ndarray]:
        """Per sentence, words x tags probabilities; words cut off at max_length are certain `O`."""
        encoded = encode_words(self.tokenizer, sentences, self.max_length)
        out = []
        outside = self.tags.index(OUTSIDE)
        for sentence, logits in zip(encoded, word_logits(self.model, self.tokenizer, encoded, batch_size, self.active)):
            probabilities = np.zeros((sentence.words, len(self.tags)), dtype=np.float32)
            probabilities[:, outside] = 1.0
            probabilities[:len(sentence.first_pieces)] = torch.softmax(logits, dim=-1).numpy()
            out.append(probabilities)
        return out

    def predict(self, sentences: list[list[str]], batch_size: int = 64) -> list[list[str]]:
        """Well-formed IOB2 tags per word."""
        return [self._tags_of(p) for p in self.word_probabilities(sentences, batch_size)]

    def extract(self, sentences: list[list[str]], batch_size: int = 64) -> list[list[ScoredSpan]]:
        """The entities of each sentence with their types and scores."""
        out = []
        for tokens, probabilities in zip(sentences, self.word_probabilities(sentences, batch_size)):
            tags = self._tags_of(probabilities)
            confidence = probabilities.max(axis=1)
            out.append([ScoredSpan(span, float(confidence[span.start:span.end].mean())) for span in spans(tokens, tags)])
        return out

    def _tags_of(self, probabilities: np.ndarray) -> list[str]:
        return repair([self.tags[i] for i in probabilities.argmax(axis=1)], "begin")


def load_tagger(model_dir: Path, settings: ModelSettings) -> Tagger:
    """A saved token-classification model, on the GPU when there is one."""
    manifest = modeling.read_manifest(model_dir)
    if manifest.task != "token-classification":
        raise modeling.ModelError(f"{model_dir} holds a {manifest.task} model, not an entity tagger")
    model = modeling.load_weights(model_dir, settings).to(modeling.pick_device())
    tokenizer = modeling.load_tokenizer(settings.model_copy(update={"base": manifest.base_model}))
    active = active_tags(list(manifest.labels), manifest.entity_types) if manifest.entity_types else None
    return Tagger(model=model, tokenizer=tokenizer, tags=list(manifest.labels), max_length=manifest.max_length,
                  active=active)
