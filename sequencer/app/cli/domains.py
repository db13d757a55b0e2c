"""``sequencer domains``: check a sending domain's DNS health by hand.

The check is the same one the send guard runs. Its result replaces the cached verdict
(so fixing DNS and re-checking unblocks sending at once), except when ``--selector``
asks about a selector other than the configured one, whose answer is not the one
sending depends on.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sequencer.app.cli.common import console, fail, open_session, settings
from sequencer.core.clock import SystemClock
from sequencer.domains.checks import DomainReport, build_resolver, check_domain
from sequencer.domains.health import health_of, refresh
from suppression.normalize import normalize_domain

app = typer.Typer(help="Check the DNS health of sending domains before they may send.")

EXIT_CODES = {"pass": 0, "warn": 0, "fail": 1, "unknown": 2}
STYLES = {"pass": "green", "warn": "yellow", "fail": "red", "unknown": "magenta"}


@app.callback()
def domains() -> None:
    """Check the DNS health of sending domains before they may send."""


@app.command()
def check(
    domain: Annotated[str, typer.Argument(help="The sending domain, e.g. acme-mail.com.")],
    nameserver: Annotated[
        list[str] | None,
        typer.Option("--nameserver", help="Resolver HOST[:PORT] to ask; repeatable."),
    ] = None,
    selector: Annotated[
        str | None,
        typer.Option(help="DKIM selector to check instead of the configured one."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check MX, SPF, DKIM, DMARC, blocklists and reverse DNS of DOMAIN.

    Exit code 0 for pass or warn, 1 for fail, 2 when DNS could not answer (unknown).
    """
    config = settings()
    if nameserver:
        config = dataclasses.replace(config, dns_nameservers=list(nameserver))
    try:
        domain = normalize_domain(domain)
        resolver = build_resolver(config)
    except ValueError as exc:
        fail(str(exc), code=2)
    now = SystemClock().now()
    if selector and selector != config.dkim_selector:
        report = check_domain(domain, config, resolver, selector=selector)
        sending = "not cached: --selector differs from the configured dkim_selector"
    else:
        with open_session(config) as session:
            row = refresh(session, now, config, domain, resolver)
        report = DomainReport.from_dict(row.report)
        health = health_of(row)
        verb = "may send" if health.may_send else "may NOT send"
        sending = f"{verb} ({health.status}): {health.explanation}"
    if as_json:
        typer.echo(json.dumps({**report.to_dict(), "sending": sending}, indent=2))
    else:
        _print(report, sending, bool(config.sending_ips))
    raise typer.Exit(EXIT_CODES[report.status])


def _print(report: DomainReport, sending: str, has_ips: bool) -> None:
    table = Table(title=f"{report.domain}: {report.status}", title_justify="left")
    table.add_column("check")
    table.add_column("status")
    table.add_column("reason", overflow="fold")
    for result in report.checks:
        style = STYLES[result.status]
        table.add_row(result.name, f"[{style}]{result.status}[/{style}]", escape(result.reason))
    console.print(table)
    console.print(f"sending: {escape(sending)}", highlight=False)
    if not has_ips:
        console.print("no sending_ips configured: IP blocklist and reverse-DNS checks skipped")
