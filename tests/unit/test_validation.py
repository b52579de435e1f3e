import json

import pandas as pd

from ratchet.config import DataSettings, ValidationSettings
from ratchet.validation import quarantine, validate

DATA = DataSettings(labels=["red", "green"])
RULES = ValidationSettings(min_rows=3, max_rows=100, min_text_chars=1, max_text_chars=50)


def frame(**overrides):
    base = {"id": ["1", "2", "3", "4"], "text": ["a b", "c d", "e f", "g h"], "label": ["red", "green", "red", "green"]}
    base.update(overrides)
    return pd.DataFrame(base)


def test_clean_batch_passes():
    result = validate(frame(), DATA, RULES)
    assert result.passed, result.summary()
    assert result.checks_run >= 9


def test_each_problem_is_named_with_column_and_rows():
    bad = frame(text=["a b", "", "e f", "x" * 60], label=["red", "purple", "red", None], id=["1", "2", "2", "4"])
    result = validate(bad, DATA, RULES)
    assert not result.passed
    by_check = {(f.check, f.column): f for f in result.failures}
    assert by_check[("expect_column_values_to_be_in_set", "label")].rows == [1]
    assert by_check[("expect_column_value_lengths_to_be_between", "text")].rows == [1, 3]
    assert by_check[("expect_column_values_to_be_unique", "id")].unexpected_count == 2
    assert by_check[("expect_column_values_to_not_be_null", "label")].rows == [3]


def test_missing_column_is_reported_first():
    result = validate(frame().drop(columns="label"), DATA, RULES)
    assert not result.passed
    assert result.failures[0].check == "expect_column_to_exist"
    assert "required column 'label' is missing" in result.summary()


def test_too_few_rows_fails():
    result = validate(frame().iloc[:2], DATA, RULES)
    assert "row count 2 is outside [3, 100]" in result.summary()


def test_quarantine_keeps_the_file_and_explains(tmp_path):
    source = tmp_path / "incoming" / "bad.csv"
    source.parent.mkdir()
    source.write_text("id,text\n1,x\n")
    result = validate(frame().drop(columns="label"), DATA, RULES)
    folder = quarantine(source, tmp_path / "quarantine" / "b-1", "b-1", result.summary(), result)
    assert (folder / "bad.csv").read_text() == "id,text\n1,x\n"
    assert not source.exists()
    reason = json.loads((folder / "reason.json").read_text())
    assert reason["batch_id"] == "b-1" and reason["file"] == "bad.csv"
    assert reason["failures"][0]["column"] == "label"
    assert json.loads((folder / "ge_result.json").read_text())["success"] is False


def _read_back(tmp_path, name: str, rows: list[dict]):
    """A batch written in the format `name` names, read back the way intake reads it."""
    from ratchet.batches import normalise, read_raw

    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return normalise(read_raw(path), DATA, "b-test")


def test_text_that_is_not_a_string_is_named_with_its_rows_in_every_format(tmp_path):
    """The wedging batch of issue 16: text values that are objects must not pass to data/."""
    mixed = [{"id": str(i), "text": {"body": "a b"} if i in (1, 3) else "a b", "label": "red"} for i in range(4)]
    structs = [{"id": str(i), "text": {"body": "a b"}, "label": "red"} for i in range(4)]  # Parquet: one type a column
    for name, rows, bad in (("objects.jsonl", mixed, [1, 3]), ("objects.parquet", structs, [0, 1, 2, 3])):
        result = validate(_read_back(tmp_path, name, rows), DATA, RULES)
        assert not result.passed, name
        first = result.failures[0]
        assert (first.check, first.column, first.rows) == ("expect_column_values_to_be_of_type", "text", bad), name
        assert f"{len(bad)} row(s) have a 'text' that is not a string (found dict)" in result.summary(), name
    numbers = [{"id": str(i), "text": 7 if i == 2 else "a b", "label": "red"} for i in range(4)]
    result = validate(_read_back(tmp_path, "numbers.jsonl", numbers), DATA, RULES)
    assert result.failures[0].rows == [2] and "found int" in result.summary()


def test_a_label_must_be_one_scalar_not_a_list_or_object(tmp_path):
    rows = [{"id": str(i), "text": "a b", "label": ["red", "green"] if i == 0 else "red"} for i in range(4)]
    result = validate(_read_back(tmp_path, "lists.jsonl", rows), DATA, RULES)
    assert not result.passed
    typed = [f for f in result.failures if f.check == "expect_column_values_to_be_of_type"]
    assert [(f.column, f.rows, f.examples) for f in typed] == [("label", [0], ["list"])]
    numeric = [{"id": str(i), "text": "a b", "label": 1} for i in range(4)]
    data = DataSettings(labels=["1", "2"])
    assert validate(_read_back(tmp_path, "numeric.jsonl", numeric), data, RULES).passed, "numbers are labels"
