"""`ratchet bench ...` commands (mounted on the main CLI)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

bench_app = typer.Typer(help="Measure ratchet: results go to a JSON file (and docs/benchmarks.md by hand).",
                        no_args_is_help=True)
console = Console()
if not console.is_terminal:  # logs: keep the results table on one line per strategy
    console = Console(width=160)


def _apply_overrides(raw: dict, assignments: list[str]) -> dict:
    """`--set train.epochs=2 model.max_length=64`: dotted keys, YAML values."""
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.epochs=2")
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return raw


@bench_app.command("cl")
def continual_learning(
    stream: Annotated[str, typer.Option(help="Built-in stream: bbc-class-incremental, "
                                             "sentiment-domain-incremental, drug-temporal.")] = "bbc-class-incremental",
    stream_file: Annotated[Path | None, typer.Option(help="Your own stream YAML (see ratchet.bench.streams).")] = None,
    strategies: Annotated[str, typer.Option(help="Comma-separated: naive,replay,lwf,ewc,l2sp,default,full,top,joint.")]
    = "naive,replay,lwf,default,joint",
    seeds: Annotated[str, typer.Option(help="Comma-separated training seeds.")] = "0,1,2",
    device: Annotated[str, typer.Option(help="auto (GPU when there is one), cpu or cuda.")] = "auto",
    out: Annotated[Path, typer.Option(help="Results JSON (heatmap PNGs are written beside it).")]
    = Path("benchmarks/results/cl.json"),
    params: Annotated[Path, typer.Option(help="params.yaml whose model/train/continual settings are the base.")]
    = Path("params.yaml"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a setting, e.g. --set train.epochs=3.")] = None,
    max_train_per_step: Annotated[int | None, typer.Option(help="Cap each step's train rows (stratified) "
                                                               "to fit a time budget; tests stay whole.")] = None,
    train_fraction: Annotated[float, typer.Option(help="Keep this share of each step's train rows "
                                                       "(stratified; step sizes keep their proportions).")] = 1.0,
) -> None:
    """Run whole streams with each strategy and print average accuracy, BWT, ratio to joint, cost."""
    import torch

    from ratchet.bench.cl import run_stream, write_results
    from ratchet.bench.streams import StreamError, load_stream, resolve_stream_file
    from ratchet.config import ConfigError, parse_settings
    from ratchet.offline import configure_offline

    configure_offline()
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", force=True)
    logging.getLogger("ratchet").setLevel(logging.INFO)
    try:
        file = resolve_stream_file(None if stream_file else stream, str(stream_file) if stream_file else None)
        loaded = load_stream(file, max_train_per_step, train_fraction)
        raw = yaml.safe_load(params.read_text(encoding="utf-8")) if params.is_file() else {}
        raw = _apply_overrides(raw or {}, set_ or [])
        raw.setdefault("data", {})["labels"] = loaded.labels   # the stream's classes, not the project's
        settings = parse_settings(raw, source=f"{params} (+ --set)")
    except (StreamError, ConfigError) as error:
        console.print(f"[red]{error}")
        raise typer.Exit(2) from None
    chosen = [s.strip() for s in strategies.split(",") if s.strip()]
    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    target = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                          ("cpu" if device == "auto" else device))
    console.print(loaded.describe())
    results = []
    for seed in seed_list:
        for strategy in chosen:
            results.append(run_stream(loaded, settings, strategy, seed, target))
            # write after every run: a long benchmark that is stopped keeps what it measured
            payload = write_results(out, loaded, settings, chosen, results, target,
                                    {"seeds": seed_list, "max_train_per_step": max_train_per_step,
                                     "train_fraction": train_fraction,
                                     "overrides": set_ or []})
    _print_table(payload)
    markdown = out.with_suffix(".md")
    markdown.write_text(markdown_table(payload), encoding="utf-8")
    console.print(f"results: {out} (table for docs/benchmarks.md: {markdown})")


def markdown_table(payload: dict) -> str:
    """The summary as a markdown table, with the command's settings, for docs/benchmarks.md."""
    env = payload["environment"]
    seeds = sorted({run["seed"] for run in payload["runs"]})
    lines = [f"`{payload['stream']}`, seeds {seeds}, {env['device']}"
             f"{' (' + env['gpu'] + ')' if env.get('gpu') else ''}, {env['date']}, "
             f"train fraction {payload['options'].get('train_fraction', 1.0)}, "
             f"overrides {payload['options']['overrides'] or 'none'}", "",
             "| strategy | average accuracy | BWT | FWT | ratio to joint | examples processed | vs joint | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for strategy, row in payload["summary"].items():
        ratio, versus = row["ratio_to_joint"], row["examples_vs_joint"]
        lines.append(f"| {strategy} | {row['average_accuracy']['mean']:.3f} ± {row['average_accuracy']['std']:.3f} | "
                     f"{row['bwt']['mean']:+.3f} ± {row['bwt']['std']:.3f} | {row['fwt']['mean']:+.3f} | "
                     f"{'-' if ratio is None else f'{ratio:.3f}'} | {row['examples_processed']:.0f} | "
                     f"{'-' if versus is None else f'{versus:.2f}'} | {row['seconds']:.0f} |")
    if payload.get("majority_baseline"):
        majority = payload["majority_baseline"]
        lines += ["", f"Always answering the majority label `{majority['label']}`: average accuracy "
                      f"{majority['average_accuracy']:.3f}."]
    return "\n".join(lines) + "\n"


def _print_table(payload: dict) -> None:
    table = Table(title=f"{payload['stream']} on {payload['environment']['device']}")
    for column in ("strategy", "avg accuracy", "BWT", "FWT", "ratio to joint", "examples", "vs joint", "wall s"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for strategy, row in payload["summary"].items():
        ratio = row["ratio_to_joint"]
        versus = row["examples_vs_joint"]
        table.add_row(strategy, f"{row['average_accuracy']['mean']:.3f} ± {row['average_accuracy']['std']:.3f}",
                      f"{row['bwt']['mean']:+.3f}", f"{row['fwt']['mean']:+.3f}",
                      f"{ratio:.3f}" if ratio is not None else "-", f"{row['examples_processed']:.0f}",
                      f"{versus:.2f}" if versus is not None else "-", f"{row['seconds']:.0f}")
    console.print(table)


def _drift_settings(params: Path, assignments: list[str]):
    from ratchet.config import DriftSettings

    raw = yaml.safe_load(params.read_text(encoding="utf-8")) if params.is_file() else {}
    raw = _apply_overrides(raw or {}, assignments)
    return DriftSettings(**(raw.get("drift") or {}))


def _quiet_bench_logging() -> None:
    """Offline switches, no library warnings, ratchet's own progress lines with timestamps."""
    from ratchet.offline import configure_offline

    configure_offline()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", force=True)
    logging.getLogger("ratchet").setLevel(logging.INFO)


def _machine() -> dict:
    import datetime
    import os
    import platform

    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}


DriftParamsOption = Annotated[Path, typer.Option(help="params.yaml whose `drift` settings are used.")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="Override, e.g. --set drift.calibration_draws=60.")]


@bench_app.command("drift")
def drift_detection(
    sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "50,100,200,500",
    trials: Annotated[int, typer.Option(help="Batches drawn per case and size.")] = 20,
    out: Annotated[Path, typer.Option(help="Results JSON (a markdown table is written beside it).")]
    = Path("benchmarks/results/drift.json"),
    params: DriftParamsOption = Path("params.yaml"),
    set_: SetOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the reference split and the draws.")] = 0,
    references: Annotated[str, typer.Option(help="Comma-separated: topics, sentiment, sentiment-large.")]
    = "topics,sentiment,sentiment-large",
) -> None:
    """Detection and false-alarm rates of Evidently's default text drift and ratchet's verdict."""
    import json

    from ratchet.bench.drift import markdown_table, run_bench

    _quiet_bench_logging()
    settings = _drift_settings(params, set_ or [])
    try:
        results = run_bench([int(s) for s in sizes.split(",") if s.strip()], trials, settings, seed,
                            [r.strip() for r in references.split(",") if r.strip()])
    except ValueError as error:
        console.print(f"[red]{error}")
        raise typer.Exit(2) from None
    results["environment"] = _machine()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    table = markdown_table(results)
    out.with_suffix(".md").write_text(
        f"{trials} batches per cell, {results['environment']['date']}, {results['environment']['cpus']} CPUs, "
        f"{results['seconds']:.0f} s\n\n{table}\n", encoding="utf-8")
    console.print(table)
    console.print(f"results: {out} (table: {out.with_suffix('.md')})")


@bench_app.command("drift-speed")
def drift_speed(
    rows: Annotated[int, typer.Option(help="Batch rows, and as many reference rows.")] = 10_000,
    out: Annotated[Path, typer.Option(help="Results JSON (the reports it writes go to a temporary folder).")]
    = Path("benchmarks/results/drift-speed.json"),
    params: DriftParamsOption = Path("params.yaml"),
    set_: SetOption = None,
) -> None:
    """Seconds of the drift step on a big batch, the model's inference left out (cold, then cached)."""
    import json

    import tempfile

    from ratchet.bench.drift import speed

    _quiet_bench_logging()

    reports = Path(tempfile.mkdtemp(prefix="ratchet-drift-speed-"))
    result = speed(rows, _drift_settings(params, set_ or []), reports)
    result["environment"] = _machine()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    for run, seconds in result["seconds"].items():
        console.print(f"{run}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    console.print(f"results: {out} (reports: {reports})")
