"""A real ratchet project in a temp dir: git + DVC, params for the tiny BERT, synthetic batches.
(The fixtures that build on these, champion_template among them, are in tests/conftest.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from ratchet import dvc_repo, store
from ratchet.paths import ProjectPaths
from tests.conftest import synthetic_frame

REPO = Path(__file__).resolve().parents[2]
LABELS = ["red", "green", "blue"]


def tiny_params(model_dir: Path) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["labels"] = LABELS
    params["validation"]["min_rows"] = 10
    params["drift"]["calibration_draws"] = 20
    # Full fine-tuning: LoRA on a tiny random model is too unstable for outcome assertions (the order
    # of one training mix swings an old split by 50 points); LoRA mechanics are unit-tested.
    params["model"].update({"base": str(model_dir), "max_length": 32, "finetune": "full"})
    # No step floor for new classes: six epochs on tiny data are what the outcome assertions were set
    # for (the floor itself is unit-tested: tests/unit/test_steps_floor.py).
    params["train"].update({"epochs": 6, "batch_size": 16, "learning_rate": 0.002, "warmup_ratio": 0.1,
                            "new_class_min_steps": 0})
    # Eval splits of 10-20 examples: one example is 5-10 points, so the limits are wide.
    params["gate"].update({"max_old_split_drop": 0.15, "hard_max_old_split_drop": 0.3,
                           "max_class_recall_drop": 0.3, "hard_max_class_recall_drop": 0.5,
                           "max_negative_flip_rate": 0.3, "min_new_split_accuracy": 0.6})
    return params


def _with_overrides(params: dict, overrides: dict | None) -> dict:
    for key, value in (overrides or {}).items():
        *sections, name = key.split(".")
        node = params
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    return params


def make_project(root: Path, model_dir: Path, overrides: dict | None = None, params: dict | None = None,
                 reference=None) -> ProjectPaths:
    """A fresh project: the pipeline files of this repo, tiny-model params, git, DVC, a reference.

    `overrides` maps a dotted key to a value, e.g. {"policy.train_on": "min_new_examples"};
    `params` and `reference` replace the tiny text-classification ones (a token project's).
    """
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "attempt.yaml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = _with_overrides(params or tiny_params(model_dir), overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.email=test@ratchet", "-c", "user.name=ratchet-test"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc_repo.init(root)
    paths = ProjectPaths.at(root)
    if reference is None:
        reference = synthetic_frame({"red": 40, "green": 40}, seed=0, prefix="ref")
    store.create_reference(paths, reference, source="synthetic reference", eval_fraction=0.25)
    dvc_repo.add(root)
    subprocess.run(git + ["add", "-A"], cwd=root, check=True)
    subprocess.run(git + ["commit", "-qm", "project with reference"], cwd=root, check=True)
    return paths


def drop(paths: ProjectPaths, name: str, frame, minute: int) -> Path:
    """Put a batch file into incoming/ with a given arrival time."""
    paths.incoming.mkdir(exist_ok=True)
    target = paths.incoming / name
    if name.endswith(".csv"):
        frame.to_csv(target, index=False)
    elif name.endswith(".jsonl"):
        frame.to_json(target, orient="records", lines=True)
    else:
        frame.to_parquet(target, index=False)
    os.utime(target, (1_700_000_000 + 60 * minute,) * 2)
    return target


# Settings the first champion's training reads: a project that overrides one of them trains its own.
FIRST_TRAINING_SECTIONS = ("data", "model", "train", "prepare", "validation", "drift", "project")


def project_with_champion(template: Path, root: Path, overrides: dict | None = None) -> ProjectPaths:
    """A copy of the champion template at `root`, with `overrides` (see make_project) applied.

    Only for tests where the first champion need not be fresh: the overrides must not touch what
    its training read (FIRST_TRAINING_SECTIONS)."""
    touched = [k for k in (overrides or {}) if k.split(".")[0] in FIRST_TRAINING_SECTIONS]
    assert not touched, f"{touched} change the first champion's training: use make_project"
    shutil.copytree(template, root, symlinks=True)
    params = _with_overrides(yaml.safe_load((template / "params.yaml").read_text()), overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return ProjectPaths.at(root)


