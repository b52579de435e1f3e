"""`ratchet deploy` and `ratchet serve` (`make serve`): ratchet's deployments on a Prefect server.

deploy: the process work pools `cpu` and `gpu`, the one-slot global concurrency limit for
training, and the deployments of prefect.yaml, with ratchet-watch's cron taken from params.yaml
(`orchestration.watch_cron`) and every deployment's `project` parameter set to this project.

serve: a local Prefect server on 127.0.0.1 (its database under .ratchet-cache/prefect-server/),
then deploy, then one process worker per pool; runs until Ctrl-C, then stops them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ratchet.config import load_settings
from ratchet.offline import configure_offline
from ratchet.paths import ProjectPaths

POOLS = ("cpu", "gpu")


class ServeError(RuntimeError):
    pass


def _prefect(*args: str, env: dict[str, str], cwd: Path, capture: bool = True) -> str:
    command = [sys.executable, "-m", "prefect", *args]
    done = subprocess.run(command, cwd=cwd, env=env, text=True, capture_output=capture)
    if done.returncode != 0:
        raise ServeError(f"`prefect {' '.join(args)}` failed (exit {done.returncode}):\n"
                         f"{(done.stdout or '')[-2000:]}{(done.stderr or '')[-2000:]}")
    return done.stdout or ""


def environment(api_url: str, project: Path) -> dict[str, str]:
    """What every process of the served stack sees: the API, the project, telemetry off."""
    configure_offline()
    env = dict(os.environ)
    env.update({"PREFECT_API_URL": api_url, "RATCHET_PROJECT_DIR": str(project),
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])})
    return env


def deploy(project: Path, api_url: str) -> list[str]:
    """Work pools, the training limit and every deployment of <project>/prefect.yaml; returns their names."""
    project = project.resolve()
    prefect_file = project / "prefect.yaml"
    if not prefect_file.is_file():
        raise ServeError(f"{prefect_file} not found: copy prefect.yaml from the ratchet repository into the project")
    settings = load_settings(ProjectPaths.at(project).params).orchestration
    env = environment(api_url, project) | {"RATCHET_WATCH_CRON": settings.watch_cron}
    existing = _prefect("work-pool", "ls", env=env, cwd=project)
    for pool in POOLS:
        if f" {pool} " not in existing:
            _prefect("work-pool", "create", pool, "--type", "process", env=env, cwd=project)
    limits = _prefect("global-concurrency-limit", "ls", env=env, cwd=project)
    if settings.training_limit not in limits:
        _prefect("global-concurrency-limit", "create", settings.training_limit, "--limit", "1", env=env, cwd=project)
    _prefect("--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file), env=env, cwd=project)
    return ["ratchet-watch/ratchet-watch", "ratchet-train/ratchet-train", "ratchet-report/ratchet-report"]


def wait_healthy(api_url: str, timeout_s: float = 180.0, server: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise ServeError(f"the Prefect server exited at start (exit {server.returncode})")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise ServeError(f"the Prefect server at {api_url} was not healthy after {timeout_s:.0f}s")


def _default_sigint() -> None:
    """In each child before exec: take SIGINT as Python's KeyboardInterrupt again (see serve)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop(processes: list[subprocess.Popen], grace_s: float = 20.0) -> None:
    # SIGINT, not SIGTERM: a Prefect worker ignored SIGTERM for over a minute (STACK-NOTES).
    # All at once, then one shared grace period; whatever still runs is killed with its children.
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for process in reversed(processes):
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def serve(project: Path, host: str = "127.0.0.1", port: int = 4200, pools: tuple[str, ...] = POOLS,
          ready=print) -> None:
    """Run the whole stack in the foreground until interrupted."""
    project = project.resolve()
    api_url = f"http://{host}:{port}/api"
    home = ProjectPaths.at(project).root / ".ratchet-cache" / "prefect-server"
    home.mkdir(parents=True, exist_ok=True)
    env = environment(api_url, project) | {"PREFECT_HOME": str(home), "PREFECT_SERVER_API_HOST": host,
                                            "PREFECT_SERVER_API_PORT": str(port)}
    processes: list[subprocess.Popen] = []
    logs = home / "logs"
    logs.mkdir(exist_ok=True)

    def start(name: str, *args: str) -> None:
        log_file = (logs / f"{name}.log").open("ab")
        processes.append(subprocess.Popen([sys.executable, "-m", "prefect", *args], cwd=project, env=env,
                                          stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                          preexec_fn=_default_sigint))

    # Started in the background of a non-interactive shell, a process inherits SIGINT ignored:
    # Ctrl-C (or `kill -INT`) and SIGTERM must stop the stack all the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        start("server", "server", "start", "--host", host, "--port", str(port))
        wait_healthy(api_url, server=processes[0])
        deployments = deploy(project, api_url)
        for pool in pools:
            start(f"worker-{pool}", "worker", "start", "--pool", pool, "--name", f"ratchet-{pool}")
        ready(f"ratchet serve: Prefect UI and API at http://{host}:{port} (logs in {logs})\n"
              f"  deployments: {', '.join(deployments)}\n  workers: {', '.join(pools)}\n"
              "  trigger one: prefect deployment run ratchet-watch/ratchet-watch   stop: Ctrl-C")
        while all(p.poll() is None for p in processes):
            time.sleep(1)
        dead = [p.args[3] for p in processes if p.poll() is not None]
        raise ServeError(f"a served process exited ({', '.join(dead)}); see {logs}")
    except KeyboardInterrupt:
        pass
    finally:
        _stop(processes)
