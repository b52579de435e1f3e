"""Great Expectations adapter: the batch suite built from params, and quarantine of failing batches.

Only this module imports great_expectations; callers get ratchet's ValidationResult.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ratchet import atomic
from ratchet.config import DataSettings, ValidationSettings

log = logging.getLogger("ratchet")

REQUIRED_COLUMNS = ("id", "text", "label")
MAX_EXAMPLES = 5
# The type of each text and label value, as a column of its own: Great Expectations' own type
# expectations crash when a column mixes objects with scalars (GE 1.x formats them as row dicts).
# On a normalised batch both must be strings: normalise turns every scalar label into its string
# and leaves objects and lists as they are, for this check to name.
TYPE_COLUMNS = {"text": "text__type", "label": "label__type"}


@dataclass(frozen=True)
class Failure:
    """One failed expectation, in words a person can act on."""

    check: str
    column: str | None
    message: str
    unexpected_count: int = 0
    rows: list[int] = field(default_factory=list)  # 0-based data row numbers in the file
    examples: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class ValidationResult:
    passed: bool
    checks_run: int
    failures: list[Failure]
    ge_result: dict[str, Any]  # the raw Great Expectations result, kept for the record

    def summary(self) -> str:
        """The failures in one line; checks that could not run on a missing column are implied."""
        if self.passed:
            return f"all {self.checks_run} checks passed"
        missing = {f.column for f in self.failures if f.check == "expect_column_to_exist"}
        shown = [f.message for f in self.failures
                 if f.check == "expect_column_to_exist" or f.column not in missing]
        return "; ".join(shown)


def _expectations(data: DataSettings, rules: ValidationSettings) -> list:
    import great_expectations as gx

    E = gx.expectations
    expectations: list = [E.ExpectColumnToExist(column=c) for c in REQUIRED_COLUMNS]
    expectations += [
        *(E.ExpectColumnValuesToBeInSet(column=type_column, value_set=["str", "null"])
          for type_column in TYPE_COLUMNS.values()),
        E.ExpectTableRowCountToBeBetween(min_value=rules.min_rows, max_value=rules.max_rows),
        E.ExpectColumnValuesToNotBeNull(column="text"),
        E.ExpectColumnValueLengthsToBeBetween(
            column="text", min_value=rules.min_text_chars, max_value=rules.max_text_chars),
        E.ExpectColumnValuesToNotBeNull(column="label"),
        E.ExpectColumnValuesToBeInSet(column="label", value_set=list(data.labels)),
        E.ExpectColumnValuesToNotBeNull(column="id"),
        E.ExpectColumnValuesToBeUnique(column="id"),
    ]
    return expectations


_MESSAGES = {
    "expect_column_to_exist": "required column {column!r} is missing",
    "expect_table_row_count_to_be_between": "row count {observed} is outside [{min_value}, {max_value}]",
    "expect_column_values_to_not_be_null": "{count} row(s) have no {column!r}",
    "expect_column_value_lengths_to_be_between":
        "{count} row(s) have a {column!r} length outside [{min_value}, {max_value}] characters",
    "expect_column_values_to_be_in_set": "{count} row(s) have a {column!r} outside the declared set",
    "expect_column_values_to_be_unique": "{count} row(s) share an {column!r} with another row",
}


def _typed_view(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame Great Expectations checks: each text and label value's type name in a column of
    its own, and values of a wrong type (objects, lists) as their repr, so the value checks run on
    strings and the type check alone names them."""
    view = frame.copy()
    for column, type_column in TYPE_COLUMNS.items():
        if column not in view.columns:
            continue
        view[type_column] = view[column].map(lambda v: "null" if _is_null(v) else type(v).__name__)
        view[column] = view[column].map(lambda v: v if _is_null(v) or isinstance(v, str) else repr(v)[:200])
    return view


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _failure(item: dict[str, Any], present_columns: set[str]) -> Failure:
    config = item["expectation_config"]
    kind, kwargs = config["type"], config["kwargs"]
    column = kwargs.get("column")
    result = item.get("result") or {}
    count = int(result.get("unexpected_count") or 0)
    typed = {type_column: column for column, type_column in TYPE_COLUMNS.items()}
    if column in typed and typed[column] in present_columns:
        column = typed[column]
        found = sorted({str(v) for v in result.get("partial_unexpected_list") or [] if v != "null"})
        wanted = "a string" if column == "text" else "a single label (string or number)"
        message = f"{count} row(s) have a {column!r} that is not {wanted} (found {', '.join(found)})"
        return Failure(check="expect_column_values_to_be_of_type", column=column, message=message,
                       unexpected_count=count,
                       rows=[int(i) for i in (result.get("unexpected_index_list") or [])][:50],
                       examples=found[:MAX_EXAMPLES])
    column = typed.get(column, column)
    if column is not None and column not in present_columns and kind != "expect_column_to_exist":
        message = f"cannot check {kind.removeprefix('expect_')} because column {column!r} is missing"
    else:
        template = _MESSAGES.get(kind, kind)
        message = template.format(column=column, count=count, observed=result.get("observed_value"),
                                  min_value=kwargs.get("min_value"), max_value=kwargs.get("max_value"))
        if kind == "expect_column_values_to_be_in_set":
            message += f" {sorted(kwargs.get('value_set', []))}"
    examples = [v for v in (result.get("partial_unexpected_list") or [])][:MAX_EXAMPLES]
    return Failure(check=kind, column=column, message=message, unexpected_count=count,
                   rows=[int(i) for i in (result.get("unexpected_index_list") or [])][:50],
                   examples=sorted({repr(v)[:80] for v in examples}))


def validate(frame: pd.DataFrame, data: DataSettings, rules: ValidationSettings) -> ValidationResult:
    """Run the suite on a normalised batch. Any exception inside an expectation counts as a failure."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (context.data_sources.add_pandas("ratchet")
                        .add_dataframe_asset("incoming_batch")
                        .add_batch_definition_whole_dataframe("whole_batch"))
    suite = context.suites.add(gx.ExpectationSuite(name="ratchet_batch"))
    for expectation in _expectations(data, rules):
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="ratchet_batch", data=batch_definition, suite=suite))
    result = definition.run(batch_parameters={"dataframe": _typed_view(frame)},
                            result_format={"result_format": "COMPLETE"}).to_json_dict()
    present = {str(c) for c in frame.columns}
    failures = [_failure(item, present) for item in result["results"] if not item["success"]]
    # Missing columns first, then values of the wrong type: they explain the other failures.
    failures.sort(key=lambda f: (f.check != "expect_column_to_exist", f.check != "expect_column_values_to_be_of_type",
                                 f.check))
    return ValidationResult(passed=bool(result["success"]) and not failures,
                            checks_run=len(result["results"]), failures=failures, ge_result=result)


def quarantine(source: Path, destination: Path, batch_id: str, reason: str,
               result: ValidationResult | None) -> Path:
    """Move a bad batch to quarantine/<batch_id>/ with a machine-readable reason and the GE result."""
    destination.mkdir(parents=True, exist_ok=True)
    atomic.write_json(destination / "reason.json", {
        "batch_id": batch_id,
        "file": source.name,
        "reason": reason,
        "failures": [asdict(f) for f in result.failures] if result else [],
        "rows_are": "0-based data rows of the original file (header excluded)",
    })
    if result is not None:
        atomic.write_json(destination / "ge_result.json", result.ge_result)
    shutil.move(str(source), destination / source.name)
    log.warning("quarantined %s as %s: %s", source.name, batch_id, reason)
    return destination
