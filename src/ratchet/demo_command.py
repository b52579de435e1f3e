"""`ratchet demo`: the BBC News topics demo in this project, or (`--task ner`) the entity demo in a
project of its own; both build a reference and a stream of batches and run the loop over them."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Annotated, Callable

import typer

from ratchet.cli_support import console, print_status, run_watch, setup
from ratchet.paths import ProjectPaths


def demo(project: Annotated[Path | None, typer.Option("--project", "-p", help="The project folder (default: . for "
                                                                             "text, demo-ner/ for ner).")] = None,
         fresh: Annotated[bool, typer.Option(help="Set an earlier demo's state aside first.")] = False,
         task: Annotated[str, typer.Option(help="text: BBC News topics in this repository's project; ner: "
                                                "entities in tweets, a project of its own.")] = "text") -> None:
    """Build a reference set and a stream of batches, then run the flow over it and say where to look."""
    setup()
    if task not in ("text", "ner"):
        console.print(f"[red]error:[/] --task is text or ner, not {task!r}")
        raise typer.Exit(2)
    if task == "ner":
        _demo_ner(ProjectPaths.at(project or Path("demo-ner")), fresh)
        return
    from ratchet import demo as demo_data
    from ratchet import dvc_repo

    paths = ProjectPaths.at(project or Path("."))
    _set_aside_if(fresh, paths)
    if not (paths.root / ".dvc").is_dir():
        dvc_repo.init(paths.root)
    _run_stream(paths, demo_data, rerun_hint="ratchet demo --fresh",
                describe_reference=lambda n, md5: f"reference set built: {n} BBC business/politics articles, "
                                                  f"data/ md5 {md5}")
    console.print(
        "\n[bold]Where to look[/] (commands from .venv/bin, or after `source .venv/bin/activate`)\n"
        f"  ratchet status              the champion and every batch's outcome (--json for machines)\n"
        f"  ratchet history             every move of the champion alias, and why\n"
        f"  ratchet predict \"text\"      the champion's label and probabilities for a text\n"
        f"  reports/drift/index.html    every batch's drift verdict, linking to its report (open in a browser)\n"
        f"  quarantine/<batch>/         rejected files with reason.json and the Great Expectations result\n"
        f"  metrics/gate.json           the last gate decision, check by check\n"
        f"  dvc dag / dvc plots show    the pipeline and the accuracy plots\n"
        f"  mlflow ui --backend-store-uri sqlite:///{paths.mlflow_db}\n"
        f"                              runs, evidence, and model `ratchet` with alias `champion`")


def _demo_ner(paths: ProjectPaths, fresh: bool) -> None:
    from ratchet import demo_ner

    _set_aside_if(fresh, paths)
    try:
        demo_ner.set_up_project(paths)
    except demo_ner.DemoSetupError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    _run_stream(paths, demo_ner, rerun_hint="ratchet demo --task ner --fresh",
                describe_reference=lambda n, md5: f"reference set built in {paths.root}: {n} tweets tagging person, "
                                                  f"geo-loc, other and company; data/ md5 {md5}")
    where = paths.root
    console.print(
        "\n[bold]Where to look[/] (commands from .venv/bin, or after `source .venv/bin/activate`)\n"
        f"  ratchet predict --project {where} \"Obama visits Paris with Apple\"\n"
        f"                              the champion's entities: spans, types and scores\n"
        f"  ratchet status --project {where}\n"
        f"  {where}/reports/drift/index.html   entity types per batch, types never learned, the champion's F1\n"
        f"  {where}/metrics/gate.json          the last gate: entity F1 per old split and per type\n"
        f"  {where}/quarantine/<batch>/        the malformed batch, reason.json naming sentence and token\n"
        f"  mlflow ui --backend-store-uri sqlite:///{paths.mlflow_db}")


def _set_aside_if(fresh: bool, paths: ProjectPaths) -> None:
    if not fresh:
        return
    from ratchet.demo import set_aside_previous_run

    moved = set_aside_previous_run(paths)
    if moved:
        console.print(f"earlier demo state moved to {moved}")


def _run_stream(paths: ProjectPaths, stream: ModuleType, rerun_hint: str,
                describe_reference: Callable[[int, str], str]) -> None:
    """The part both demos share. `stream` is ratchet.demo or ratchet.demo_ner: each has
    build_stream, build_reference, write_incoming and DEMO_FILES (name and story of each file).
    The reference is built and tracked only in a project that holds no run yet; the batches are
    then written to incoming/ and the loop runs over them once."""
    from ratchet import dvc_repo, store

    reference, files = stream.build_stream()
    if store.read_catalog(paths):
        console.print(f"[yellow]{paths.data} already holds a demo run[/]: its files will be recognised as "
                      f"duplicates. Use `{rerun_hint}` to start over.")
    else:
        stream.build_reference(paths, reference)
        md5 = dvc_repo.add(paths.root)
        console.print(describe_reference(len(reference), md5))
    stream.write_incoming(paths, files)
    for item in stream.DEMO_FILES:
        console.print(f"  incoming/{item.name}: {item.story}")
    run_watch(paths)
    print_status(paths)
