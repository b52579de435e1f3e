"""What every command shares: the consoles (results on stdout, logs on stderr), the offline and
logging setup, the `--project` option, running the watch flow and printing the status table."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from ratchet.offline import configure_offline
from ratchet.paths import ProjectPaths

console = Console()
if not console.is_terminal:  # logs and CI: do not fold the status table into 80 columns
    console = Console(width=160)
# Log lines go to stderr, so that every `--json` output on stdout is pure JSON.
log_console = Console(stderr=True, width=None if console.is_terminal else 160)
ProjectOption = Annotated[Path, typer.Option("--project", "-p", help="Project folder (holds params.yaml).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

STATE_STYLE = {"promoted": "green", "rejected": "red", "quarantined": "yellow", "accumulated": "cyan",
               "duplicate": "dim", "accepted": "blue", "received": "blue", "failed": "magenta",
               "ignored": "dim"}


def setup(verbose: bool = False) -> None:
    configure_offline()
    # deprecation notices of the pinned libraries (transformers, peft) are not the user's concern
    warnings.filterwarnings("ignore", category=FutureWarning)
    # Prefect's per-task "Finished in state Completed()" lines drown ratchet's own decisions.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=log_console, show_path=False)], force=True)
    logging.getLogger("ratchet").setLevel(logging.INFO)


def load_project_or_exit(project: Path):
    """The project, or exit 2 with the error printed (a bad params.yaml)."""
    from ratchet.config import ConfigError
    from ratchet.project import Project

    try:
        return Project.load(project)
    except ConfigError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None


def run_watch(paths: ProjectPaths) -> None:
    from flows.watch import (
        watch,  # Prefect is imported only for commands that run flows
    )
    from ratchet.locking import run_lock

    # before Prefect starts its embedded server: runs started together queue here, not on the
    # server's database (a fresh one migrated by three servers at once fails)
    with run_lock(paths):
        watch(str(paths.root))


def print_status(paths: ProjectPaths) -> None:
    from ratchet.status import project_status

    status = project_status(paths)
    champion = status["champion"]
    console.print("\n[bold]champion:[/] " + (f"v{champion['version']} ({champion['kind']}, trained on "
                                              f"{', '.join(champion['trained_batches'])})" if champion else "none"))
    table = Table("#", "batch", "file", "state", "drift", "new split", "reason", show_lines=True)
    for batch in status["batches"]:
        accuracy = batch["metrics"].get("new_split_accuracy")
        table.add_row(str(batch["arrival"]), batch["batch_id"], batch["file"],
                      f"[{STATE_STYLE.get(batch['state'], 'white')}]{batch['state']}[/]",
                      (batch["drift"] or {}).get("severity") or "",
                      f"{accuracy:.3f}" if accuracy is not None else "", batch["reason"][:300])
    for entry in status["ignored"]:
        table.add_row("", "", f"incoming/{entry['file']}", f"[{STATE_STYLE['ignored']}]ignored[/]", "", "",
                      entry["reason"])
    console.print(table)
