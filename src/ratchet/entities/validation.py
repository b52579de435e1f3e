"""Great Expectations on a batch of sentences: every problem named by sentence, line and token.

Each sentence becomes one row of a view whose columns say what is wrong with it, in words
(`""` when nothing is): its tokens, its tags (a list of the same length), a tag outside the
declared set, a break of IOB2 (after the declared repair), its length. Great Expectations checks
those columns, the sentence count and the ids; a failure lists the first sentences it concerns,
e.g. `sentence s3 (line 12): token 4 'Paris': tag 'B-city' is not declared`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ratchet.config import DataSettings, ValidationSettings
from ratchet.entities.tags import TagError, bio_problems, repair, tag_set
from ratchet.validation import Failure, ValidationResult

SHOWN = 3     # sentences named in one failure's message

# view column -> what a failing sentence is, in the message
PROBLEM_COLUMNS = {
    "tokens_problem": "have no usable tokens",
    "tags_problem": "have tags that do not match their tokens",
    "undeclared_tag": "use a tag outside the declared entity types",
    "bio_problem": "break the IOB2 scheme",
}


def _tokens_problem(tokens: Any) -> str:
    if isinstance(tokens, list) and not tokens:
        return "tokens must be a non-empty list, found an empty one"
    if not isinstance(tokens, list):
        return f"tokens must be a non-empty list, found {type(tokens).__name__ if tokens is not None else 'nothing'}"
    for position, token in enumerate(tokens):
        if not isinstance(token, str) or not token.strip():
            return f"token {position} is {token!r}, not a word"
    return ""


def _tags_problem(tokens: Any, tags: Any) -> str:
    if not isinstance(tags, list):
        return f"tags must be a list, found {type(tags).__name__ if tags is not None else 'nothing'}"
    if isinstance(tokens, list) and len(tags) != len(tokens):
        return f"{len(tokens)} tokens but {len(tags)} tags"
    if not all(isinstance(t, str) for t in tags):
        return "every tag must be a string"
    return ""


def _undeclared(tokens: list, tags: list, allowed: set[str]) -> str:
    for position, tag in enumerate(tags):
        if tag not in allowed:
            return f"token {position} {tokens[position]!r}: tag {tag!r} is not declared"
    return ""


def _bio(tokens: list, tags: list, rule: str) -> str:
    try:
        tags = repair(tags, rule)
    except TagError:
        pass  # an unparseable tag: bio_problems names it
    problems = bio_problems(tags)
    if not problems:
        return ""
    first = problems[0]
    return f"token {first.position} {tokens[first.position]!r}: {first.problem}"


def sentence_view(frame: pd.DataFrame, data: DataSettings) -> pd.DataFrame:
    allowed = set(tag_set(list(data.entity_types)))
    rows = []
    for record in frame.itertuples(index=False):
        tokens, tags = record.tokens, record.tags
        row = {"id": None if record.id is None else str(record.id), "line": record.line,
               "tokens_problem": _tokens_problem(tokens), "tags_problem": "", "undeclared_tag": "",
               "bio_problem": "", "n_tokens": None}
        if not row["tokens_problem"]:   # the length bounds apply to sentences that have tokens
            row["n_tokens"] = len(tokens)
            row["tags_problem"] = _tags_problem(tokens, tags)
        if not row["tokens_problem"] and not row["tags_problem"]:
            row["undeclared_tag"] = _undeclared(tokens, tags, allowed)
            row["bio_problem"] = _bio(tokens, tags, data.bio_repair)
        rows.append(row)
    return pd.DataFrame(rows, columns=["id", "line", *PROBLEM_COLUMNS, "n_tokens"])


def _expectations(rules: ValidationSettings) -> list:
    import great_expectations as gx

    E = gx.expectations
    return [E.ExpectTableRowCountToBeBetween(min_value=rules.min_rows, max_value=rules.max_rows),
            E.ExpectColumnValuesToNotBeNull(column="id"),
            E.ExpectColumnValuesToBeUnique(column="id"),
            *(E.ExpectColumnValuesToBeInSet(column=c, value_set=[""]) for c in PROBLEM_COLUMNS),
            E.ExpectColumnValuesToBeBetween(column="n_tokens", min_value=rules.min_tokens,
                                            max_value=rules.max_tokens)]


def _named(view: pd.DataFrame, rows: list[int], detail: str | None) -> str:
    parts = []
    for i in rows[:SHOWN]:
        where = f"sentence {view.at[i, 'id']} (line {view.at[i, 'line']})"
        parts.append(f"{where}: {view.at[i, detail]}" if detail else where)
    more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
    return "; ".join(parts) + more


def _failure(item: dict, view: pd.DataFrame, rules: ValidationSettings) -> Failure:
    config = item["expectation_config"]
    kind, column = config["type"], config["kwargs"].get("column")
    result = item.get("result") or {}
    rows = [int(i) for i in (result.get("unexpected_index_list") or [])]
    count = int(result.get("unexpected_count") or len(rows))
    if column in PROBLEM_COLUMNS:
        message = f"{count} sentence(s) {PROBLEM_COLUMNS[column]}: {_named(view, rows, column)}"
    elif column == "n_tokens":
        lengths = ", ".join(f"{view.at[i, 'id']} has {view.at[i, 'n_tokens']}" for i in rows[:SHOWN])
        message = (f"{count} sentence(s) have a length outside [{rules.min_tokens}, {rules.max_tokens}] tokens: "
                   f"{lengths}" + (f" and {count - SHOWN} more" if count > SHOWN else ""))
    elif kind == "expect_table_row_count_to_be_between":
        message = f"{result.get('observed_value')} sentence(s), outside [{rules.min_rows}, {rules.max_rows}]"
    elif kind == "expect_column_values_to_be_unique":
        message = f"{count} sentence(s) share an id with another: {_named(view, rows, None)}"
    else:
        message = f"{count} sentence(s) have no id: {_named(view, rows, None)}"
    return Failure(check=kind, column=column, message=message, unexpected_count=count, rows=rows[:50],
                   examples=[str(view.at[i, "id"]) for i in rows[:SHOWN]])


def validate_sentences(frame: pd.DataFrame, data: DataSettings, rules: ValidationSettings) -> ValidationResult:
    """Run the sentence suite on a frame from ratchet.entities.sentences."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    view = sentence_view(frame, data)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (context.data_sources.add_pandas("ratchet").add_dataframe_asset("token_batch")
             .add_batch_definition_whole_dataframe("whole_batch"))
    suite = context.suites.add(gx.ExpectationSuite(name="ratchet_token_batch"))
    for expectation in _expectations(rules):
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="ratchet_token_batch", data=batch, suite=suite))
    result = definition.run(batch_parameters={"dataframe": view},
                            result_format={"result_format": "COMPLETE"}).to_json_dict()
    failures = [_failure(item, view, rules) for item in result["results"] if not item["success"]]
    return ValidationResult(passed=bool(result["success"]) and not failures, checks_run=len(result["results"]),
                            failures=failures, ge_result=result)
