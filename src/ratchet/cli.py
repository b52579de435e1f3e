"""`ratchet ...`: the command line. Thin: each command calls into ratchet (and, lazily, flows/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ratchet.batch_commands import batch_commands
from ratchet.bench.commands import bench_app
from ratchet.cli_support import (
    ProjectOption,
    console,
    load_project_or_exit,
    print_status,
    run_watch,
)
from ratchet.cli_support import setup as _setup
from ratchet.demo_command import demo
from ratchet.offline import configure_offline
from ratchet.paths import ProjectPaths
from ratchet.predict_command import predict

app = typer.Typer(help="Keep a text classifier learning from new labeled batches without forgetting.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(bench_app, name="bench")
app.command()(predict)
app.command()(demo)
for command in batch_commands:
    app.command()(command)


@app.command()
def run(project: ProjectOption = Path(".")) -> None:
    """Process every file waiting in incoming/ (the ratchet-watch flow, on Prefect's embedded API)."""
    _setup()
    from ratchet.batch_state import LedgerError
    from ratchet.errors import is_transient

    paths = ProjectPaths.at(project)
    load_project_or_exit(paths.root)   # a bad params.yaml: one clear error, nothing touched
    try:
        run_watch(paths)
    except LedgerError as error:
        console.print(f"[red]error:[/] the state store holds a row ratchet cannot read; nothing was processed: {error}")
        raise typer.Exit(2) from None
    except Exception as error:
        if not is_transient(error):
            raise
        console.print(f"[red]error:[/] {type(error).__name__}: {error}\nNot the batch's fault: it stays where it "
                      "is and the next `ratchet run` resumes it.")
        raise typer.Exit(1) from None
    print_status(paths)


@app.command()
def serve(project: ProjectOption = Path("."),
          host: Annotated[str, typer.Option(help="Address the Prefect server listens on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port of the Prefect server.")] = 4200,
          pools: Annotated[str, typer.Option(help="Work pools to start a worker for, comma-separated.")] = "cpu,gpu",
          ) -> None:
    """A local Prefect server, the cpu/gpu work pools, the deployments and their workers (Ctrl-C stops)."""
    _setup()
    from flows.serve import ServeError
    from flows.serve import serve as serve_stack

    try:
        serve_stack(project, host, port, tuple(p for p in pools.split(",") if p), ready=console.print)
    except ServeError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None


@app.command()
def deploy(project: ProjectOption = Path("."),
           api_url: Annotated[str, typer.Option(envvar="PREFECT_API_URL", help="The Prefect API to deploy to.")] = "",
           ) -> None:
    """Create the work pools, the training limit and prefect.yaml's deployments on a Prefect server."""
    _setup()
    from flows.serve import ServeError
    from flows.serve import deploy as deploy_all

    if not api_url:
        console.print("[red]error:[/] no Prefect API: set PREFECT_API_URL or pass --api-url "
                      "(`ratchet serve` starts a local server and deploys for you)")
        raise typer.Exit(2)
    try:
        names = deploy_all(project, api_url)
    except ServeError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    console.print("deployed: " + ", ".join(names))


@app.command()
def doctor(project: ProjectOption = Path("."),
           require_gpu: Annotated[bool, typer.Option(help="Fail when torch sees no GPU.")] = False,
           require_api: Annotated[bool, typer.Option(help="Fail when PREFECT_API_URL is unset.")] = False) -> None:
    """Check that this machine can run the project: params, DVC, offline model, GPU, telemetry, Prefect API."""
    configure_offline()
    from ratchet.preflight import run_checks

    checks = run_checks(project, require_gpu, require_api)
    for check in checks:
        console.print(f"{'[green]ok[/]  ' if check.ok else '[red]FAIL[/]'} {check.name}: {check.detail}",
                      highlight=False)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command()
def init(reference: Annotated[Path, typer.Argument(help="Labeled reference file (CSV, Parquet or JSONL; with task "
                                                             "token-classification, CoNLL or JSONL sentences).")],
         project: ProjectOption = Path(".")) -> None:
    """Start a project on your own data: validate the reference set (task 0) and track it in data/."""
    _setup()
    from ratchet import dvc_repo, store
    from ratchet.batches import BatchReadError
    from ratchet.config import ConfigError, load_settings
    from ratchet.intake import accepted_rows, load_batch, run_suite

    paths = ProjectPaths.at(project)
    try:
        if store.read_catalog(paths):
            raise store.CatalogError(f"{paths.catalog} exists: this project has its reference set already")
        settings = load_settings(paths.params)
        batch_id, frame = load_batch(reference, settings)
    except (BatchReadError, ConfigError, store.CatalogError, FileNotFoundError) as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    result = run_suite(frame, settings)
    if not result.passed:
        console.print(f"[red]{reference.name} is not a valid reference set:[/] {result.summary()}")
        raise typer.Exit(2)
    if not (paths.root / ".dvc").is_dir():
        dvc_repo.init(paths.root)
    store.create_reference(paths, accepted_rows(frame, settings), source=reference.name,
                           eval_fraction=settings.data.eval_fraction)
    md5 = dvc_repo.add(paths.root)
    console.print(f"reference set {reference.name}: {len(frame)} rows ({batch_id}), data/ md5 {md5}.\n"
                  "Commit data.dvc, drop labeled batches into incoming/ and run `ratchet run`.")


@app.command()
def status(project: ProjectOption = Path("."),
           as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """The champion version and every batch with its state, reason and key metrics."""
    from ratchet.batch_state import LedgerError

    paths = ProjectPaths.at(project)
    try:
        _status(paths, as_json)
    except LedgerError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None


def _status(paths: ProjectPaths, as_json: bool) -> None:
    if as_json:
        from ratchet.status import project_status

        json.dump(project_status(paths), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    print_status(paths)


@app.command()
def history(project: ProjectOption = Path("."),
            as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Every move of the `champion` and `previous` aliases: when, from which version to which, why, by whom."""
    _setup()
    from dataclasses import asdict

    from ratchet import registry
    from ratchet.config import load_settings

    paths = ProjectPaths.at(project)
    events = registry.alias_history(paths, load_settings(paths.params))
    if as_json:
        json.dump([asdict(e) for e in events], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    table = Table("when", "alias", "from", "to", "by", "why", show_lines=True)
    for event in events:
        table.add_row(event.at, event.alias, f"v{event.from_version}" if event.from_version else "-",
                      f"v{event.to_version}", event.actor, event.reason)
    console.print(table if events else "no alias has been set yet")


@app.command()
def rollback(reason: Annotated[str, typer.Option("--reason", help="Why: kept in the alias history.")],
             project: ProjectOption = Path(".")) -> None:
    """Move `champion` back to the `previous` version (and data/champion/ with it), recorded."""
    _setup()
    from ratchet.champion import rollback as roll_back
    from ratchet.project import Project

    try:
        move = roll_back(Project.load(project), reason)
    except RuntimeError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    console.print(f"champion is v{move.to_version} again (was v{move.from_version}); "
                  f"batches no longer in the champion: {', '.join(move.batches_undone) or 'none'}")


@app.command()
def promote(version: Annotated[str, typer.Argument(help="Registered model version to make champion, e.g. 5.")],
            reason: Annotated[str, typer.Option("--reason", help="Why: kept in the alias history.")],
            force: Annotated[bool, typer.Option("--force", help="Promote even if the gate fails (recorded).")] = False,
            project: ProjectOption = Path(".")) -> None:
    """Make a registered version the champion: gated against the current one unless --force."""
    _setup()
    from ratchet.champion import PromotionRefused, promote_version
    from ratchet.locking import LockTimeout
    from ratchet.project import Project
    from ratchet.registry import ChampionMoved

    try:
        move = promote_version(Project.load(project), version, reason, force=force)
    except PromotionRefused as refused:
        console.print(f"[red]refused:[/] v{version} fails the gate against the champion:")
        for check in refused.gate.failing():
            console.print(f"  - {check.reason}")
        console.print("nothing changed; `--force` promotes anyway and records that it was forced")
        raise typer.Exit(3) from None
    except (RuntimeError, LockTimeout, ChampionMoved) as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    forced = " [yellow](forced past the gate)[/]" if move.forced else ""
    console.print(f"champion is v{move.to_version} (was v{move.from_version}){forced}; "
                  f"batches no longer in the champion: {', '.join(move.batches_undone) or 'none'}")


@app.command()
def lineage(version: Annotated[str, typer.Argument(help="Registered model version, e.g. 4.")],
            project: ProjectOption = Path("."),
            as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """What a version was trained on and how: its chain of parents back to the base model."""
    _setup()
    from ratchet import registry
    from ratchet.config import load_settings

    paths = ProjectPaths.at(project)
    try:
        chain = registry.lineage(paths, load_settings(paths.params), version)
    except LookupError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    if as_json:
        json.dump(chain, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for link in chain:
        aliases = f" [green]@{', @'.join(link['aliases'])}[/]" if link["aliases"] else ""
        console.print(f"[bold]v{link['version']}[/]{aliases}  gate {link.get('gate', '?')}  "
                      f"batches {link.get('batches', '?')}  parent {link.get('parent_version', '?')}")
        console.print(f"    run {link['run_id']}  data md5 {link.get('data_md5', '?')}  "
                      f"git {link.get('git_commit', '?')[:12]}  {link.get('finetune', '?')} on {link.get('base_model', '?')}")
        if link.get("strategy"):
            console.print(f"    strategy {link['strategy']}  (feedback-loop attempt {int(link.get('attempt', 0)) + 1})")
    console.print("    base model" if chain else "")


@app.command()
def drift(files: Annotated[list[Path], typer.Argument(help="Batch files (CSV, Parquet or JSONL) to compare.")],
          project: ProjectOption = Path("."),
          as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Drift report of batch files against the reference, without processing them (for reviewers)."""
    _setup()
    from ratchet.batches import BatchReadError
    from ratchet.intake import drift_report

    loaded = load_project_or_exit(project)
    results = []
    for file in files:
        try:
            result = drift_report(loaded, str(file), validate_first=True)
        except (BatchReadError, OSError) as error:
            console.print(f"[red]error:[/] {file}: {error}")
            raise typer.Exit(2) from None
        results.append({"file": str(file), **result.to_dict()})
        if not as_json:
            style = {"none": "green", "low": "yellow", "medium": "dark_orange", "high": "red"}[result.severity]
            console.print(f"[bold]{file}[/]: [{style}]{result.severity}[/]  report {result.html_path}")
            for reason in result.reasons:
                console.print(f"    {reason}")
    if as_json:
        json.dump(results, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")


if __name__ == "__main__":
    app()
