"""`ratchet doctor`: can this machine run ratchet's work? The runner image's entrypoint asks it
before starting a worker, so a misconfigured container fails at once with the reason, not on the
first batch hours later."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ratchet.offline import OFFLINE_ENVIRONMENT


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def run_checks(project: Path, require_gpu: bool = False, require_api: bool = False) -> list[Check]:
    from ratchet.config import ConfigError, load_settings
    from ratchet.model_files import ModelError, resolve_base_model
    from ratchet.paths import ProjectPaths

    checks: list[Check] = []
    paths = ProjectPaths.at(project)
    try:
        settings = load_settings(paths.params)
        checks.append(Check("params.yaml", True, str(paths.params)))
    except ConfigError as error:
        return [Check("params.yaml", False, str(error))]
    for name in ("dvc.yaml", ".dvc"):
        present = (paths.root / name).exists()
        checks.append(Check(name, present, str(paths.root / name) if present else
                            f"{paths.root / name} missing: mount the project (git checkout + `dvc pull`)"))
    try:
        weights = resolve_base_model(settings.model.base)
        found = any(weights.glob("*.safetensors"))
        checks.append(Check("base model (offline)", found, str(weights) if found else f"no weights in {weights}"))
    except ModelError as error:
        checks.append(Check("base model (offline)", False, str(error)))
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    detail = f"{gpus} CUDA device(s), torch {torch.__version__}" if gpus else f"CPU only, torch {torch.__version__}"
    checks.append(Check("GPU", gpus > 0 or not require_gpu,
                        detail + ("" if gpus or not require_gpu else ": this runner must have a GPU")))
    if settings.train.processes > 1 and gpus and settings.train.processes > gpus:
        checks.append(Check("train.processes", False, f"{settings.train.processes} workers for {gpus} GPU(s)"))
    off = [k for k, v in OFFLINE_ENVIRONMENT.items() if os.environ.get(k) not in (None, v)]
    checks.append(Check("telemetry off", not off, "all switches set" if not off else f"overridden: {', '.join(off)}"))
    api = os.environ.get("PREFECT_API_URL", "")
    checks.append(Check("Prefect API", bool(api) or not require_api,
                        api or ("unset: flows use the embedded API" if not require_api else
                                "PREFECT_API_URL is unset: a worker needs the Prefect server's API")))
    return checks
