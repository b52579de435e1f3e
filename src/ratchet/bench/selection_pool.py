"""One selection question answered from several commands' records (`ratchet bench pool`).

A question asked on three seeds need not be one command: each seed can run on its own, and a
challenger can run alone where the committed setting's runs already exist (they are deterministic
on a CPU). `pool` reads the `<out>.selection.json` records that `bench cl --select-on validation`
wrote, checks that they were measured the same way (streams, validation slices, the strategy chosen
for), names every point by what it changes in the settings given now (params.yaml + --set: a point
that changes nothing is the incumbent, whatever key its own grid spelled out; a point that recorded
the digest of the settings it ran with must match that name), lines up each point's scores seed by
seed, and applies the rule one command with every seed applies (`ratchet.bench.selection.pick`).

Records may also measure different streams: a selection stream added later runs alone, at each point
and seed, beside the records of the streams asked before. A point's score on a seed is then the mean
over every stream that some record measured (each record's score weighs by how many streams it
measured); a seed counts only where the point's records cover every stream, each once.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ratchet.bench.selection import (
    GridError,
    GridPoint,
    Margin,
    PointScore,
    examples_per_stream,
    named_against,
    paired_margin,
    pick,
    point_entries,
    settings_digest,
)

# the per-stream figures a pooled point reports (means over seeds, each record weighed by its seeds)
POOLED_FIGURES = ("average_accuracy", "bwt", "newest_step_accuracy", "examples_processed")

# what must be equal for two records' scores to be comparable (the streams may differ: see above)
PROTOCOL_FIELDS = ("select_for", "validation_fraction", "train_fraction", "max_train_per_step",
                   "max_validation_per_step")


@dataclass(frozen=True)
class RecordedPoint:
    """One point of one record: its scores on the seeds that record ran."""
    point: GridPoint                              # named by what it changes in the base settings
    streams: tuple[str, ...]                      # the streams its scores are means over
    seeds: tuple[int, ...]
    per_seed: tuple[float, ...]
    per_stream: dict[str, dict[str, float]]       # stream -> means over this record's seeds
    source: Path


@dataclass(frozen=True)
class PooledSelection:
    scores: list[PointScore]                      # one per point, over `seeds`, in first-seen order
    seeds: tuple[int, ...]                        # the seeds every point has (the pairing)
    picked: PointScore
    incumbent: PointScore | None
    margins: dict[str, Margin]                    # every other point against the pick, by label
    notes: list[str]                              # what was left out or assumed, to print


def read_record(path: Path, base: dict) -> tuple[dict, list[RecordedPoint], bool]:
    """The record's protocol fields, its points named against `base`, and whether its points carry
    settings digests (records written before 2026-12-07's twelfth session do not: they are taken to
    have run on `base` + the point)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise GridError(f"{path}: not a readable selection record ({error})") from None
    missing = [key for key in ("seeds", "points", "select_for", "streams") if key not in record]
    if missing:
        raise GridError(f"{path}: not a selection record (no {', '.join(missing)})")
    seeds = tuple(int(seed) for seed in record["seeds"])
    points, digested = [], True
    for index, entry in enumerate(record["points"]):
        point = named_against(entry["overrides"], base)
        recorded = entry.get("settings_digest")
        digested = digested and recorded is not None
        if recorded is not None and recorded != settings_digest(point.applied_to(copy.deepcopy(base))):
            raise GridError(f"{path}: point {index} ({point.label}) ran on other settings than params.yaml (+ --set) "
                            f"with that point: name them with --set as they were when it ran")
        per_seed = entry.get("per_seed")
        if per_seed is None:
            if len(seeds) != 1:
                raise GridError(f"{path}: point {index} has no per-seed scores ({len(seeds)} seeds): "
                                f"rerun it one seed per command")
            per_seed = [entry["score"]]
        points.append(RecordedPoint(point, tuple(record["streams"]), seeds, tuple(per_seed), entry["per_stream"], path))
    protocol = {key: record.get(key) for key in PROTOCOL_FIELDS}
    protocol["validation_rows"] = record.get("validation_rows") or {}
    return protocol, points, digested


def _check_same_protocol(protocols: list[tuple[Path, dict]]) -> None:
    first_path, first = protocols[0]
    for path, protocol in protocols[1:]:
        for key in PROTOCOL_FIELDS:
            if protocol[key] != first[key]:
                raise GridError(f"{path} and {first_path} were not measured the same way: {key} is "
                                f"{protocol[key]!r} in one, {first[key]!r} in the other")
    slices: dict[str, tuple[Path, list]] = {}     # a stream's validation slices, wherever it was measured
    for path, protocol in protocols:
        for stream, rows in protocol["validation_rows"].items():
            seen_path, seen = slices.setdefault(stream, (path, rows))
            if seen != rows:
                raise GridError(f"{path} and {seen_path} were not measured the same way: {stream}'s validation "
                                f"slices hold {rows} rows in one, {seen} in the other")


def _seed_score(parts: list[tuple[float, RecordedPoint]]) -> float:
    """One seed's score from records of disjoint streams: the mean over all their streams."""
    return sum(score * len(entry.streams) for score, entry in parts) / sum(len(entry.streams) for _, entry in parts)


def pool_records(paths: list[Path], base: dict, only: list[GridPoint] | None = None) -> PooledSelection:
    """Every point of the records in `paths` (or only the incumbent and `only`), scored over the seeds
    all of them ran, and the pick by the rule of `ratchet.bench.selection.pick`."""
    if not paths:
        raise GridError("no selection records given")
    protocols, recorded, undigested = [], [], []
    for path in paths:
        protocol, points, digested = read_record(path, base)
        protocols.append((path, protocol))
        recorded += points
        undigested += [] if digested else [path.name]
    _check_same_protocol(protocols)
    notes = [(f"no settings digests in {', '.join(undigested)} (written before records kept them): taken to "
              f"have run on params.yaml (+ --set) as given now")] if undigested else []
    if only is not None:
        wanted = {GridPoint(()), *only}
        unknown = [p.label for p in only if p not in {r.point for r in recorded}]
        if unknown:
            raise GridError(f"--point {', '.join(unknown)}: in none of the records (their points: "
                            f"{', '.join(sorted({r.point.label for r in recorded}))})")
        recorded = [r for r in recorded if r.point in wanted]

    # point -> seed -> the (score, record) of each record that measured it, on disjoint streams
    by_point: dict[GridPoint, dict[int, list[tuple[float, RecordedPoint]]]] = {}
    for entry in recorded:
        seeds = by_point.setdefault(entry.point, {})
        for seed, score in zip(entry.seeds, entry.per_seed):
            for _, other in seeds.get(seed, []):
                if set(other.streams) & set(entry.streams):
                    raise GridError(f"{entry.point.label}, seed {seed}: {sorted(set(other.streams) & set(entry.streams))} "
                                    f"in both {other.source} and {entry.source}: pass one of them")
            seeds.setdefault(seed, []).append((score, entry))
    if not by_point:
        raise GridError("the records hold no point to pick from")
    streams = list(dict.fromkeys(stream for entry in recorded for stream in entry.streams))   # first-seen order
    complete = {point: {seed for seed, parts in seeds.items()
                        if sorted(s for _, entry in parts for s in entry.streams) == sorted(streams)}
                for point, seeds in by_point.items()}
    # a challenger measured on only some of the streams (asked before a stream was added) cannot be
    # scored with the rest: it is left out, and said; the incumbent is never left out
    for point in [p for p, seeds in complete.items() if not seeds and p != GridPoint(())]:
        notes.append(f"{point.label}: left out (no seed on which it ran every stream: {', '.join(streams)})")
        del by_point[point], complete[point]
    common = tuple(sorted(set.intersection(*complete.values()))) if complete else ()
    if not common:
        raise GridError(f"no seed that every point ran on every stream ({', '.join(streams)}): "
                        + "; ".join(f"{p.label}: seeds {sorted(s)}" for p, s in complete.items()))
    for point, seeds in by_point.items():
        left = sorted(set(seeds) - set(common))
        if left:
            notes.append(f"{point.label}: seed(s) {left} left out (not every point ran them on every stream)")

    scores = [_pooled_score(point, seeds, common, streams, notes) for point, seeds in by_point.items()]
    incumbent = next((s for s in scores if s.point == GridPoint(())), None)
    picked = pick(scores, incumbent.point if incumbent else None)
    margins = {s.point.label: paired_margin(s, picked) for s in scores if s is not picked}
    return PooledSelection(scores, common, picked, incumbent, margins, notes)


def _pooled_score(point: GridPoint, seeds: dict[int, list[tuple[float, RecordedPoint]]], common: tuple[int, ...],
                  streams: list[str], notes: list[str]) -> PointScore:
    entries = list({id(entry): entry for seed in common for _, entry in seeds[seed]}.values())
    if any(set(entry.seeds) - set(common) for entry in entries):
        notes.append(f"{point.label}: per-stream figures include a record's seeds outside {list(common)} "
                     f"(the score does not)")
    per_stream = {}
    for stream in streams:
        # a record's per-stream figures are means over its seeds: weigh each by how many it ran
        measured = [entry for entry in entries if stream in entry.streams]
        weights = [len(entry.seeds) for entry in measured]
        # the examples are pooled only where every record kept them (older records did not)
        figures = [key for key in POOLED_FIGURES if all(key in e.per_stream[stream] for e in measured)]
        per_stream[stream] = {key: sum(w * e.per_stream[stream][key] for w, e in zip(weights, measured)) / sum(weights)
                              for key in figures}
    return PointScore(point, per_stream, tuple(_seed_score(seeds[seed]) for seed in common))


def pooled_record(pooled: PooledSelection, paths: list[Path], base: dict) -> dict:
    """The pooled answer in the shape of a selection record, with the files it came from."""
    return {"pooled_from": [str(p) for p in paths], "seeds": list(pooled.seeds),
            "criterion": "mean over streams of validation average accuracy",
            "incumbent": dict(pooled.incumbent.point.overrides) if pooled.incumbent else None,
            "points": point_entries(pooled.scores, base),
            "picked": dict(pooled.picked.point.overrides),
            "others_against_the_pick": {label: asdict(m) for label, m in pooled.margins.items()},
            "notes": pooled.notes}


def describe(pooled: PooledSelection) -> list[str]:
    """Lines for the terminal: each point's per-seed scores, its mean and its margin against the pick."""
    lines = [f"pooled over seeds {list(pooled.seeds)}:"]
    for score in pooled.scores:
        streams = "; ".join(f"{name} {values['average_accuracy']:.3f}" for name, values in score.per_stream.items())
        seeds = " / ".join(f"{s:.4f}" for s in score.per_seed)
        tag = " (incumbent)" if score is pooled.incumbent else ""
        lines.append(f"  {score.point.label}{tag}: {score.score:.4f} ({seeds}), BWT {score.bwt:+.4f}; {streams}")
        examples = examples_per_stream(score)
        if examples:
            lines.append(f"    training examples: {examples}")
    for label, margin in pooled.margins.items():
        noise = "" if margin.standard_error is None else f" ± {margin.standard_error:.4f}"
        lines.append(f"  {label} against the pick: {margin.difference:+.4f}{noise}")
    lines += [f"  note: {note}" for note in pooled.notes]
    kept = pooled.picked is pooled.incumbent and pooled.picked.score < max(s.score for s in pooled.scores)
    lines.append(f"picked: {pooled.picked.point.label}"
                 + (" (the incumbent stays: no challenger beats it beyond the seeds' noise)" if kept else ""))
    return lines
