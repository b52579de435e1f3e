"""Named points where the fault-injection suite (tests/faults) breaks a real run on purpose.

Off unless RATCHET_FAULT is set (then a no-op costs one environment lookup). The value is
`<point>:<action>`, with action
  kill    SIGKILL to this process's whole process group (the run, its stages, its Prefect server),
  raise   an InjectedFault (an unexpected error: the batch ends `failed`),
  enospc  an OSError(ENOSPC), as a full disk gives (the point `write:<file name>` is every atomic
          write of that file, ratchet.atomic),
  sleep   sleep RATCHET_FAULT_SLEEP_S seconds (default 3600), for a test that acts from outside.
RATCHET_FAULT_TIMES=<n> fires it n times in a process, then no more. RATCHET_FAULT_REACHED=<file>:
the point's name is written there when it fires (a test waits for it before acting from outside).
RATCHET_FAULT_BATCH=<batch id> limits the fault to points that concern that batch (points that do
not know their batches fire regardless).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
from typing import Iterable

log = logging.getLogger("ratchet")

POINTS = ("after_receive", "mid_validation", "after_accept", "prepare", "during_train", "before_register",
          "after_register", "during_promotion", "write:<file name>")
_fired: dict[str, int] = {}


class InjectedFault(RuntimeError):
    """Raised at a fault point on purpose (tests only)."""


def reached(point: str, batch_ids: Iterable[str] = ()) -> None:
    wanted = os.environ.get("RATCHET_FAULT")
    if not wanted:
        return
    name, _, action = wanted.rpartition(":") if ":" in wanted else (wanted, "", "kill")
    if name != point:
        return
    only, concerned = os.environ.get("RATCHET_FAULT_BATCH"), set(batch_ids)
    if only and concerned and only not in concerned:
        return
    times = int(os.environ.get("RATCHET_FAULT_TIMES", "0") or 0)
    if times and _fired.get(point, 0) >= times:
        return
    _fired[point] = _fired.get(point, 0) + 1
    log.warning("fault point %s: %s (RATCHET_FAULT)", point, action)
    if os.environ.get("RATCHET_FAULT_REACHED"):
        with open(os.environ["RATCHET_FAULT_REACHED"], "w", encoding="utf-8") as handle:
            handle.write(point)
    if action == "raise":
        raise InjectedFault(f"fault injected at {point}")
    if action == "enospc":
        raise OSError(errno.ENOSPC, "No space left on device (injected)", point.removeprefix("write:"))
    if action == "sleep":
        time.sleep(float(os.environ.get("RATCHET_FAULT_SLEEP_S", "3600")))
        return
    os.killpg(os.getpgrp(), signal.SIGKILL)
