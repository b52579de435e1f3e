"""A batch's outcome as markdown, for people: the Prefect artifact of each batch (and anything else)."""

from __future__ import annotations

from ratchet import atomic
from ratchet.batch_state import BatchStates
from ratchet.paths import ProjectPaths


def _validation_line(paths: ProjectPaths, batch_id: str) -> str | None:
    """Great Expectations' verdict from reports/validation/<batch>.json, in one line."""
    report = paths.validation_reports / f"{batch_id}.json"
    if not report.exists():
        return None
    results = atomic.read_json(report).get("results", [])
    failed = [r.get("expectation_config", {}).get("type", "?") for r in results if not r.get("success")]
    verdict = "passed" if not failed else f"**failed** ({', '.join(sorted(set(failed)))})"
    return f"- validation (Great Expectations): {verdict}, {len(results) - len(failed)} of {len(results)} checks"


def batch_markdown(paths: ProjectPaths, arrival: int) -> str:
    """State, reason, drift and gate of one arrival; failing gate checks first."""
    entries = [e for e in BatchStates(paths).current() if e.arrival == arrival]
    if not entries:
        return f"No ledger entry for arrival {arrival}."
    entry = entries[0]
    lines = [f"# {entry.file}: **{entry.state}**", "", f"- batch id: `{entry.batch_id}`",
             f"- reason: {entry.reason or '-'}"]
    validation = _validation_line(paths, entry.batch_id)
    if validation:
        lines.append(validation)
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
    numbers = {k: v for k, v in entry.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numbers:
        lines += ["", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in sorted(numbers.items())]
    checks = entry.details.get("gate_checks")
    if checks:
        failing = [c for c in checks if not c["passed"]]
        lines += ["", f"**gate: {'passed' if not failing else f'rejected, {len(failing)} check(s) failed'}**"]
        lines += ["", "| check | split | value | threshold | p-value | passed | reason |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c['name']} | {c['split']} | {c['value']:.4f} | {c['threshold']:.4f} | "
                  f"{'-' if c.get('p_value') is None else format(c['p_value'], '.3g')} | "
                  f"{'yes' if c['passed'] else '**no**'} | {c['reason']} |"
                  for c in sorted(checks, key=lambda c: c["passed"])]
    return "\n".join(lines) + "\n"
