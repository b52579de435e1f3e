"""Where everything stands: the champion and every batch's state, from the ledger and data/champion."""

from __future__ import annotations

from dataclasses import asdict

from ratchet import store
from ratchet.batch_state import BatchStates
from ratchet.batches import scan_incoming
from ratchet.paths import ProjectPaths


def project_status(paths: ProjectPaths) -> dict:
    """The `ratchet status --json` contract: {"champion": {...}|None, "batches": [...]}."""
    manifest = store.champion_manifest(paths)
    champion = None
    if manifest:
        champion = {"version": manifest.version, "run_id": manifest.run_id, "kind": manifest.kind,
                    "base_model": manifest.base_model, "trained_batches": manifest.trained_batches}
    states = BatchStates(paths)
    drift_by_arrival = {e.arrival: e.details["drift"] for e in states.events() if "drift" in e.details}
    batches = []
    for entry in states.current():
        item = asdict(entry)
        drift = drift_by_arrival.get(entry.arrival)
        batches.append({"batch_id": item["batch_id"], "file": item["file"], "state": str(item["state"]),
                        "reason": item["reason"], "metrics": item["metrics"], "arrival": item["arrival"],
                        "at": item["at"], "version": item["details"].get("version"),
                        "drift": {"severity": drift.get("severity"), "report": drift.get("report")} if drift
                        else None})
    ignored = [{"file": e.name, "state": "ignored", "reason": e.reason}
               for e in scan_incoming(paths.incoming).ignored]
    return {"champion": champion, "batches": batches, "ignored": ignored}
