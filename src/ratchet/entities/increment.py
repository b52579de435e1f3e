"""One increment of continual NER: pseudo-labels from the champion, replayed sentences, distillation on `O`.

In the entity-incremental setting a new batch annotates only its own entity types; every old
entity in it is tagged `O`. Trained as is, the model learns that old entities are nothing. Three
things counter that, all read from the champion (the model passed in, before any weight moves):

  pseudo-labels  where the batch says `O` and the champion says an old type with probability at
                 least `continual.pseudo_labels.threshold`, the champion's tag is trained on
                 (ExtendNER / CFNER's self-training); counts are reported
  replay         earlier sentences, a few per old type (`continual.replay`), with their tags
  distillation   on words the batch tagged `O`, the champion's per-token distribution at
                 temperature T (`continual.distillation`), so what `O` means for old types moves
                 little where the pseudo-labels were not confident
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ratchet.config import ContinualSettings, TrainSettings
from ratchet.entities.alignment import encode_words
from ratchet.entities.fit import DistillationTargets, fit_tags
from ratchet.entities.tagger import word_logits
from ratchet.entities.tags import (
    OUTSIDE,
    active_tags,
    repair,
    split_tag,
)
from ratchet.training.loop import TrainReport

log = logging.getLogger("ratchet")


@dataclass(frozen=True)
class PseudoLabelCounts:
    words: int = 0                                    # `O` words given an old type's tag
    sentences: int = 0                                # sentences with at least one
    entities: dict[str, int] = field(default_factory=dict)   # old type -> entities added


@dataclass(frozen=True)
class EntityIncrementReport:
    training: TrainReport
    pseudo_labels: PseudoLabelCounts
    replayed: int          # earlier sentences in the mix
    distilled_words: int   # words the distillation term reads

    @property
    def examples_processed(self) -> int:
        return self.training.examples_processed


def pseudo_label(tags: list[list[str]], champion_probabilities: list[np.ndarray], tag_names: list[str],
                 old_types: set[str], threshold: float) -> tuple[list[list[str]], PseudoLabelCounts]:
    """The batch's tags with confident champion tags of old types on its `O` words, made well formed.

    `champion_probabilities` holds words x tags per sentence; words past its rows (cut off at the
    model's max_length) keep their tags."""
    allowed = np.array([tag != OUTSIDE and split_tag(tag)[1] in old_types for tag in tag_names])
    out, words, sentences, entities = [], 0, 0, {}
    for sentence_tags, probabilities in zip(tags, champion_probabilities):
        masked = np.where(allowed, probabilities, -1.0)
        best, confidence = masked.argmax(axis=1), masked.max(axis=1)
        relabelled = [tag_names[best[w]] if tag == OUTSIDE and w < len(best) and confidence[w] >= threshold else tag
                      for w, tag in enumerate(sentence_tags)]
        changed = sum(a != b for a, b in zip(relabelled, sentence_tags))
        if changed:
            relabelled = repair(relabelled, "begin")
            words, sentences = words + changed, sentences + 1
            for tag, before in zip(relabelled, sentence_tags):
                if tag.startswith("B-") and before == OUTSIDE:
                    entities[tag[2:]] = entities.get(tag[2:], 0) + 1
        out.append(relabelled)
    return out, PseudoLabelCounts(words=words, sentences=sentences, entities=dict(sorted(entities.items())))


def learn_entity_increment(model: torch.nn.Module, tokenizer, new: pd.DataFrame, replayed: pd.DataFrame,
                           tag_names: list[str], old_types: list[str], new_types: list[str],
                           continual: ContinualSettings, train: TrainSettings,
                           max_length: int) -> tuple[EntityIncrementReport, pd.DataFrame]:
    """Train `model` (the champion, or a fresh model when `old_types` is empty) in place on the
    batch `new`, which tags `new_types`; the tags of types in neither list stay out of the softmax.

    Returns the report and the new sentences with the tags they were trained on (pseudo-labels in)."""
    encoded_new = encode_words(tokenizer, list(new["tokens"]), max_length)
    knows_old = bool(old_types)
    champion_active = active_tags(tag_names, old_types)
    champion_new = word_logits(model, tokenizer, encoded_new, active=champion_active) if knows_old else []
    tags = list(new["tags"])
    counts = PseudoLabelCounts()
    if knows_old and continual.pseudo_labels.enabled:
        probabilities = [torch.softmax(logits, -1).numpy() for logits in champion_new]
        tags, counts = pseudo_label(tags, probabilities, tag_names, set(old_types), continual.pseudo_labels.threshold)
        log.info("pseudo-labels: %d words in %d sentences relabelled by the champion %s",
                 counts.words, counts.sentences, counts.entities)
    trained_new = new.assign(tags=tags)
    mix = pd.concat([trained_new, replayed], ignore_index=True) if len(replayed) else trained_new
    encoded = encoded_new + encode_words(tokenizer, list(replayed["tokens"]), max_length) if len(replayed) else encoded_new
    index = {tag: i for i, tag in enumerate(tag_names)}
    word_tag_ids = [[index[tag] for tag in sentence] for sentence in mix["tags"]]

    distillation, distilled = None, 0
    if knows_old and continual.distillation.weight > 0:
        champion_mix = champion_new + (word_logits(model, tokenizer, encoded[len(encoded_new):], active=champion_active)
                                       if len(replayed) else [])
        # distil where the batch itself said `O` (new rows) and on every `O` of replayed rows
        original = list(new["tags"]) + list(replayed["tags"])
        words = [[tag == OUTSIDE for tag in sentence] for sentence in original]
        distilled = sum(sum(w[:len(e.first_pieces)]) for w, e in zip(words, encoded))
        distillation = DistillationTargets(champion_mix, words, continual.distillation.weight,
                                           continual.distillation.temperature)
    report = fit_tags(model, tokenizer, encoded, word_tag_ids, train, distillation,
                      active=active_tags(tag_names, [*old_types, *new_types]))
    return EntityIncrementReport(report, counts, replayed=len(replayed), distilled_words=distilled), trained_new
