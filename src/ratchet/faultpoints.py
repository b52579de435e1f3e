"""Named points where the fault-injection suite (tests/faults) breaks a real run on purpose.

Off unless RATCHET_FAULT is set (then a no-op costs one environment lookup). The value is
`<point>:<action>`, with action
  kill   SIGKILL to this process's whole process group (the run, its stages, its Prefect server),
  raise  an InjectedFault (an unexpected error: the batch ends `failed`),
  sleep  sleep RATCHET_FAULT_SLEEP_S seconds (default 3600), for a test that kills from outside.
RATCHET_FAULT_BATCH=<batch id> limits the fault to points that concern that batch (points that do
not know their batches fire regardless).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Iterable

log = logging.getLogger("ratchet")

POINTS = ("after_receive", "mid_validation", "after_accept", "during_train", "after_register", "during_promotion",
          "prepare")


class InjectedFault(RuntimeError):
    """Raised at a fault point on purpose (tests only)."""


def reached(point: str, batch_ids: Iterable[str] = ()) -> None:
    wanted = os.environ.get("RATCHET_FAULT")
    if not wanted:
        return
    name, _, action = wanted.partition(":")
    if name != point:
        return
    only, concerned = os.environ.get("RATCHET_FAULT_BATCH"), set(batch_ids)
    if only and concerned and only not in concerned:
        return
    log.warning("fault point %s: %s (RATCHET_FAULT)", point, action or "kill")
    if action == "raise":
        raise InjectedFault(f"fault injected at {point}")
    if action == "sleep":
        time.sleep(float(os.environ.get("RATCHET_FAULT_SLEEP_S", "3600")))
        return
    os.killpg(os.getpgrp(), signal.SIGKILL)
