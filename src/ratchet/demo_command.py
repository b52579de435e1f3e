"""`ratchet demo`: the BBC News topics demo in this project, or (`--task ner`) the entity demo in a
project of its own; both build a reference and a stream of batches and run the loop over them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    from ratchet import dvc_repo, store

    paths = ProjectPaths.at(project or Path("."))
    if fresh:
        moved = demo_data.set_aside_previous_run(paths)
        if moved:
            console.print(f"earlier demo state moved to {moved}")
    if not (paths.root / ".dvc").is_dir():
        dvc_repo.init(paths.root)
    reference, files = demo_data.build_stream()
    if store.read_catalog(paths):
        console.print("[yellow]data/ already holds a demo run[/]: its files will be recognised as "
                      "duplicates. Use `ratchet demo --fresh` to start over.")
    else:
        demo_data.build_reference(paths, reference)
        md5 = dvc_repo.add(paths.root)
        console.print(f"reference set built: {len(reference)} BBC business/politics articles, data/ md5 {md5}")
    demo_data.write_incoming(paths, files)
    for item in demo_data.DEMO_FILES:
        console.print(f"  incoming/{item.name}: {item.story}")
    run_watch(paths)
    print_status(paths)
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
    from ratchet import demo as demo_data
    from ratchet import demo_ner, dvc_repo, store

    if fresh:
        moved = demo_data.set_aside_previous_run(paths)
        if moved:
            console.print(f"earlier demo state moved to {moved}")
    try:
        demo_ner.set_up_project(paths)
    except demo_ner.DemoSetupError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    reference, files = demo_ner.build_stream()
    if store.read_catalog(paths):
        console.print(f"[yellow]{paths.data} already holds a demo run[/]: its files will be recognised as "
                      "duplicates. Use `ratchet demo --task ner --fresh` to start over.")
    else:
        demo_ner.build_reference(paths, reference)
        md5 = dvc_repo.add(paths.root)
        console.print(f"reference set built in {paths.root}: {len(reference)} tweets tagging person, geo-loc, other "
                      f"and company; data/ md5 {md5}")
    demo_ner.write_incoming(paths, files)
    for item in demo_ner.DEMO_FILES:
        console.print(f"  incoming/{item.name}: {item.story}")
    run_watch(paths)
    print_status(paths)
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
