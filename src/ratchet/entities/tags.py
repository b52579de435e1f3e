"""BIO tags: what an entity tag means, when a sequence is well formed, and its entity spans.

ratchet reads entity tags in the IOB2 scheme (every entity starts with `B-TYPE`, continues with
`I-TYPE`; `O` is outside any entity). A sequence is ill-formed where an `I-X` follows `O`, the
start, or a tag of another type. IOB1 files (an entity starts with `I-` unless it touches another
of the same type) are exactly those sequences; the declared repair `begin` rewrites each such
`I-X` as `B-X`, which is how seqeval and CoNLL tools convert IOB1 to IOB2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OUTSIDE = "O"
BioRepair = Literal["none", "begin"]


class TagError(ValueError):
    """A tag that is neither `O` nor `B-TYPE` / `I-TYPE`."""


def split_tag(tag: str) -> tuple[str, str | None]:
    """("B" | "I" | "O", entity type or None). Raises TagError on anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    prefix, dash, kind = tag.partition("-")
    if dash and prefix in ("B", "I") and kind:
        return prefix, kind
    raise TagError(f"{tag!r} is not a BIO tag (O, B-TYPE or I-TYPE)")


def tag_set(entity_types: list[str]) -> list[str]:
    """Every tag the declared entity types allow, O first."""
    return [OUTSIDE] + [f"{prefix}-{kind}" for kind in entity_types for prefix in ("B", "I")]


def entity_types_of(tags: list[str]) -> set[str]:
    """The entity types a tag sequence names."""
    return {split_tag(tag)[1] for tag in tags if tag != OUTSIDE}


def active_tags(tag_names: list[str], known_types: list[str] | set[str]) -> list[bool]:
    """Per tag: may the model answer it? `O` and the tags of the types it has learned (or is learning).

    The head has a row for every declared type from the start, but a type not met yet is kept out
    of the softmax (an expanding head, as in ExtendNER and CFNER): otherwise every step before its
    own teaches its logits down, and its step must first undo that."""
    known = set(known_types)
    return [tag == OUTSIDE or split_tag(tag)[1] in known for tag in tag_names]


@dataclass(frozen=True)
class TagProblem:
    position: int        # 0-based token index in the sentence
    tag: str
    problem: str


def bio_problems(tags: list[str]) -> list[TagProblem]:
    """Where the sequence breaks IOB2: an I-X that does not continue an entity of type X."""
    problems, previous = [], None
    for position, tag in enumerate(tags):
        try:
            prefix, kind = split_tag(tag)
        except TagError as error:
            problems.append(TagProblem(position, tag, str(error)))
            previous = None
            continue
        if prefix == "I" and previous != kind:
            after = "the sentence start" if position == 0 else repr(tags[position - 1])
            problems.append(TagProblem(position, tag, f"{tag!r} after {after} does not continue a {kind!r} entity"))
        previous = kind
    return problems


def repair(tags: list[str], rule: BioRepair) -> list[str]:
    """`begin`: each I-X that does not continue an X entity becomes B-X; `none`: unchanged."""
    if rule == "none":
        return list(tags)
    out, previous = [], None
    for tag in tags:
        prefix, kind = split_tag(tag)
        out.append(f"B-{kind}" if prefix == "I" and previous != kind else tag)
        previous = kind
    return out


@dataclass(frozen=True)
class EntitySpan:
    start: int           # first token, inclusive
    end: int             # last token + 1
    type: str
    text: str


def spans(tokens: list[str], tags: list[str]) -> list[EntitySpan]:
    """The entities of a well-formed IOB2 sequence (strict: an I-X never starts one)."""
    found: list[EntitySpan] = []
    start, kind = None, None

    def close(end: int) -> None:
        if start is not None:
            found.append(EntitySpan(start, end, kind, " ".join(tokens[start:end])))

    for position, tag in enumerate(tags):
        prefix, tag_kind = split_tag(tag)
        if prefix == "I" and tag_kind == kind and start is not None:
            continue
        close(position)
        start, kind = (position, tag_kind) if prefix == "B" else (None, None)
    close(len(tags))
    return found


def entity_types_in(frame) -> dict[str, int]:
    """Entity counts by type (B- tags) in a frame of sentences (column `tags`); malformed tags are skipped."""
    counts: dict[str, int] = {}
    for tags in frame["tags"]:
        for tag in tags if tags is not None and not isinstance(tags, str) else []:
            try:
                prefix, kind = split_tag(tag)
            except TagError:
                continue
            if prefix == "B":
                counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))
