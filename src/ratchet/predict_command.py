"""`ratchet predict`: the champion's answer for texts typed on the command line: a label with its
class probabilities, or, in a token-classification project, the entity spans with types and scores."""

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
from ratchet.paths import ProjectPaths


def predict(texts: Annotated[list[str], typer.Argument(help="One or more texts to classify (or to tag, in an "
                                                               "entity project).")],
            project: ProjectOption = Path("."), as_json: JsonOption = False,
            task: Annotated[str | None, typer.Option(help="text or ner: what you expect the project to do "
                                                          "(default: params.yaml's task; a mismatch is an error).")]
            = None) -> None:
    """Classify texts with the champion in data/champion (offline), with its class probabilities;
    in a token-classification project, the entity spans it finds, with their types and scores."""
    setup()
    from ratchet import store

    paths = ProjectPaths.at(project)
    settings = load_project_or_exit(paths.root).settings
    expected = {"text": "text-classification", "ner": "token-classification"}
    if task is not None and expected.get(task) != settings.task:
        console.print(f"[red]error:[/] --task {task}, but params.yaml in {paths.root} sets task: {settings.task}"
                      + ("" if task in expected else " (--task is text or ner)"))
        raise typer.Exit(2)
    manifest = store.champion_manifest(paths)
    if manifest is None:
        console.print("[red]no champion yet[/]: run `ratchet demo` or `ratchet run` first")
        raise typer.Exit(2)
    if manifest.task != settings.task:
        console.print(f"[red]error:[/] params.yaml sets task: {settings.task}, but the champion in "
                      f"{paths.champion} is a {manifest.task} model")
        raise typer.Exit(2)
    entities = settings.task == "token-classification"
    results = (_predict_entities if entities else _predict_labels)(paths, settings, texts)
    if as_json:
        json.dump([{**r, "champion": manifest.version} for r in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for r in results:
        if entities:
            found = ", ".join(f"[bold]{e['text']}[/] {e['type']} ({e['score']:.2f})" for e in r["entities"]) or "no entities"
            console.print(f"{found}  <- {r['text'][:80]!r}  [dim]champion v{manifest.version}[/]")
        else:
            ranked = sorted(r["probabilities"].items(), key=lambda item: -item[1])
            console.print(f"[bold]{ranked[0][0]}[/] ({ranked[0][1]:.2f})  "
                          + ", ".join(f"{label} {p:.2f}" for label, p in ranked[1:3])
                          + f"  <- {r['text'][:80]!r}  [dim]champion v{manifest.version}[/]")


def _predict_labels(paths: ProjectPaths, settings, texts: list[str]) -> list[dict]:
    from ratchet import modeling

    classifier = modeling.load_classifier(paths.champion, settings.model)
    return [{"text": text, "label": classifier.labels[int(row.argmax())],
             "probabilities": {label: round(float(p), 6) for label, p in zip(classifier.labels, row)}}
            for text, row in zip(texts, classifier.predict_proba(texts))]


def _predict_entities(paths: ProjectPaths, settings, texts: list[str]) -> list[dict]:
    from ratchet.entities.tagger import load_tagger, split_words

    tagger = load_tagger(paths.champion, settings.model)
    words = [split_words(text) for text in texts]
    return [{"text": text, "words": tokens,
             "entities": [s.as_record() for s in found]}
            for text, tokens, found in zip(texts, words, tagger.extract(words))]
