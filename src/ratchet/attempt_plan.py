"""attempt.yaml: which try of the feedback loop `dvc repro` runs, and how the retries before it
changed retention (a DVC params file, written by ratchet.attempt before each `dvc repro`, read by
every stage through ratchet.stages._common)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ratchet.config import ConfigError

RetryKind = Literal["more_retention", "less_retention"]
RETRY_KINDS: tuple[str, ...] = ("more_retention", "less_retention")


class AttemptPlan(BaseModel):
    """attempt.yaml: which try of the feedback loop `dvc repro` runs, and the retries before it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempt: int = Field(0, ge=0)
    retries: list[RetryKind] = []      # one per earlier failed attempt, in order

    @model_validator(mode="after")
    def _one_retry_per_attempt(self) -> "AttemptPlan":
        if len(self.retries) != self.attempt:
            raise ValueError(f"attempt {self.attempt} needs {self.attempt} retries, got {self.retries}")
        return self


def attempt_file_text(plan: AttemptPlan) -> str:
    """attempt.yaml as the feedback loop writes it before each `dvc repro`."""
    return ("# Written by ratchet's feedback loop before each `dvc repro`: attempt 0 runs params.yaml as\n"
            "# written; each retry names how it changed retention: more_retention (the gate failed on old\n"
            "# data) or less_retention (the new data was not learned). See `feedback` in params.yaml.\n"
            + yaml.safe_dump(plan.model_dump(), sort_keys=False, default_flow_style=None))


def read_attempt(path: Path) -> AttemptPlan:
    """The feedback loop's plan from attempt.yaml (attempt 0 when the file is absent)."""
    if not path.exists():
        return AttemptPlan()
    try:
        return AttemptPlan.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (yaml.YAMLError, ValidationError) as error:
        raise ConfigError(f"{path} must hold `attempt: <number>` and `retries: [more_retention | less_retention, ...]` "
                          f"(written by ratchet's feedback loop): {error}") from None
