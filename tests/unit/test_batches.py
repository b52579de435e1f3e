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


def test_entries_that_are_not_batches_are_listed_with_a_reason_and_never_read(tmp_path):
    from ratchet.batches import scan_incoming

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "ok.csv").write_text("text,label\nhello,red\n")
    (incoming / "sheet.xlsx").write_bytes(b"PK")
    (incoming / "x.csv").mkdir()
    (incoming / ".upload.csv").write_text("partial")
    secret = tmp_path / "secret.csv"
    secret.write_text("text,label\nsecret,red\n")
    (incoming / "link.csv").symlink_to(secret)
    scan = scan_incoming(incoming)
    assert [p.name for p in scan.batches] == ["ok.csv"]
    reasons = {entry.name: entry.reason for entry in scan.ignored}
    assert set(reasons) == {"sheet.xlsx", "x.csv", ".upload.csv", "link.csv"}
    assert "symbolic link" in reasons["link.csv"] and "folder" in reasons["x.csv"]
    assert "unsupported file type '.xlsx'" in reasons["sheet.xlsx"]
    with pytest.raises(BatchReadError, match="symbolic link"):
        read_raw(incoming / "link.csv")


def test_gzipped_csv_and_jsonl_are_read_and_a_bomb_is_refused(tmp_path, monkeypatch):
    import gzip

    from ratchet import batches

    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(b"text,label\nhello,red\nbye,green\n"))
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b'{"text": "hello", "label": "red"}\n'))
    assert list(read_raw(tmp_path / "b.csv.gz")["label"]) == ["red", "green"]
    assert list(read_raw(tmp_path / "b.jsonl.gz")["text"]) == ["hello"]
    assert content_hash(read_raw(tmp_path / "b.csv.gz")) == content_hash(
        pd.DataFrame({"text": ["hello", "bye"], "label": ["red", "green"]})), "the id is the content's"
    monkeypatch.setattr(batches, "MAX_DECOMPRESSED_BYTES", 1000)
    (tmp_path / "bomb.csv.gz").write_bytes(gzip.compress(b"text,label\n" + b"a,red\n" * 10_000))
    with pytest.raises(BatchReadError, match="expands beyond"):
        read_raw(tmp_path / "bomb.csv.gz")
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(BatchReadError, match="bad.csv.gz: cannot be read as csv.gz"):
        read_raw(tmp_path / "bad.csv.gz")
