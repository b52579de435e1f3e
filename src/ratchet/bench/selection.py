"""Choosing settings on validation data: the grid, the score, the pick.

`ratchet bench cl --select-on validation --grid KEY=V1,V2 ...` runs one strategy (`--select-for`,
the default by default) at every point of the grid on every stream given, measuring the accuracy
matrix on each step's validation slice (rows held out of its training rows; the test rows are
never read), and picks the point with the best score:

    score = mean over streams of the mean over selection seeds of the validation average accuracy

one point for all streams (a default must hold on data it was not tuned on), ties to the higher
mean BWT, then to the earlier point. The test-split tables are then run with what was picked.

With two or more selection seeds the margin is weighed against the seeds' own noise: when one of the
grid's points is the incumbent (every key at the value params.yaml, with --set, already has), a
challenger replaces it only if it wins by more than the standard error of their per-seed paired
difference. A default does not move on a margin the training seeds move by themselves.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import statistics
from dataclasses import dataclass

import yaml

from ratchet.bench.results import RunResult


class GridError(ValueError):
    """A --grid or --set value that cannot be used; the message names it."""


def set_dotted(raw: dict, key: str, value) -> dict:
    """raw[a][b][c] = value for key "a.b.c", creating the sections on the way."""
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise GridError(f"{key}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value
    return raw


def number_if_numeric(value):
    """YAML 1.1 reads `1e-4` (no dot) as a string: read such a string as the number it is."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _read_yaml(text: str, what: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise GridError(f"{what}: not a YAML value ({str(error).splitlines()[0]})") from None


def parse_value(text: str, option: str = "--set"):
    """A YAML value, with `1e-4` read as a number."""
    return number_if_numeric(_read_yaml(text, f"{option} value {text!r}"))


def format_value(value) -> str:
    """The value as --set and --grid read it back: lists in brackets, without spaces (one shell word)."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def parse_assignment(assignment: str, option: str = "--set") -> tuple[str, str]:
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise GridError(f"{option} {assignment!r}: expected KEY=VALUE, e.g. train.epochs=2")
    return key.strip(), value


@dataclass(frozen=True)
class GridPoint:
    overrides: tuple[tuple[str, object], ...]     # (dotted key, value), in --grid order

    @property
    def label(self) -> str:
        return " ".join(f"{k}={format_value(v)}" for k, v in self.overrides) or "(params.yaml as written)"

    def as_set_flags(self) -> str:
        return " ".join(f"--set {k}={format_value(v)}" for k, v in self.overrides)

    def applied_to(self, raw: dict) -> dict:
        """`raw` (the settings as read from YAML) with this point's values set in it (returned)."""
        for key, value in self.overrides:
            set_dotted(raw, key, value)
        return raw


def parse_grid(specs: list[str]) -> list[GridPoint]:
    """`["a.b=1,2", "c=x,y"]` -> the 4 points of their product; values are YAML (numbers, booleans,
    lists in brackets)."""
    axes: list[tuple[str, list]] = []
    for spec in specs:
        key, values = parse_assignment(spec, "--grid")
        if key in (k for k, _ in axes):
            raise GridError(f"--grid {spec!r}: {key} is given twice")
        # the axis is one YAML flow sequence: commas inside brackets stay inside a list value
        parsed = [number_if_numeric(v) for v in _read_yaml(f"[{values}]", f"--grid {spec!r}") or []]
        if not parsed:
            raise GridError(f"--grid {spec!r}: no values")
        axes.append((key, parsed))
    if not axes:
        return [GridPoint(())]
    return [GridPoint(tuple(zip([k for k, _ in axes], combo))) for combo in itertools.product(*[v for _, v in axes])]


@dataclass(frozen=True)
class PointScore:
    point: GridPoint
    # stream -> means over seeds of the validation average_accuracy, bwt, newest_step_accuracy and the
    # examples_processed (records written before 2026-12-07's thirteenth session lack the examples)
    per_stream: dict[str, dict[str, float]]
    per_seed: tuple[float, ...] = ()          # each selection seed's score (mean over streams), in seed order

    @property
    def score(self) -> float:
        return statistics.fmean(s["average_accuracy"] for s in self.per_stream.values())

    @property
    def bwt(self) -> float:
        return statistics.fmean(s["bwt"] for s in self.per_stream.values())


def score_point(point: GridPoint, runs: dict[str, list[RunResult]]) -> PointScore:
    """`runs`: stream name -> the selection runs (one per seed) at this point, measured on validation."""
    def mean(results: list[RunResult], key: str) -> float:
        return statistics.fmean(r.summary[key] or 0.0 for r in results)

    seeds = min(len(results) for results in runs.values()) if runs else 0
    per_seed = tuple(statistics.fmean(results[i].summary["average_accuracy"] or 0.0 for results in runs.values())
                     for i in range(seeds))
    return PointScore(point, {stream: {"average_accuracy": mean(results, "average_accuracy"),
                                       "bwt": mean(results, "bwt"),
                                       "newest_step_accuracy": mean(results, "newest_step_accuracy"),
                                       "examples_processed": statistics.fmean(r.examples_processed for r in results)}
                              for stream, results in runs.items()}, per_seed)


def examples_per_stream(score: PointScore) -> str:
    """"BBC 2,054; drug 1,414": the training examples a point processed on each stream (mean over seeds;
    the issue's examples target is judged beside the score); "" for records that did not keep them."""
    if not all("examples_processed" in figures for figures in score.per_stream.values()):
        return ""
    return "; ".join(f"{name} {figures['examples_processed']:,.0f}" for name, figures in score.per_stream.items())


@dataclass(frozen=True)
class Margin:
    """How much `challenger` beats `incumbent` by, seed against seed."""
    difference: float                 # mean over seeds of (challenger's score - incumbent's)
    standard_error: float | None      # of that mean (sample sd / sqrt(seeds)); None with fewer than two seeds

    @property
    def beyond_noise(self) -> bool:
        """True when the difference is positive and larger than its standard error (one seed: positive)."""
        return self.difference > (self.standard_error or 0.0)


def paired_margin(challenger: PointScore, incumbent: PointScore) -> Margin:
    differences = [c - i for c, i in zip(challenger.per_seed, incumbent.per_seed)]
    if not differences:
        return Margin(challenger.score - incumbent.score, None)
    standard_error = (statistics.stdev(differences) / len(differences) ** 0.5) if len(differences) > 1 else None
    return Margin(statistics.fmean(differences), standard_error)


_MISSING = object()


def value_at(raw: dict, key: str):
    """raw[a][b][c] for key "a.b.c" (`1e-4` strings read as numbers); `_MISSING` when a part is absent."""
    node = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return number_if_numeric(node)


def named_against(overrides: dict, base: dict) -> GridPoint:
    """The point as what it changes in `base`: keys already at base's value drop out, the rest sorted
    (lists as tuples, so points can key a dict). The empty point is the incumbent."""
    values = {key: number_if_numeric(value) for key, value in overrides.items()}
    changed = sorted((key, tuple(value) if isinstance(value, list) else value)
                     for key, value in values.items() if value != value_at(base, key))
    return GridPoint(tuple(changed))


def incumbent_point(points: list[GridPoint], base: dict) -> GridPoint | None:
    """The grid point that changes nothing in `base` (the raw settings), if the grid has one."""
    return next((p for p in points if p.overrides and not named_against(dict(p.overrides), base).overrides), None)


# the settings a selection run reads (data.labels comes from the stream; the rest is the pipeline's)
SETTINGS_SECTIONS = ("task", "model", "train", "continual")


def settings_digest(raw: dict) -> str:
    """A fingerprint of the settings a point ran with, so a later pool can tell what it ran on."""
    relevant = {section: raw.get(section) for section in SETTINGS_SECTIONS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def point_entries(scores: list[PointScore], base: dict) -> list[dict]:
    """The record's `points`: each point's scores, and the digest of the settings it ran with (base + point)."""
    return [{"overrides": dict(s.point.overrides), "score": s.score, "bwt": s.bwt, "per_seed": list(s.per_seed),
             "per_stream": s.per_stream, "settings_digest": settings_digest(s.point.applied_to(copy.deepcopy(base)))}
            for s in scores]


def pick(scores: list[PointScore], incumbent: GridPoint | None = None) -> PointScore:
    """The best score (ties: better BWT, then the earlier point); with several seeds, the incumbent
    stays unless the best beats it by more than the standard error of their paired difference."""
    if not scores:
        raise GridError("nothing to pick from: the grid ran no point")
    best = max(enumerate(scores), key=lambda pair: (round(pair[1].score, 9), round(pair[1].bwt, 9), -pair[0]))[1]
    held = next((s for s in scores if s.point == incumbent), None)
    if held is None or held is best:
        return best
    margin = paired_margin(best, held)
    if margin.standard_error is not None and not margin.beyond_noise:
        return held
    return best


def apply_assignments(raw: dict, assignments: list[str]) -> dict:
    """`train.epochs=2`, `model.max_length=64`: dotted keys, YAML values, set in `raw` (returned)."""
    for assignment in assignments:
        key, value = parse_assignment(assignment)
        set_dotted(raw, key, parse_value(value))
    return raw
