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
    def load(cls, root: str | Path) -> "Project":
        """The project at `root`, its params.yaml read and validated (ConfigError names a bad key)."""
        paths = ProjectPaths.at(root)
        return cls(paths, load_settings(paths.params))

    @property
    def root(self) -> str:
        return str(self.paths.root)
