"""Pictures for reviewers: the accuracy matrix as a heatmap PNG (matplotlib, headless)."""

from __future__ import annotations

import io
from pathlib import Path

from ratchet import atomic


def accuracy_heatmap(rows: list[str], tasks: list[str], matrix: list[dict[str, float]], title: str,
                     path: Path) -> None:
    """R[i][j] with one row per step (model) and one column per task; blank where not measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.array([[row.get(task, np.nan) for task in tasks] for row in matrix], dtype=float)
    figure, axes = plt.subplots(figsize=(1.2 + 1.1 * len(tasks), 1.0 + 0.5 * len(rows)))
    image = axes.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(tasks)), labels=tasks, rotation=30, ha="right")
    axes.set_yticks(range(len(rows)), labels=rows)
    axes.set_xlabel("evaluated on (task / eval split)")
    axes.set_ylabel("after step (model)")
    axes.set_title(title)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if not np.isnan(values[i, j]):
                axes.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center",
                          color="white" if values[i, j] < 0.6 else "black", fontsize=8)
    figure.colorbar(image, ax=axes, label="accuracy")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, buffer.getvalue())
