"""Where everything stands: the champion and every batch's state, from the ledger and data/champion."""

from __future__ import annotations

from dataclasses import asdict

from ratchet import store
from ratchet.batches import Ledger
from ratchet.paths import ProjectPaths


def project_status(paths: ProjectPaths) -> dict:
    """The `ratchet status --json` contract: {"champion": {...}|None, "batches": [...]}."""
    manifest = store.champion_manifest(paths)
    champion = None
    if manifest:
        champion = {"version": manifest.get("version"), "run_id": manifest.get("run_id"),
                    "kind": manifest.get("kind"), "base_model": manifest.get("base_model"),
                    "trained_batches": manifest.get("trained_batches", [])}
    ledger = Ledger(paths.ledger)
    drift_by_arrival = {e.arrival: e.details["drift"] for e in ledger.entries() if "drift" in e.details}
    batches = []
    for entry in ledger.current():
        item = asdict(entry)
        drift = drift_by_arrival.get(entry.arrival)
        batches.append({"batch_id": item["batch_id"], "file": item["file"], "state": item["state"],
                        "reason": item["reason"], "metrics": item["metrics"], "arrival": item["arrival"],
                        "at": item["at"], "version": item["details"].get("version"),
                        "drift": {"severity": drift.get("severity"), "report": drift.get("report")} if drift
                        else None})
    return {"champion": champion, "batches": batches}
