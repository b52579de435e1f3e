import pytest

from ratchet import store
from ratchet.paths import ProjectPaths
from ratchet.records import ChampionManifest
from tests.conftest import synthetic_frame


def test_split_is_stratified_deterministic_and_order_free():
    frame = synthetic_frame({"red": 50, "green": 30})
    train, evaluation = store.split_train_eval(frame, 0.2)
    assert len(train) + len(evaluation) == 80
    assert evaluation["label"].value_counts().to_dict() == {"red": 10, "green": 6}
    assert not set(train["id"]) & set(evaluation["id"])
    train2, eval2 = store.split_train_eval(frame.sample(frac=1.0, random_state=3), 0.2)
    assert train.equals(train2) and evaluation.equals(eval2)


def test_tiny_classes_keep_at_least_one_training_row():
    frame = synthetic_frame({"red": 1, "green": 2})
    train, evaluation = store.split_train_eval(frame, 0.5)
    assert sorted(train["label"]) == ["green", "red"]
    assert list(evaluation["label"]) == ["green"]


def test_accept_and_status_round_trip(tmp_path):
    paths = ProjectPaths.at(tmp_path)
    entry = store.accept_batch(paths, "b-1", synthetic_frame({"red": 10, "green": 10}), "one.csv", 0.2)
    assert entry.status == "pending" and entry.n_train == 16 and entry.n_eval == 4
    assert len(store.read_split(paths, "b-1", "eval")) == 4
    store.set_status(paths, ["b-1"], "trained")
    assert store.batches_with_status(paths, "trained") == ["b-1"]
    with pytest.raises(store.CatalogError, match="already"):
        store.accept_batch(paths, "b-1", synthetic_frame({"red": 5}), "again.csv", 0.2)
    with pytest.raises(store.CatalogError, match="unknown batch"):
        store.set_status(paths, ["b-404"], "trained")


def test_parquet_bytes_are_reproducible(tmp_path):
    paths_a, paths_b = ProjectPaths.at(tmp_path / "a"), ProjectPaths.at(tmp_path / "b")
    frame = synthetic_frame({"red": 20, "green": 20})
    for paths in (paths_a, paths_b):
        store.accept_batch(paths, "b-1", frame, "one.csv", 0.25)
    for split in ("train", "eval"):
        a = (paths_a.batch_dir("b-1") / f"{split}.parquet").read_bytes()
        b = (paths_b.batch_dir("b-1") / f"{split}.parquet").read_bytes()
        assert a == b


def test_install_champion_leaves_the_candidate_untouched(tmp_path):
    paths = ProjectPaths.at(tmp_path)
    candidate = tmp_path / "artifacts" / "candidate"
    candidate.mkdir(parents=True)
    (candidate / "weights.bin").write_bytes(b"w")
    manifest = ChampionManifest(kind="full", base_model="tiny", labels=["red"], version="3", run_id="r3")
    store.install_champion(paths, candidate, manifest)
    assert store.champion_manifest(paths) == manifest
    assert (paths.champion / "weights.bin").read_bytes() == b"w"
    assert (paths.champion / "README.md").exists()
    assert sorted(p.name for p in candidate.iterdir()) == ["weights.bin"]
