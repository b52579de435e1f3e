"""The one DVC wrapper: `dvc add data`, `dvc repro`, and md5s of tracked data.

`dvc repro` (and status, push) runs DVC's CLI as a subprocess of the same Python, with that
Python's bin folder first on PATH, so the stages' `python -m ratchet.stages...` find ratchet even
when no virtualenv is activated; `init`, `add` and the config edits use DVC's API in-process.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import yaml

log = logging.getLogger("ratchet")


ERROR_TAIL_LINES = 25


class DvcError(RuntimeError):
    pass


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("DVC_NO_ANALYTICS", "1")
    # Fixed BLAS/OpenMP thread counts keep CPU results repeatable when the machine is busy.
    env.setdefault("MKL_DYNAMIC", "FALSE")
    env.setdefault("OMP_DYNAMIC", "FALSE")
    return env


def run_dvc(root: Path, *args: str, capture: bool = False) -> str:
    """Run `dvc ARGS` in `root`. Captured: returns stdout. Otherwise the output is streamed (a
    repro's stages are worth watching) and its last lines are kept for the error, so a failure
    names what failed wherever it is reported (the ledger, reason.json)."""
    command = [sys.executable, "-m", "dvc", *args]
    log.info("dvc %s", " ".join(args))
    if capture:
        completed = subprocess.run(command, cwd=root, env=_environment(), text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        returncode, output, detail = completed.returncode, completed.stdout, (completed.stderr or completed.stdout)
    else:
        tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)
        with subprocess.Popen(command, cwd=root, env=_environment(), text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, bufsize=1) as process:
            for line in process.stdout:
                sys.stdout.write(line)
                tail.append(line)
        returncode, output, detail = process.returncode, "", "".join(tail)
    if returncode != 0:
        detail = detail.strip() or "(dvc printed nothing)"
        raise DvcError(f"`dvc {' '.join(args)}` failed in {root} (exit {returncode}): {detail}")
    return output or ""


def init(root: Path, scm: bool = True) -> None:
    """Initialise DVC in a git repository (`scm` False: in a folder git does not track), with
    analytics and update checks off."""
    from dvc.config import Config   # in-process, as the CLI would: a `dvc` subprocess costs a second of imports
    from dvc.exceptions import DvcException
    from dvc.logger import set_loggers_level
    from dvc.repo import Repo

    log.info("dvc init%s", "" if scm else " --no-scm")
    try:
        with set_loggers_level(logging.CRITICAL):
            Repo.init(str(root), no_scm=not scm).close()
    except DvcException as error:
        raise DvcError(f"`dvc init` failed in {root}: {error}") from error
    with Config(dvc_dir=str(root / ".dvc")).edit("repo") as config:
        config["core"].update({"analytics": False, "check_update": False})


def add(root: Path, target: str = "data") -> str:
    """`dvc add` the folder; returns its new md5 (the version of the data).

    In-process, through the Repo API the CLI itself calls, quiet as `--quiet` makes it: it runs
    twice a batch, and a `dvc` subprocess costs a second and a half of imports. DVC's locks hold
    the same way (the repo lock is released by the OS, its rwlock ignores a dead process's entry)."""
    from dvc.exceptions import DvcException
    from dvc.logger import set_loggers_level
    from dvc.repo import Repo

    log.info("dvc add %s", target)
    try:
        with set_loggers_level(logging.CRITICAL), Repo(str(root)) as repo:
            repo.add(str(Path(repo.root_dir) / target))   # DVC resolves a relative path from the cwd
    except DvcException as error:
        raise DvcError(f"`dvc add {target}` failed in {root}: {error}") from error
    return tracked_md5(root, target)


def repro(root: Path) -> None:
    """Run the pipeline; stages whose deps and params did not change are skipped by DVC."""
    run_dvc(root, "repro")


def tracked_md5(root: Path, target: str = "data") -> str:
    dvc_file = root / f"{target}.dvc"
    if not dvc_file.exists():
        raise DvcError(f"{dvc_file} is missing: run `dvc add {target}`")
    outs = yaml.safe_load(dvc_file.read_text(encoding="utf-8")).get("outs") or []
    if not outs or "md5" not in outs[0]:
        raise DvcError(f"{dvc_file} has no md5 for {target}")
    return str(outs[0]["md5"])


def status_clean(root: Path, target: str = "data.dvc") -> bool:
    out = run_dvc(root, "status", "--json", target, capture=True)
    return out.strip() in ("{}", "")


def file_md5(path: Path) -> str:
    """The md5 DVC records for a file (DVC 3 hashes file bytes), used as the dataset digest."""
    import hashlib

    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def default_remote(root: Path) -> str | None:
    """The name of the project's default DVC remote (`dvc remote add -d`), or None. Read with DVC's
    own config loader (every level: system, global, .dvc/config, .dvc/config.local), in-process:
    it is asked twice a batch, and a `dvc config` subprocess costs a second of imports each time."""
    from dvc.config import Config, ConfigError

    try:
        name = Config(dvc_dir=str(root / ".dvc"))["core"].get("remote")
    except ConfigError as error:
        raise DvcError(f"{root / '.dvc' / 'config'}: {error}") from error
    return name or None


def push(root: Path, target: str = "data") -> bool:
    """`dvc push` the tracked data to the default remote; False (nothing done) without one."""
    remote = default_remote(root)
    if remote is None:
        return False
    run_dvc(root, "push", "--quiet", target, capture=True)
    log.info("dvc: pushed %s to remote %s", target, remote)
    return True
