"""Commands on single batches: check a file without processing it, retry or drop a failed batch."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ratchet.cli_support import (
    JsonOption,
    ProjectOption,
    console,
    load_project_or_exit,
    setup,
)


def validate(files: Annotated[list[Path], typer.Argument(help="Batch files to check: CSV, Parquet or JSONL; "
                                                            "with task token-classification, CoNLL or JSONL.")],
             project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """The validation verdict of batch files, without processing them (exit 0: every file would pass)."""
    setup()
    from ratchet.batches import BatchReadError
    from ratchet.intake import load_batch, run_suite

    settings = load_project_or_exit(project).settings
    verdicts = []
    for file in files:
        try:   # rows of text, or (task token-classification) sentences from CoNLL or JSON Lines
            batch_id, frame = load_batch(file, settings)
        except (BatchReadError, OSError, UnicodeDecodeError) as error:
            verdicts.append({"file": str(file), "passed": False, "batch_id": None, "reason": str(error),
                             "failures": []})
            continue
        result = run_suite(frame, settings)
        verdicts.append({"file": str(file), "passed": result.passed, "batch_id": batch_id,
                         "reason": result.summary(), "rows": len(frame),
                         "failures": [{"check": f.check, "column": f.column, "message": f.message,
                                       "rows": f.rows, "examples": f.examples} for f in result.failures]})
    if as_json:
        json.dump(verdicts, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        for verdict in verdicts:
            mark = "[green]passes[/]" if verdict["passed"] else "[red]fails[/]"
            console.print(f"[bold]{verdict['file']}[/]: {mark}  {verdict['reason']}")
            for failure in verdict["failures"]:
                rows = f" (rows {', '.join(map(str, failure['rows'][:10]))})" if failure["rows"] else ""
                console.print(f"    {failure['message']}{rows}")
    raise typer.Exit(0 if all(v["passed"] for v in verdicts) else 1)


def retry(batch: Annotated[str, typer.Argument(help="The failed batch's id (see `ratchet status`).")],
          project: ProjectOption = Path(".")) -> None:
    """Put a failed batch back in line: its file returns to incoming/ for the next run."""
    setup()
    from ratchet import failure
    from ratchet.project import Project

    try:
        target = failure.retry(Project.load(project), batch)
    except failure.BatchCommandError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    console.print(f"{batch}: back in line as {target}; `ratchet run` processes it")


def drop(batch: Annotated[str, typer.Argument(help="The failed batch's id (see `ratchet status`).")],
         reason: Annotated[str, typer.Option("--reason", help="Why: kept in the ledger and reason.json.")],
         project: ProjectOption = Path(".")) -> None:
    """End a failed batch for good (quarantined, with your reason); its file stays in quarantine/."""
    setup()
    from ratchet import failure
    from ratchet.project import Project

    try:
        folder = failure.drop(Project.load(project), batch, reason)
    except failure.BatchCommandError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    console.print(f"{batch}: dropped (quarantined); its file is kept in {folder}")


def ledger(project: ProjectOption = Path("."),
           output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")] = None
           ) -> None:
    """The ledger (every arrival's every state, oldest first) exported as JSON Lines."""
    from ratchet.batch_state import BatchStates
    from ratchet.paths import ProjectPaths
    from ratchet.state_store import export_jsonl

    text = export_jsonl(BatchStates(ProjectPaths.at(project)).events(), output)
    if output is None:
        sys.stdout.write(text)
    else:
        console.print(f"{text.count(chr(10))} event(s) written to {output}")


batch_commands = (validate, retry, drop, ledger)
