"""Stage gate: decide promotion from metrics/eval.json. Exits 0 either way; `passed` says which."""

from __future__ import annotations

import logging

from ratchet import atomic
from ratchet.gate import decide
from ratchet.stages._common import start

log = logging.getLogger("ratchet")


def main() -> None:
    paths, settings = start("gate")
    result = decide(atomic.read_json(paths.eval_metrics), settings.gate)
    atomic.write_json(paths.gate_result, result.to_dict())
    log.info("gate: %s — %s", "passed" if result.passed else "rejected", result.summary())


if __name__ == "__main__":
    main()
