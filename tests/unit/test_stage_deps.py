"""dvc.yaml's code deps cannot go stale: each stage must depend on every file of ratchet that its
module imports, directly or through other ratchet modules (lazy imports inside functions count;
imports only for type checkers do not). Otherwise an edit of such a file leaves `dvc repro` saying
"up to date" over stale metrics."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def ratchet_imports(path: Path) -> set[str]:
    """The ratchet modules a file imports (`from ratchet import store` names the module store)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "ratchet")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "ratchet":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def code_files(module: str) -> set[str]:
    """Every ratchet file `module` needs to run, transitively (package __init__ files included)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        if (path := module_file(name)) is not None:
            todo += sorted(ratchet_imports(path))
    return {str(module_file(m).relative_to(ROOT)) for m in seen if module_file(m)}


def uncovered(needed: set[str], deps: list[str]) -> list[str]:
    """The needed files that no dep names, itself or as a folder above it."""
    return sorted(f for f in needed if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps))


def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(stages()))
def test_every_imported_file_is_a_dependency_of_its_stage(stage):
    needed = code_files(f"ratchet.stages.{stage}")
    assert f"src/ratchet/stages/{stage}.py" in needed
    missing = uncovered(needed, stages()[stage]["deps"])
    assert not missing, f"dvc.yaml stage {stage!r} imports {missing} but does not list them in deps"


def test_the_check_fails_when_a_dependency_is_removed():
    """The check itself: drop any one code dep of a stage and it is reported."""
    for name, stage in stages().items():
        needed = code_files(f"ratchet.stages.{name}")
        for dep in [d for d in stage["deps"] if d.startswith("src/")]:
            reduced = [d for d in stage["deps"] if d != dep]
            assert uncovered(needed, reduced), f"removing {dep} from {name} went unnoticed"


def test_lazy_imports_count_and_type_checking_ones_do_not(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ratchet import cli\n"
                      "def f():\n    from ratchet import store\n    import ratchet.gate\n")
    assert ratchet_imports(sample) == {"ratchet", "ratchet.store", "ratchet.gate"}
