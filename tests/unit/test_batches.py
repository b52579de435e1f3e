import pandas as pd
import pytest

from ratchet.batches import BatchReadError, content_hash, list_incoming, normalise, read_raw
from ratchet.config import DataSettings

DATA = DataSettings(labels=["a", "b"], text_column="Body", label_column="topic")


def test_formats_give_the_same_batch_id(tmp_path):
    frame = pd.DataFrame({"id": ["1", "2"], "text": ["x y", "z"], "label": ["a", "b"]})
    frame.to_csv(tmp_path / "b.csv", index=False)
    frame.to_parquet(tmp_path / "b.parquet")
    frame[["label", "text", "id"]].to_json(tmp_path / "b.jsonl", orient="records", lines=True)
    ids = {content_hash(read_raw(tmp_path / name)) for name in ("b.csv", "b.parquet", "b.jsonl")}
    assert len(ids) == 1


def test_content_change_changes_the_id():
    a = pd.DataFrame({"text": ["x"], "label": ["a"]})
    b = pd.DataFrame({"text": ["x"], "label": ["b"]})
    assert content_hash(a) != content_hash(b)


def test_normalise_maps_configured_columns_and_derives_ids():
    raw = pd.DataFrame({"BODY": ["  hello  ", "world"], "Topic": ["a", "b"], "extra": [1, 2]})
    frame = normalise(raw, DATA, "b-123")
    assert list(frame["text"]) == ["hello", "world"]
    assert list(frame["label"]) == ["a", "b"]
    assert list(frame["id"]) == ["b-123-0", "b-123-1"]
    assert "extra" in frame.columns


def test_unreadable_file_names_the_file(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_text("not parquet")
    with pytest.raises(BatchReadError, match="broken.parquet"):
        read_raw(path)


def test_incoming_is_listed_in_arrival_order(tmp_path):
    import os

    for number, name in enumerate(["z.csv", "a.csv", "m.jsonl", "notes.txt"]):
        (tmp_path / name).write_text("text,label\n")
        os.utime(tmp_path / name, (1000 + number, 1000 + number))
    assert [p.name for p in list_incoming(tmp_path)] == ["z.csv", "a.csv", "m.jsonl"]
