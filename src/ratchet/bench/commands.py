"""`ratchet bench ...` commands (mounted on the main CLI)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ratchet.bench.stream_kinds import (
    load_any_stream,
    run_any_stream,
    settings_for_stream,
    settings_with_labels,
)

bench_app = typer.Typer(help="Measure ratchet: results go to a JSON file (and docs/benchmarks.md by hand).",
                        no_args_is_help=True)
console = Console()
if not console.is_terminal:  # logs: keep the results table on one line per strategy
    console = Console(width=160)


def _apply_overrides(raw: dict, assignments: list[str]) -> dict:
    """`--set train.epochs=2 model.max_length=64`: dotted keys, YAML values."""
    from ratchet.bench.selection import GridError, apply_assignments

    try:
        return apply_assignments(raw, assignments)
    except GridError as error:
        raise typer.BadParameter(str(error)) from None


STRATEGY_HELP = ("Comma-separated: naive, replay, lwf, ewc, l2sp, er, derpp, default, full, top, joint, "
                 "ncm, tfidf-joint (an entity stream: naive, default, joint). Default: "
                 "naive,er,derpp,ncm,tfidf-joint,default,joint (an entity stream: naive,default,joint).")
TEXT_STRATEGIES = "naive,er,derpp,ncm,tfidf-joint,default,joint"
ENTITY_DEFAULT_STRATEGIES = "naive,default,joint"


@bench_app.command("cl")
def continual_learning(
    stream: Annotated[str, typer.Option(help="Built-in stream(s), comma-separated: bbc-class-incremental, bbc-small-steps, "
                                             "sentiment-domain-incremental, drug-temporal, chat-topics, twitter-ner-incremental "
                                             "(entities, in F1), ...")] = "bbc-class-incremental",
    stream_file: Annotated[Path | None, typer.Option(help="Your own stream YAML (see ratchet.bench.streams).")] = None,
    strategies: Annotated[str | None, typer.Option(help=STRATEGY_HELP)] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated training seeds.")] = "0,1,2",
    device: Annotated[str, typer.Option(help="auto (GPU when there is one), cpu or cuda.")] = "auto",
    out: Annotated[Path, typer.Option(help="Results JSON (heatmap PNGs are written beside it); with several "
                                           "streams, one file per stream: <out stem>.<stream>.json.")]
    = Path("benchmarks/results/cl.json"),
    params: Annotated[Path, typer.Option(help="params.yaml whose model/train/continual settings are the base.")]
    = Path("params.yaml"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a setting, e.g. --set train.epochs=3.")] = None,
    max_train_per_step: Annotated[int | None, typer.Option(help="Cap each step's train rows (stratified) "
                                                               "to fit a time budget; tests stay whole.")] = None,
    train_fraction: Annotated[float, typer.Option(help="Keep this share of each step's train rows "
                                                       "(stratified; step sizes keep their proportions).")] = 1.0,
    select_on: Annotated[str, typer.Option(help="'validation': choose --grid's point on validation slices held "
                                                "out of each step's train rows, then run --strategies on the "
                                                "test splits with it. '' (default): no selection.")] = "",
    grid: Annotated[list[str] | None, typer.Option(help="KEY=V1,V2,...: a grid axis (repeat for more); "
                                                        "every combination is tried; a " + escape("[bracketed,list]") + " is one value.")] = None,
    select_for: Annotated[str, typer.Option(help="The strategy whose settings the grid chooses.")] = "default",
    select_seeds: Annotated[str, typer.Option(help="Seeds of the selection runs.")] = "0",
    validation_fraction: Annotated[float, typer.Option(help="Share of each step's train rows held out as "
                                                            "its validation slice for selection.")] = 0.2,
    max_validation_per_step: Annotated[int | None, typer.Option(
        help="Draw each step's validation slice from its whole train rows, before --max-train-per-step and "
             "--train-fraction thin them, holding at most this many rows (unset: drawn from the thinned rows)."
    )] = None,
    select_only: Annotated[bool, typer.Option(help="Stop after the selection (print what it picked).")] = False,
) -> None:
    """Run whole streams with each strategy and print average accuracy, BWT, ratio to joint, cost."""
    import torch

    from ratchet.bench.cl import ALL_STRATEGIES
    from ratchet.bench.entity_cl import ENTITY_STRATEGIES
    from ratchet.bench.entity_stream import is_entity_stream
    from ratchet.bench.selection import GridError, format_value, parse_grid
    from ratchet.bench.selection_run import ValidationSlices, select_on_validation
    from ratchet.bench.streams import StreamError, resolve_stream_file
    from ratchet.config import ConfigError

    _quiet_bench_logging()
    try:
        files = ([resolve_stream_file(None, str(stream_file))] if stream_file else
                 [resolve_stream_file(name.strip(), None) for name in stream.split(",") if name.strip()])
    except StreamError as error:
        console.print(f"[red]{error}")
        raise typer.Exit(2) from None
    entity = [is_entity_stream(f) for f in files]
    if any(entity) and not all(entity):
        console.print("[red]entity streams (F1) and text streams (accuracy) cannot be selected on or tabled "
                      "together: run them in separate calls")
        raise typer.Exit(2)
    known = list(ENTITY_STRATEGIES) if all(entity) else ALL_STRATEGIES
    strategies = strategies or (ENTITY_DEFAULT_STRATEGIES if all(entity) else TEXT_STRATEGIES)
    chosen = [s.strip() for s in strategies.split(",") if s.strip()]
    unknown = [s for s in [*chosen, select_for] if s not in known]
    if unknown:
        console.print(f"[red]unknown strateg{'y' if len(unknown) == 1 else 'ies'} {unknown}; choose from {known}")
        raise typer.Exit(2)
    if select_on not in ("", "validation"):
        console.print(f"[red]--select-on {select_on!r}: the only choice is 'validation' (settings are never chosen "
                      f"on test splits)")
        raise typer.Exit(2)
    try:
        points = parse_grid(grid or []) if select_on else []
        base = yaml.safe_load(params.read_text(encoding="utf-8")) if params.is_file() else {}
        base = _apply_overrides(base or {}, set_ or [])
        target = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                              ("cpu" if device == "auto" else device))
        overrides = list(set_ or [])
        if select_on:
            slices = ValidationSlices(validation_fraction, train_fraction, max_train_per_step, max_validation_per_step)
            picked = select_on_validation(files, slices, base, points, select_for,
                                          [int(s) for s in select_seeds.split(",") if s.strip()], target, out,
                                          lambda line: console.print(line, markup=False))
            overrides += [f"{k}={format_value(v)}" for k, v in picked.overrides]
            base = picked.applied_to(base)
            if select_only:
                return
        for file in files:
            _run_tables(file, base, chosen, [int(s) for s in seeds.split(",") if s.strip()], target,
                        max_train_per_step, train_fraction, _out_for(out, file, len(files)), overrides,
                        selected=bool(select_on))
    except (StreamError, ConfigError, GridError, ValueError) as error:
        console.print(f"[red]{error}")
        raise typer.Exit(2) from None


def _out_for(out: Path, file: Path, streams: int) -> Path:
    return out if streams == 1 else out.with_name(f"{out.stem}.{file.stem}{out.suffix}")


def _run_tables(file: Path, base: dict, chosen: list[str], seed_list: list[int], target, max_train_per_step,
                train_fraction: float, out: Path, overrides: list[str], selected: bool) -> None:
    from ratchet.bench.entity_cl import entity_markdown_table, write_entity_results
    from ratchet.bench.entity_stream import EntityStream
    from ratchet.bench.results import write_results

    loaded = load_any_stream(file, max_train_per_step, train_fraction)
    entity = isinstance(loaded, EntityStream)
    writer = write_entity_results if entity else write_results
    settings = settings_for_stream(base, loaded, "params.yaml (+ --set)")
    console.print(loaded.describe(), markup=False)
    results, payload = [], None
    for seed in seed_list:
        for strategy in chosen:
            results.append(run_any_stream(loaded, settings, strategy, seed, target))
            # write after every run: a long benchmark that is stopped keeps what it measured
            payload = writer(out, loaded, settings, chosen, results, target,
                             {"seeds": seed_list, "max_train_per_step": max_train_per_step,
                              "train_fraction": train_fraction, "overrides": overrides,
                              "selected_on_validation": selected})
    if payload is None:
        return
    table = entity_markdown_table(payload) if entity else markdown_table(payload)
    if entity:
        console.print(table, markup=False)
    else:
        _print_table(payload)
    markdown = out.with_suffix(".md")
    markdown.write_text(table, encoding="utf-8")
    console.print(f"results: {out} (table for docs/benchmarks.md: {markdown})")


def markdown_table(payload: dict) -> str:
    """The summary as a markdown table, with the command's settings, for docs/benchmarks.md."""
    from ratchet.bench.results import table_caption

    lines = [table_caption(payload), "",
             "| strategy | average accuracy | BWT | FWT | ratio to joint | newest step | vs joint | examples processed | vs joint | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for strategy, row in payload["summary"].items():
        ratio, versus = row["ratio_to_joint"], row["examples_vs_joint"]
        lines.append(f"| {strategy} | {row['average_accuracy']['mean']:.3f} ± {row['average_accuracy']['std']:.3f} | "
                     f"{row['bwt']['mean']:+.3f} ± {row['bwt']['std']:.3f} | {_fwt(row)} | "
                     f"{'-' if ratio is None else f'{ratio:.3f}'} | {_newest(row)} | {row['examples_processed']:.0f} | "
                     f"{'-' if versus is None else f'{versus:.2f}'} | {row['seconds']:.0f} |")
    if payload.get("majority_baseline"):
        majority = payload["majority_baseline"]
        lines += ["", f"Always answering the majority label `{majority['label']}`: average accuracy "
                      f"{majority['average_accuracy']:.3f}."]
    return "\n".join(lines) + "\n"


def _fwt(row: dict) -> str:
    return "-" if row.get("fwt") is None else f"{row['fwt']['mean']:+.3f}"


def _newest(row: dict) -> str:
    """The newest step's accuracy after its own step, and its ratio to joint's."""
    newest, versus = row.get("newest_step_accuracy"), row.get("newest_vs_joint")
    if newest is None:
        return "- | -"
    return f"{newest['mean']:.3f} | {'-' if versus is None else f'{versus:.2f}'}"


def _print_table(payload: dict) -> None:
    table = Table(title=f"{payload['stream']} on {payload['environment']['device']}")
    for column in ("strategy", "avg accuracy", "BWT", "FWT", "ratio to joint", "newest step", "vs joint",
                   "examples", "vs joint", "wall s"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for strategy, row in payload["summary"].items():
        ratio = row["ratio_to_joint"]
        versus = row["examples_vs_joint"]
        table.add_row(strategy, f"{row['average_accuracy']['mean']:.3f} ± {row['average_accuracy']['std']:.3f}",
                      f"{row['bwt']['mean']:+.3f}", _fwt(row),
                      f"{ratio:.3f}" if ratio is not None else "-", *_newest(row).split(" | "),
                      f"{row['examples_processed']:.0f}",
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


@bench_app.command("pool")
def pool_selection(
    records: Annotated[list[Path], typer.Argument(help="Selection records (<out>.selection.json) of one question, "
                                                       "e.g. one per seed, or the challenger's beside the incumbent's.")],
    params: Annotated[Path, typer.Option(help="The settings the points are named against: a point that changes "
                                              "nothing in them is the incumbent.")] = Path("params.yaml"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a setting, as for bench cl.")] = None,
    point: Annotated[list[str] | None, typer.Option(
        "--point", help="Pool only this point and the incumbent: what it changes, e.g. --point "
                        "'continual.replay.ratio=0.2 continual.replay.min_per_old_class=28' (repeat for more).")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the pooled record (JSON) here.")] = None,
) -> None:
    """Answer one selection question from several commands' records, by the rule one command applies."""
    import json

    from ratchet.bench.selection import (
        GridError,
        named_against,
        parse_assignment,
        parse_value,
    )
    from ratchet.bench.selection_pool import describe, pool_records, pooled_record

    try:
        base = yaml.safe_load(params.read_text(encoding="utf-8")) if params.is_file() else {}
        base = _apply_overrides(base or {}, set_ or [])
        only = None
        if point:
            only = [named_against({key: parse_value(value, "--point") for key, value in
                                   (parse_assignment(part, "--point") for part in spec.split())}, base)
                    for spec in point]
        pooled = pool_records(records, base, only)
    except GridError as error:
        console.print(escape(str(error)), style="red")
        raise typer.Exit(2) from None
    for line in describe(pooled):
        console.print(line, markup=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(pooled_record(pooled, records, base), indent=2) + "\n", encoding="utf-8")
        console.print(f"pooled record: {out}", markup=False)


@bench_app.command("train-speed")
def training_speed(
    steps: Annotated[int, typer.Option(help="Timed optimisation steps (after one warm-up step).")] = 10,
    device: Annotated[str, typer.Option(help="auto (GPU when there is one), cpu or cuda.")] = "auto",
    params: Annotated[Path, typer.Option(help="params.yaml whose model/train settings are used.")]
    = Path("params.yaml"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override, e.g. --set model.max_length=256.")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON line here.")] = None,
) -> None:
    """Examples/s of ratchet's training loop on plain_loop.py's input: divide by its figure."""
    import json

    import torch

    from ratchet.bench.speed import LABELS, train_speed
    from ratchet.config import ConfigError

    _quiet_bench_logging()
    logging.getLogger("ratchet").setLevel(logging.WARNING)
    base = yaml.safe_load(params.read_text(encoding="utf-8")) if params.is_file() else {}
    try:
        settings = settings_with_labels(_apply_overrides(base or {}, set_ or []), LABELS, "params.yaml (+ --set)")
    except ConfigError as error:
        console.print(f"[red]{error}")
        raise typer.Exit(2) from None
    target = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                          ("cpu" if device == "auto" else device))
    result = train_speed(settings, steps, target)
    line = json.dumps(result)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(line + "\n", encoding="utf-8")
    print(line)


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
