"""What every command shares: the consoles (results on stdout, logs on stderr), the offline and
logging setup, and the `--project` option."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from ratchet.offline import configure_offline

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
