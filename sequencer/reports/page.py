"""A report as one self-contained HTML page: the tables and the charts, nothing fetched.

The charts are Chart.js (MIT; ``static/chart.umd.min.js``, vendored from the npm package,
version in README), inlined in the page so it opens with no network, from a file or from
``sequencer serve``. The report document rides along as JSON in a ``<script
type="application/json">`` block with every ``<`` escaped, so no value in it (a diagnostic
from a remote server, a DMARC reporter's name) can close the block or inject markup; the
tables escape every cell with ``html.escape``.
"""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from typing import Any

from sequencer.reports.formats import percent


@cache
def chart_js() -> str:
    return resources.files("sequencer.reports").joinpath("static/chart.umd.min.js").read_text(encoding="utf-8")


def render(document: dict[str, Any]) -> str:
    data = json.dumps(document, allow_nan=False).replace("<", "\\u003c").replace("&", "\\u0026")
    charts = _DELIVERABILITY_CHARTS if document["schema"] == "deliverability" else _PIPELINE_CHARTS
    tables = _deliverability_tables(document) if document["schema"] == "deliverability" else _pipeline_tables(document)
    period = document["period"]
    title = f"sequencer {document['schema']} report"
    canvases = "".join(f'<figure><figcaption>{html.escape(caption)}</figcaption>'
                       f'<div class="chart"><canvas id="{name}"></canvas></div></figure>' for name, caption in charts)
    note = f'<p class="note">{html.escape(document["note"])}</p>' if document["note"] else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{_CSS}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>{html.escape(period["since"])} to {html.escape(period["until"])}, generated {html.escape(document["generated_at"])}
 (schema {html.escape(document["schema"])}/{document["version"]})</p>{note}
<section class="charts">{canvases}</section>
{tables}
<script id="report-data" type="application/json">{data}</script>
<script>{chart_js()}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def _table(headers: list[str], rows: list[list[Any]], caption: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"


def _deliverability_tables(document: dict[str, Any]) -> str:
    parts = []
    for caption, rows, name in (("Mailboxes", document["mailboxes"], "address"), ("Sending domains",
                                                                                   document["domains"], "domain")):
        parts.append(_table(
            [name, "sent", "delivered", "bounces", "bounce rate", "hard/soft/block", "complaints", "complaint rate",
             "replies", "reply rate", "status"],
            [[r[name], r["sent"], r["delivered"], r["bounces"], percent(r["bounce_rate"]),
              "/".join(str(r["bounces_by_type"][k]) for k in ("hard", "soft", "block")), r["complaints"],
              percent(r["complaint_rate"]), r["replies"], percent(r["reply_rate"]),
              f"{r['status']}: {r['status_reason']}"] for r in rows], caption))
    parts.append(_table(["type", "reason", "count", "rate"], [[r["type"], r["reason"], r["count"], percent(r["rate"])]
                                                             for r in document["bounce_reasons"]], "Bounces by reason"))
    parts.append(_table(["status code", "count", "example diagnostic"],
                        [[r["status_code"], r["count"], r["example"]] for r in document["status_codes"]],
                        "Top status codes"))
    for domain in document["domains"]:
        checks = domain["checks"]
        parts.append(_table(["check", "status", "reason"], [[c["name"], c["status"], c["reason"]]
                                                             for c in checks["checks"]],
                            f"{domain['domain']}: checked {checks['checked_at'] or 'never'} ({checks['status']})"))
        if checks["changes"]:
            parts.append(_table(["check", "before", "after", "reason"],
                                [[c["name"], c["before"], c["after"], c["reason"]] for c in checks["changes"]],
                                f"{domain['domain']}: changed since {checks['previous_at']}"))
        parts.append(_table(["source IP", "messages", "DKIM aligned", "SPF aligned", "DMARC pass", "ours"],
                            [[r["source_ip"], r["messages"], r["dkim_aligned_pass"], r["spf_aligned_pass"],
                              percent(r["dmarc_pass_rate"]), "yes" if r["ours"] else "no"] for r in domain["dmarc"]],
                            f"{domain['domain']}: DMARC aggregate reports by source IP"))
    return "\n".join(parts)


def _pipeline_tables(document: dict[str, Any]) -> str:
    parts = [_table(["signal type", "leads", "p50 (s)", "p90 (s)", "within 5 min"],
                    [[r["signal_type"], r["leads"], r["p50_seconds"], r["p90_seconds"],
                      percent(r["within_5_minutes_share"])] for r in document["speed_to_lead"]], "Speed to lead"),
             _table(["sequence", "step", "channel", "variant", "touches", "replies", "reply rate"],
                    [[r["sequence"], f"{r['step']} {r['step_id']}", r["channel"], r["variant"], r["touches"],
                      r["replies"], percent(r["reply_rate"])] for r in document["steps"]], "Touches and replies"),
             _table(["sequence", "step", "note"], [[t["sequence"], f"{t['step']} {t['step_id']}", t["note"]]
                                                   for t in document["ab_tests"]], "A/B tests")]
    for group, rows in document["meetings"]["groups"].items():
        parts.append(_table([group, "scheduled", "held", "no-shows by fault", "canceled", "show rate", "accepted",
                             "acceptance rate", "qualified"],
                            [[r["group"], r["scheduled"], r["held"],
                              ", ".join(f"{k} {v}" for k, v in r["no_shows_by_fault"].items()) or "0", r["canceled"],
                              percent(r["show_rate"]), r["accepted"], percent(r["acceptance_rate"]), r["qualified"]]
                             for r in rows], "Meetings" if group == "all" else f"Meetings by {group}"))
    return "\n".join(parts)


_DELIVERABILITY_CHARTS = (("rates", "Bounce and complaint rate by day, against the pause thresholds"),
                          ("volume", "Emails sent by day against the mailboxes' caps"),
                          ("dmarc", "DMARC: messages by source IP, passing and failing"))
_PIPELINE_CHARTS = (("funnel", "Meeting funnel"), ("leads", "Speed to lead: leads by time to first touch"),
                    ("ab", "A/B: reply rate by variant"))

_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}
.note{background:#fff4d6;padding:8px 12px;border-radius:4px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}
figure{margin:0;border:1px solid #ddd;border-radius:6px;padding:8px}figcaption{font-weight:600;margin-bottom:4px}
.chart{position:relative;height:280px}table{border-collapse:collapse;margin:16px 0;font-size:13px}
caption{text-align:left;font-weight:600;padding:4px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}"""

_SCRIPT = r"""
(function () {
  const report = JSON.parse(document.getElementById("report-data").textContent);
  const make = (id, config) => { config.options = Object.assign({responsive: true, animation: false,
    maintainAspectRatio: false}, config.options || {}); window.charts = window.charts || {};
    window.charts[id] = new Chart(document.getElementById(id), config); };
  const sumBy = (rows, key, field) => { const out = {};
    rows.forEach(r => { out[r[key]] = (out[r[key]] || 0) + r[field]; }); return out; };
  if (report.schema === "deliverability") {
    const days = [...new Set(report.daily.map(r => r.day))].sort();
    const sent = sumBy(report.daily, "day", "sent"), bounces = sumBy(report.daily, "day", "bounces");
    const complaints = sumBy(report.daily, "day", "complaints"), caps = sumBy(report.daily, "day", "cap");
    const share = (n, d) => d > 0 ? 100 * n / d : null;
    const flat = v => days.map(() => 100 * v);
    make("rates", {type: "line", data: {labels: days, datasets: [
      {label: "bounce rate %", data: days.map(d => share(bounces[d] || 0, sent[d] || 0)), borderColor: "#c0392b"},
      {label: "complaint rate %", data: days.map(d => share(complaints[d] || 0, sent[d] || 0)), borderColor: "#8e44ad"},
      {label: "bounce pause %", data: flat(report.thresholds.bounce_pause), borderColor: "#e6b0aa", borderDash: [6, 4],
       pointRadius: 0},
      {label: "complaint pause %", data: flat(report.thresholds.complaint_pause), borderColor: "#d2b4de",
       borderDash: [6, 4], pointRadius: 0}]}});
    make("volume", {data: {labels: days, datasets: [
      {type: "bar", label: "sent", data: days.map(d => sent[d] || 0), backgroundColor: "#2e86c1"},
      {type: "line", label: "cap", data: days.map(d => caps[d] || 0), borderColor: "#117a65", stepped: true}]}});
    const sources = [].concat(...report.domains.map(d => d.dmarc.map(r => Object.assign({domain: d.domain}, r))));
    make("dmarc", {type: "bar", data: {labels: sources.map(r => r.source_ip + (r.ours ? " (ours)" : "")), datasets: [
      {label: "DMARC pass", data: sources.map(r => r.dmarc_pass), backgroundColor: "#27ae60"},
      {label: "DMARC fail", data: sources.map(r => r.messages - r.dmarc_pass), backgroundColor: "#e74c3c"}]},
      options: {scales: {x: {stacked: true}, y: {stacked: true}}}});
  } else {
    const all = report.meetings.groups.all[0] || {scheduled: 0, held: 0, accepted: 0, qualified: 0};
    make("funnel", {type: "bar", data: {labels: ["scheduled", "held", "accepted", "qualified"], datasets: [
      {label: "meetings", data: [all.scheduled, all.held, all.accepted, all.qualified], backgroundColor: "#2e86c1"}]},
      options: {indexAxis: "y"}});
    make("leads", {type: "bar", data: {labels: report.lead_distribution.map(b => b.span), datasets: [
      {label: "leads", data: report.lead_distribution.map(b => b.leads), backgroundColor: "#16a085"}]}});
    const variants = [].concat(...report.ab_tests.map(t => t.variants.map(v => Object.assign({step: t.sequence + " "
      + t.step_id}, v))));
    make("ab", {type: "bar", data: {labels: variants.map(v => v.step + " " + v.variant + " (n=" + v.touches + ")"),
      datasets: [{label: "reply rate %", data: variants.map(v => v.reply_rate === null ? null : 100 * v.reply_rate),
      backgroundColor: "#d35400"}]}});
  }
})();
"""
