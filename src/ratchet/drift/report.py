"""The reviewer's report: Evidently's HTML with ratchet's summary on top, and reports/drift/index.html.

Only this module and signals.py import evidently.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ratchet import atomic
from ratchet.config import DriftSettings
from ratchet.drift.calibration import Compared
from ratchet.drift.descriptors import DESCRIPTORS
from ratchet.drift.signals import TWO_SAMPLE_CHI_SQUARE

COLOURS = {"none": "#1a7f37", "low": "#9a6700", "medium": "#bc4c00", "high": "#cf222e"}
VERDICT_WORDS = {"none": "no drift", "low": "low: the text looks different, the model does not see it",
                 "medium": "medium: the model sees the batch differently",
                 "high": "high: the champion does worse on it, or it has labels the champion never learned"}
STYLE = """<style>
.ratchet{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:16px auto;padding:16px 24px;
border:1px solid #d0d7de;border-radius:8px;background:#fff;color:#1f2328;line-height:1.45}
.ratchet h1{font-size:22px;margin:0 0 8px}.ratchet h2{font-size:16px;margin:18px 0 6px}
.ratchet .verdict{display:inline-block;padding:4px 12px;border-radius:14px;color:#fff;font-weight:600}
.ratchet table{border-collapse:collapse;font-size:13px}.ratchet td,.ratchet th{border:1px solid #d0d7de;padding:3px 8px;text-align:left}
.ratchet .fired{background:#fff1e5;font-weight:600}.ratchet .muted{color:#656d76;font-size:12px}
.ratchet blockquote{margin:4px 0;padding:4px 10px;border-left:3px solid #d0d7de;font-size:13px}
</style>"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"


def summary_html(result) -> str:
    """The ratchet block at the top of a report: verdict, signals, champion, what changed."""
    colour = COLOURS[result.severity]
    parts = [STYLE, '<section class="ratchet" id="ratchet-summary">',
             f"<h1>ratchet drift report: {_e(result.source or 'batch')} ({_e(result.batch_id)})</h1>",
             f'<p><span class="verdict" id="ratchet-verdict" style="background:{colour}">'
             f"verdict: {_e(VERDICT_WORDS[result.severity])}</span></p>",
             f"<p>{result.rows} batch rows against {result.reference_rows} reference rows.</p>"]
    if result.reasons:
        parts.append("<h2>Why</h2><ul>" + "".join(f"<li>{_e(r)}</li>" for r in result.reasons) + "</ul>")
    parts.append("<h2>Signals</h2><table><tr><th>signal</th><th>kind</th><th>score</th><th>threshold</th>"
                 "<th>fired</th></tr>")
    for s in result.signals:
        p = f" (p={_number(s.p_value, 2)})" if s.p_value is not None else ""
        parts.append(f'<tr class="{"fired" if s.fired else ""}"><td>{_e(s.title)}</td><td>{_e(s.kind)}</td>'
                     f"<td>{_number(s.score)}{p}</td><td>{_number(s.threshold)}</td>"
                     f"<td>{'yes' if s.fired else 'no'}</td></tr>")
    parts.append("</table>")
    cal = result.calibration
    if cal:
        parts.append(
            f'<p class="muted">Thresholds hold all {len(cal["signals"])} signals together to a false-alarm rate of '
            f'{cal["false_alarm_target"]:.0%} (Bonferroni, {cal["alpha_per_signal"]:.3g} each). On '
            f'{cal["draws"]} same-distribution batches of {cal["draw_size"]} rows drawn from the reference, '
            f'{cal["false_alarms"]} raised an alarm (estimate {cal["false_alarm_rate"]:.1%}, 95% upper bound '
            f'{cal["false_alarm_upper_95"]:.1%}).</p>')
    champion = result.champion
    if champion:
        parts.append("<h2>The champion on this batch</h2><table><tr><th></th><th>accuracy</th><th>macro-F1</th></tr>"
                     f'<tr><td>this batch</td><td id="ratchet-batch-accuracy">{_number(champion["batch_accuracy"])}'
                     f'</td><td>{_number(champion["batch_macro_f1"])}</td></tr>'
                     f'<tr><td>reference eval split ({champion["reference_eval_rows"]} rows)</td>'
                     f'<td>{_number(champion["reference_accuracy"])}</td>'
                     f'<td>{_number(champion["reference_macro_f1"])}</td></tr></table>')
    elif result.entities:
        parts.append(entity_section(result.entities))
    else:
        parts.append('<p class="muted">No champion yet: the model-aware signals (embeddings, predictions, '
                     "accuracy) were not computed.</p>")
    words = result.typical_words
    if words.get("batch") or words.get("reference"):
        def listing(rows: list[dict]) -> str:
            return ", ".join(f"{_e(w['word'])} ({w['batch_count']} vs {w['reference_count']})" for w in rows) or "none"

        parts.append("<h2>Typical words</h2>"
                     f"<p><b>more frequent in the batch:</b> {listing(words.get('batch', []))}</p>"
                     f"<p><b>more frequent in the reference:</b> {listing(words.get('reference', []))}</p>"
                     '<p class="muted">counts in the batch vs the reference; weighted log-odds, |z| &gt; 1.96</p>')
    if result.unusual_rows:
        parts.append(f"<h2>Rows least like the reference</h2><p class=\"muted\">"
                     f"{_e(result.unusual_rows[0]['measure'])}</p>")
        parts += [f"<blockquote>{_e(r['text'])} <span class=\"muted\">({r['score']})</span></blockquote>"
                  for r in result.unusual_rows]
    if result.misclassified:
        parts.append("<h2>Rows the champion gets wrong</h2>")
        parts += [f"<blockquote><b>{_e(r['label'])}</b> read as <b>{_e(r['prediction'])}</b>: {_e(r['text'])}"
                  "</blockquote>" for r in result.misclassified]
    if result.errors:
        parts.append("<h2>Problems</h2><ul>" + "".join(f"<li>{_e(e)}</li>" for e in result.errors) + "</ul>")
    parts.append('<p class="muted"><a href="index.html">all batches</a> · Evidently\'s report follows.</p></section>')
    return "\n".join(parts)


def entity_section(entities: dict) -> str:
    """Token batches: entities per type in the batch and the reference, unseen types, the champion's F1."""
    batch, reference = entities["batch_types"], entities["reference_types"]
    unseen = set(entities["unseen_types"])
    rows = "".join(f'<tr class="{"fired" if kind in unseen else ""}"><td>{_e(kind)}</td><td>{batch.get(kind, 0)}</td>'
                   f"<td>{reference.get(kind, 0)}</td><td>{'yes' if kind in unseen else ''}</td></tr>"
                   for kind in sorted(set(batch) | set(reference)))
    parts = ['<h2 id="ratchet-entities">Entities</h2><table><tr><th>type</th><th>batch</th><th>reference</th>'
             f"<th>never learned by the champion</th></tr>{rows}</table>"]
    if entities.get("champion_batch_f1") is not None:
        parts.append(f"<p>The champion's entity F1 (micro, strict IOB2) on {_e(', '.join(entities['shared_types']))}: "
                     f'<b id="ratchet-batch-f1">{_number(entities["champion_batch_f1"])}</b> on this batch, '
                     f"{_number(entities['champion_reference_f1'])} on the reference eval split.</p>")
    else:
        parts.append('<p class="muted">No entity type is both tagged here and learned by the champion: its F1 on '
                     "this batch says nothing (a batch tags only its own types; the others are <code>O</code>).</p>")
    return "".join(parts)


def _frame(rows: Compared) -> pd.DataFrame:
    frame = pd.DataFrame({"text": rows.texts, "label": rows.labels})
    frame = pd.concat([frame, rows.descriptors.reset_index(drop=True)], axis=1)
    if rows.predictions is not None:
        frame["prediction"] = rows.predictions.to_numpy()
    if rows.embeddings is not None:
        embedding = pd.DataFrame(rows.embeddings, columns=[f"emb_{i}" for i in range(rows.embeddings.shape[1])])
        frame = pd.concat([frame, embedding], axis=1)
    return frame


# Evidently draws its embeddings picture with t-SNE on up to 2,500 rows per side: about 20 s on two
# CPU cores, whatever the batch size. 500 per side draws the same picture in a few seconds; the
# drift score itself is computed on every row.
EMBEDDING_PLOT_ROWS = 500


def evidently_report(reference: Compared, current: Compared, thresholds: dict[str, float], settings: DriftSettings):
    """The same statistics as the verdict, with the same thresholds, as an Evidently report."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.metrics.data_drift import embeddings_drift

    embeddings_drift.SAMPLE_CONSTANT = EMBEDDING_PLOT_ROWS
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import (
        DistanceDriftMethod,
    )
    from evidently.metrics import EmbeddingsDrift, ValueDrift

    ref, cur = _frame(reference), _frame(current)
    embedding_columns = [c for c in ref.columns if c.startswith("emb_")]
    categorical = ["label"] + (["prediction"] if "prediction" in ref else [])
    definition = DataDefinition(text_columns=["text"], categorical_columns=categorical,
                                numerical_columns=list(DESCRIPTORS) + embedding_columns,
                                embeddings={"champion": embedding_columns} if embedding_columns else None)
    metrics = [ValueDrift(column="text", method="abs_text_content_drift", threshold=thresholds["text_content"])]
    metrics += [ValueDrift(column=c, method="ks", threshold=thresholds[c]) for c in DESCRIPTORS]
    metrics += [ValueDrift(column=c, method=TWO_SAMPLE_CHI_SQUARE, threshold=thresholds[c]) for c in categorical]
    if embedding_columns:
        metrics.append(EmbeddingsDrift(embeddings_name="champion", drift_method=DistanceDriftMethod(
            dist=settings.embedding_distance, threshold=thresholds["embeddings"])))
    return Report(metrics, include_tests=True).run(Dataset.from_pandas(cur, data_definition=definition),
                                                   Dataset.from_pandas(ref, data_definition=definition))


def write_report(result, reference: Compared | None, current: Compared | None, thresholds: dict[str, float],
                 settings: DriftSettings, html_path: Path, snapshot_path: Path | None) -> None:
    """<batch>.html: the summary, then Evidently's report (when it could be built)."""
    summary = summary_html(result)
    if reference is None or current is None:
        page = f"<!doctype html><html><head><meta charset='utf-8'><title>ratchet drift {_e(result.batch_id)}</title>" \
               f"</head><body>{summary}</body></html>"
        atomic.write_text(html_path, page)
        return
    snapshot = evidently_report(reference, current, thresholds, settings)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
    if snapshot_path is not None:
        atomic.write_json(snapshot_path, snapshot.dict())
    page = html_path.read_text(encoding="utf-8")
    at = page.find(">", page.find("<body")) + 1 if "<body" in page else 0
    page = page[:at] + summary + page[at:]
    page = page.replace("<title>", f"<title>ratchet drift {_e(result.batch_id)} · ", 1)
    atomic.write_text(html_path, page)


def write_index(folder: Path) -> Path:
    """index.html: every batch's verdict, newest first, linking to its report."""
    rows = []
    for path in folder.glob("*.json"):
        if path.name.endswith(".evidently.json"):
            continue
        try:
            payload = atomic.read_json(path)
        except (OSError, ValueError):
            continue
        if "severity" not in payload:
            continue
        when = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
        rows.append((when, payload))
    rows.sort(key=lambda r: r[0], reverse=True)
    lines = ["<!doctype html><html><head><meta charset='utf-8'><title>ratchet drift reports</title>", STYLE,
             "</head><body><section class='ratchet'><h1>ratchet drift reports</h1>",
             "<table id='ratchet-index'><tr><th>checked (UTC)</th><th>file</th><th>batch</th><th>rows</th>"
             "<th>verdict</th>"
             "<th>champion accuracy (batch / reference)</th><th>first reason</th></tr>"]
    for when, p in rows:
        champion = p.get("champion") or {}
        accuracy = (f"{_number(champion.get('batch_accuracy'))} / {_number(champion.get('reference_accuracy'))}"
                    if champion else "n/a")
        reason = p["reasons"][0] if p.get("reasons") else ""
        lines.append(f"<tr><td>{when:%Y-%m-%d %H:%M}</td><td>{_e(p.get('source', ''))}</td>"
                     f"<td style='white-space:nowrap'><a href='{_e(p['batch_id'])}.html'>{_e(p['batch_id'])}</a>"
                     f"</td><td>{p['rows']}</td><td><span class='verdict' style='background:{COLOURS[p['severity']]}'>"
                     f"{_e(p['severity'])}</span></td><td>{accuracy}</td><td>{_e(reason)}</td></tr>")
    lines.append("</table></section></body></html>")
    index = folder / "index.html"
    atomic.write_text(index, "\n".join(lines))
    return index
