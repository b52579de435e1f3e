"""A batch's outcome as markdown, for people: the Prefect artifact of each batch (and anything else)."""

from __future__ import annotations

from ratchet.batches import Ledger
from ratchet.paths import ProjectPaths


def batch_markdown(paths: ProjectPaths, arrival: int) -> str:
    """State, reason, drift and gate of one arrival; failing gate checks first."""
    entries = [e for e in Ledger(paths.ledger).current() if e.arrival == arrival]
    if not entries:
        return f"No ledger entry for arrival {arrival}."
    entry = entries[0]
    lines = [f"# {entry.file}: **{entry.state}**", "", f"- batch id: `{entry.batch_id}`",
             f"- reason: {entry.reason or '-'}"]
    drift = entry.details.get("drift")
    if drift:
        severity = drift.get("severity", "medium" if drift["drifted"] else "none")
        lines.append(f"- drift verdict: **{severity}** ({drift['reason']})")
        report = paths.drift_reports / f"{entry.batch_id}.html"
        if report.exists():
            lines.append(f"- drift report: `{report}`")
    if entry.state == "quarantined":
        lines.append(f"- quarantine: `{paths.quarantine / entry.batch_id}` (reason.json, ge_result.json)")
    if entry.details.get("version"):
        lines.append(f"- model version: v{entry.details['version']} (MLflow run `{entry.details.get('run_id')}`)")
    checks = entry.details.get("gate_checks")
    if checks:
        lines += ["", "| check | split | value | threshold | p-value | passed | reason |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c['name']} | {c['split']} | {c['value']:.4f} | {c['threshold']:.4f} | "
                  f"{'-' if c.get('p_value') is None else format(c['p_value'], '.3g')} | "
                  f"{'yes' if c['passed'] else '**no**'} | {c['reason']} |"
                  for c in sorted(checks, key=lambda c: c["passed"])]
    return "\n".join(lines) + "\n"
