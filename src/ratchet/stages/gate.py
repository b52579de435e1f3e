"""Stage gate: decide promotion from metrics/eval.json. Exits 0 either way; `passed` says which."""

from __future__ import annotations

import logging

from ratchet import records
from ratchet.gate import decide
from ratchet.stages._common import start

log = logging.getLogger("ratchet")


def main() -> None:
    paths, settings = start("gate")
    decision = decide(records.read(paths.eval_metrics, records.EvalReport), settings.gate)
    records.write(paths.gate_result, decision)
    log.info("gate: %s — %s", "passed" if decision.passed else "rejected", decision.summary)


if __name__ == "__main__":
    main()
