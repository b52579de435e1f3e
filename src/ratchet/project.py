"""A project as one flow run sees it: its paths and its settings, read once.

Every step of a batch's life takes a `Project`, so an edit of params.yaml during a run cannot give
two steps of that run different settings; the next run reads the edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ratchet.config import Settings, load_settings
from ratchet.paths import ProjectPaths


@dataclass(frozen=True)
class Project:
    paths: ProjectPaths
    settings: Settings

    @classmethod
    def load(cls, root: str | Path, step: str = "this command", any_task: bool = False) -> "Project":
        """The project at `root`; a step that handles text classification only (`any_task` False)
        refuses a token-classification project with UnsupportedTask rather than misread it."""
        paths = ProjectPaths.at(root)
        settings = load_settings(paths.params)
        if not any_task:
            settings.require_text_classification(step)
        return cls(paths, settings)

    @property
    def root(self) -> str:
        return str(self.paths.root)
