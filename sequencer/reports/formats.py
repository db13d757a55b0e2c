"""A report document as JSON, CSV or terminal tables (the HTML page is ``page``).

JSON is the document itself (``schema``, ``version``; README "Report JSON"), written with
``allow_nan=False`` so a NaN or Infinity can never reach a reader: a rate with nothing to
divide is ``null``. CSV is long and flat (``section,key,metric,value``), one figure a row,
so a spreadsheet can pivot any part of either report without knowing its shape; values that
a spreadsheet would run as a formula are escaped as ``suppression`` exports are.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table

FORMATS = ("table", "json", "csv", "html")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def to_csv(document: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["section", "key", "metric", "value"])
    for section, value in document.items():
        if section in ("schema", "version", "generated_at", "period", "empty", "note", "thresholds"):
            continue
        for key, metric, figure in _flatten(value):
            writer.writerow([section, key, metric, _cell(figure)])
    writer.writerow(["meta", "", "schema", f"{document['schema']}/{document['version']}"])
    writer.writerow(["meta", "", "since", document["period"]["since"]])
    writer.writerow(["meta", "", "until", document["period"]["until"]])
    writer.writerow(["meta", "", "note", _cell(document["note"])])
    return out.getvalue()


def _flatten(value: Any, key: str = "", prefix: str = "") -> list[tuple[str, str, Any]]:
    """(key, metric, value) rows: a list's items are keyed by their name field, a dict's by path."""
    if isinstance(value, list):
        rows = []
        for index, item in enumerate(value):
            name = _name(item) or str(index)
            rows += _flatten(item, f"{key}/{name}" if key else name, prefix)
        return rows
    if isinstance(value, dict):
        rows = []
        for name, inner in value.items():
            rows += _flatten(inner, key, f"{prefix}.{name}" if prefix else name)
        return rows
    return [(key, prefix, value)]


def _name(item: Any) -> str:
    if not isinstance(item, dict):
        return ""
    parts = [str(item[k]) for k in ("address", "domain", "mailbox", "day", "group", "signal_type", "sequence",
                                    "step_id", "variant", "type", "reason", "status_code", "source_ip", "name",
                                    "sdr") if item.get(k) not in (None, "")]
    return ":".join(parts)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def print_tables(document: dict[str, Any], console: Console) -> None:
    """Rich tables for a quick look in a terminal."""
    period = document["period"]
    console.print(f"[bold]{document['schema']} report[/bold] {period['since']} .. {period['until']}")
    if document["empty"]:
        console.print(f"[yellow]{document['note']}[/yellow]")
    if document["schema"] == "deliverability":
        _deliverability_tables(document, console)
    else:
        _pipeline_tables(document, console)


def _deliverability_tables(document: dict[str, Any], console: Console) -> None:
    for title, rows, name in (("Mailboxes", document["mailboxes"], "address"), ("Domains", document["domains"],
                                                                                "domain")):
        table = Table(name, "sent", "delivered", "bounces", "bounce rate", "hard/soft/block", "complaints",
                      "complaint rate", "replies", "reply rate", "status", title=title)
        table.columns[0].no_wrap = True
        for row in rows:
            types = row["bounces_by_type"]
            table.add_row(row[name], str(row["sent"]), str(row["delivered"]), str(row["bounces"]),
                          percent(row["bounce_rate"]), f"{types['hard']}/{types['soft']}/{types['block']}",
                          str(row["complaints"]), percent(row["complaint_rate"]), str(row["replies"]),
                          percent(row["reply_rate"]), f"{row['status']}: {row['status_reason']}")
        console.print(table)
    codes = Table("status code", "count", "example diagnostic", title="Top status codes")
    for row in document["status_codes"]:
        codes.add_row(row["status_code"], str(row["count"]), row["example"])
    console.print(codes)
    for domain in document["domains"]:
        checks = domain["checks"]
        when = checks["checked_at"] or "never"
        table = Table("check", "status", "reason", title=f"{domain['domain']}: checked {when} ({checks['status']})")
        for check in checks["checks"]:
            table.add_row(check["name"], check["status"], check["reason"])
        console.print(table)
        for change in checks["changes"]:
            console.print(f"  changed since {checks['previous_at']}: {change['name']} {change['before']} -> "
                          f"{change['after']} ({change['reason']})")
        if domain["dmarc"]:
            dmarc = Table("source IP", "messages", "DKIM aligned", "SPF aligned", "DMARC pass", "ours",
                          title=f"{domain['domain']}: DMARC aggregate reports")
            for row in domain["dmarc"]:
                dmarc.add_row(row["source_ip"], str(row["messages"]), str(row["dkim_aligned_pass"]),
                              str(row["spf_aligned_pass"]), percent(row["dmarc_pass_rate"]), "yes" if row["ours"]
                              else "no")
            console.print(dmarc)


def _pipeline_tables(document: dict[str, Any], console: Console) -> None:
    leads = Table("signal type", "leads", "p50", "p90", "within 5 min", title="Speed to lead")
    for row in document["speed_to_lead"]:
        leads.add_row(row["signal_type"], str(row["leads"]), _duration(row["p50_seconds"]),
                      _duration(row["p90_seconds"]), percent(row["within_5_minutes_share"]))
    console.print(leads)
    steps = Table("sequence", "step", "channel", "variant", "touches", "replies", "reply rate", title="Steps")
    for row in document["steps"]:
        steps.add_row(row["sequence"], f"{row['step']} {row['step_id']}", row["channel"], row["variant"],
                      str(row["touches"]), str(row["replies"]), percent(row["reply_rate"]))
    console.print(steps)
    for test in document["ab_tests"]:
        console.print(f"A/B {test['sequence']} step {test['step']} ({test['step_id']}): {test['note']}")
    for group, rows in document["meetings"]["groups"].items():
        table = Table(group, "scheduled", "held", "no-shows", "canceled", "show rate", "accepted", "acceptance",
                      "qualified", title=f"Meetings by {group}" if group != "all" else "Meetings")
        for row in rows:
            faults = ", ".join(f"{k} {v}" for k, v in row["no_shows_by_fault"].items()) or "0"
            table.add_row(row["group"], str(row["scheduled"]), str(row["held"]), faults, str(row["canceled"]),
                          percent(row["show_rate"]), str(row["accepted"]), percent(row["acceptance_rate"]),
                          str(row["qualified"]))
        console.print(table)
    if document["cost"]:
        cost = document["cost"]
        console.print(f"Cost {cost['total']:,.2f} {cost['currency']} over {cost['months']} months: per accepted "
                      f"meeting {_money(cost['per_accepted_meeting'])}, per SQL {_money(cost['per_sql'])}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"
