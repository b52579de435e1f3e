"""`bench cl --select-on validation`: run one strategy at every grid point on every stream's
validation slices, score the points (ratchet.bench.selection), write the record and return the pick."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ratchet.bench.selection import (
    GridPoint,
    examples_per_stream,
    incumbent_point,
    paired_margin,
    pick,
    point_entries,
    score_point,
)
from ratchet.bench.stream_kinds import (
    load_any_stream,
    run_any_stream,
    settings_for_stream,
)


@dataclass(frozen=True)
class ValidationSlices:
    """How the streams are loaded for selection: the slice's share of each step's training rows, the
    time budget's thinning, and (optionally) a cap on the slice drawn before that thinning."""
    validation_fraction: float
    train_fraction: float = 1.0
    max_train_per_step: int | None = None
    max_validation_per_step: int | None = None

    def load(self, file: Path):
        if self.validation_fraction <= 0 or self.validation_fraction >= 1:
            raise ValueError(f"--validation-fraction {self.validation_fraction}: must be between 0 and 1")
        return load_any_stream(file, self.max_train_per_step, self.train_fraction, self.validation_fraction,
                               self.max_validation_per_step)


def select_on_validation(files: list[Path], slices: ValidationSlices, base: dict, points: list[GridPoint],
                         strategy: str, seeds: list[int], device, out: Path,
                         say: Callable[[str], None]) -> GridPoint:
    """Run `strategy` at every grid point on every stream's validation slices; write
    `<out stem>.selection.json` and return the pick."""
    streams = [slices.load(f) for f in files]
    scores = []
    for point in points:
        raw = point.applied_to(copy.deepcopy(base))
        runs = {}
        for loaded in streams:
            settings = settings_for_stream(raw, loaded, f"params + --set + --grid {point.label}")
            runs[loaded.name] = [run_any_stream(loaded, settings, strategy, seed, device, evaluate_on="validation")
                                 for seed in seeds]
        scores.append(score_point(point, runs))
        say(f"selection: {point.label}: validation average accuracy {scores[-1].score:.4f}, BWT {scores[-1].bwt:+.4f}; "
            f"training examples {examples_per_stream(scores[-1])}")
    incumbent = incumbent_point(points, base)
    best = pick(scores, incumbent)
    margins = {s.point.label: asdict(paired_margin(s, best)) for s in scores if s is not best}
    record = {"select_for": strategy, "seeds": seeds, **asdict(slices),
              "validation_rows": {s.name: s.validation_rows() for s in streams},
              "streams": [s.name for s in streams], "criterion": "mean over streams of validation average accuracy",
              "incumbent": dict(incumbent.overrides) if incumbent else None,
              "points": point_entries(scores, base),
              "picked": dict(best.point.overrides),
              "others_against_the_pick": margins}
    target = out.with_name(f"{out.stem}.selection.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    for label, margin in margins.items():
        noise = f" ± {margin['standard_error']:.4f} (standard error over {len(seeds)} seeds)" \
            if margin["standard_error"] is not None else ""
        say(f"selection: {label} against the pick: {margin['difference']:+.4f}{noise}"
            + (" (within the seeds' noise: the incumbent stays)" if margin["difference"] > 0 else ""))
    say(f"picked on validation: {best.point.label} (score {best.score:.4f}); "
        f"to rerun the tables with it: {best.point.as_set_flags()} (all points: {target})")
    return best.point
