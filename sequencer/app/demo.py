"""``sequencer demo``: the whole engine, end to end, in simulated time on a throw-away workspace.

Everything is real except the calendar: a SQLite file, an SMTP server on loopback that
receives every email, the shipped sequences and prospects, signals from the shipped
file, a reply that stops a sequence, and tasks an SDR completes.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlmodel import Session, select

from channels import verp
from channels.tasks import Task
from sequencer.app import wiring as runtime
from sequencer.core.clock import SimulatedClock
from sequencer.core.config import REPO_TEMPLATES, Settings
from sequencer.core.db import make_engine, migrate
from sequencer.core.db import session as new_session
from sequencer.core.models import Decision, Enrollment, Prospect, Signal, Touch
from sequencer.domains import health
from sequencer.engine.explain import local
from sequencer.engine.steps import complete_task
from sequencer.engine.tick import tick
from sequencer.inbound.ingest import ingest_raw
from sequencer.intake import enrolling, prospect_import, signals
from sequencer.loopback import demo_zone
from sequencer.loopback.dns_server import DNSServer
from sequencer.loopback.smtp_server import LocalSmtpServer
from sequencer.reports.pipeline import first_touch_at
from sequencer.rules.book import RuleBook
from sequencer.sending import mailboxes
from sequencer.sequences.versions import sync
from suppression.store import add_entry, make_spec

START = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)  # Monday 08:00 in New York
HOURS = 24 * 12
STYLE = {
    "enrolled": "green", "sent": "bold cyan", "queued": "magenta", "stopped": "bold red", "blocked": "red",
    "deferred": "yellow", "paused": "yellow", "woken": "green", "timed_out": "yellow", "not_enrolled": "dim",
    "task_done": "magenta", "finished": "green",
}
QUIET = {"waiting", "prospect_created"}


def run_demo(keep: bool = False, console: Console | None = None, templates: Path = REPO_TEMPLATES) -> dict:
    """Run the demo and print its timeline; return counts for tests."""
    console = console or _console()
    workspace = Path(tempfile.mkdtemp(prefix="sequencer-demo-"))
    try:
        with LocalSmtpServer() as smtp:
            return _run(console, workspace, smtp, templates)
    finally:
        if keep:
            console.print(f"\nworkspace kept at {workspace} (SEQUENCER_DATABASE_URL=sqlite:///{workspace}/demo.db)")
        else:
            shutil.rmtree(workspace, ignore_errors=True)


def _run(console: Console, workspace: Path, smtp: LocalSmtpServer, templates: Path) -> dict:
    settings = Settings(
        database_url=f"sqlite:///{workspace}/demo.db", templates_dir=templates, primary_domain="acme.example",
        secret_key=secrets.token_hex(16), unsubscribe_url="https://go.outreach-acme.example/u",
        unsubscribe_mailto="unsubscribe@outreach-acme.example",
        mailboxes=[
            {"address": "sam@outreach-acme.example", "display_name": "Sam Rivera", "owner": "sam.sdr@acme.example",
             "smtp_host": smtp.host, "smtp_port": smtp.port, "daily_cap": 40, "warmup_start": 10,
             "warmup_increment": 5, "warmup_started_on": "2026-11-20"},
            {"address": "jo@outreach-acme.example", "display_name": "Jo Tanaka", "owner": "jo.sdr@acme.example",
             "smtp_host": smtp.host, "smtp_port": smtp.port, "daily_cap": 40},
        ],
    )
    dns = demo_zone.start(settings)
    try:
        return _run_with_dns(console, workspace, smtp, templates, settings, dns)
    finally:
        dns.stop()


def _run_with_dns(console: Console, workspace: Path, smtp: LocalSmtpServer, templates: Path, settings: Settings,
                  dns: DNSServer) -> dict:
    engine = make_engine(settings.database_url)
    migrate(engine)
    clock = SimulatedClock(START)
    engine_runtime = runtime.build(settings)
    console.rule("[bold]sequencer demo[/bold]")
    console.print(f"workspace {workspace}\nSMTP server on {smtp.host}:{smtp.port} and DNS server on {dns.address} "
                  f"(both loopback, started by the demo)\nsimulated clock starts {START:%a %Y-%m-%d %H:%M} UTC\n")
    with new_session(engine) as session:
        _check_domains(session, console, clock.now(), settings)
        for result in sync(session, clock.now(), templates):
            console.print(f"loaded sequence [bold]{result.name}[/bold] v{result.version}")
        mailboxes.sync_from_settings(session, settings, clock.now().date())
        report = prospect_import.import_csv(session, clock.now(), templates / "demo" / "prospects.csv")
        console.print(f"imported {report.stored} prospects; mailboxes: "
                      + ", ".join(m["address"] for m in settings.mailboxes))
        add_entry(session, clock.now(), make_spec("globex.example", reason="customer", note="signed 2026-09"),
                  added_by="demo")
        console.print("suppressed domain globex.example (reason: customer)")
        pending = sorted(_signal_records(templates), key=lambda item: item[0])
        state: dict = {"decision": 0, "mail": 0, "replied": False, "sdr_days": set(), "secret": settings.secret_key}
        console.rule("timeline (UTC; a prospect's own local time in brackets)")
        end = START + timedelta(hours=HOURS)
        while clock.now() < end:
            now = clock.now()
            while pending and pending[0][0] <= now:
                _, record = pending.pop(0)
                _fire(session, console, now, record)
            tick(session, clock, engine_runtime)
            _print_new(session, console, smtp, state)
            _play_sdr(session, console, now, state, engine_runtime.rules)
            _maybe_reply(session, console, now, settings, state)
            _print_new(session, console, smtp, state)
            following = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            clock.set(min(following, pending[0][0]) if pending else following)
        engine_runtime.sender.close()
        return _summary(session, console, smtp)


def _check_domains(session: Session, console: Console, now: datetime, settings: Settings) -> None:
    """Show the sending-domain checks the engine runs before a domain may send."""
    for domain in (demo_zone.SENDING_DOMAIN, demo_zone.PRIMARY_DOMAIN):
        row = health.refresh(session, now, settings, domain)
        style = {"pass": "green", "warn": "yellow"}.get(row.status, "red")
        console.print(f"domain check [bold]{domain}[/bold]: [{style}]{row.status}[/{style}]"
                      + ("  (may send)" if row.status in ("pass", "warn") else "  (sending from it is blocked)"))
        for check in row.report.get("checks", []):
            if check["status"] != "pass" or domain == demo_zone.SENDING_DOMAIN:
                console.print(f"    {check['status']:7} {check['name']:12} {check['reason']}", highlight=False,
                              soft_wrap=True)
    console.print()


def _console() -> Console:
    """A terminal console; when piped, wide enough that the timeline is not folded."""
    console = Console()
    return console if console.is_terminal else Console(width=140)


def _signal_records(templates: Path) -> list[tuple[datetime, dict]]:
    path = templates / "demo" / "signals.jsonl"
    return [(signals.parse_time(record["occurred_at"]), record) for _, record in signals.read_file(path)]


def _fire(session: Session, console: Console, now: datetime, record: dict) -> None:
    stored = signals.store(session, now, signals.SignalIn.from_mapping(record, source="demo"))
    subject = record.get("email") or record.get("domain")
    if stored.duplicate:
        console.print(f"[dim]{_when(now, None):22} signal       {subject:32} {record['type']} from "
                      f"{record.get('source')}: duplicate of signal #{stored.signal.id}, ignored[/dim]",
                      highlight=False)
        return
    console.print(f"{_when(now, None):22} [bold green]SIGNAL       [/bold green]{subject:32} {record['type']} "
                  f"from {record.get('source')}", highlight=False, soft_wrap=True)
    enrolling.process(session, now, stored.signal)


def _print_new(session: Session, console: Console, smtp: LocalSmtpServer, state: dict) -> None:
    """The new decisions in order; each sent email's delivery right under its decision."""
    arrived = smtp.messages[state["mail"]:]
    state["mail"] += len(arrived)
    # The envelope sender names the touch (sam+t7-<mac>@...); sends run in parallel, so arrival order differs.
    deliveries = {verp.touch_id_in_address(envelope.mail_from, state["secret"]): envelope for envelope in arrived}
    rows = session.exec(select(Decision).where(Decision.id > state["decision"]).order_by(Decision.id)).all()
    state["decision"] = max((decision.id for decision in rows), default=state["decision"])
    # In time order (a decision's own time, not when it was written), under one clock: UTC.
    for decision in sorted(rows, key=lambda d: (d.at, d.id)):
        if decision.kind in QUIET:
            continue
        prospect = session.get(Prospect, decision.prospect_id) if decision.prospect_id else None
        who = prospect.email if prospect else "-"
        when = _when(decision.at, prospect)
        style = STYLE.get(decision.kind, "white")
        rule = f" [dim](rule {decision.rule})[/dim]" if decision.rule else ""
        console.print(f"{when:22} [{style}]{decision.kind:12}[/{style}] {who:32} {escape(decision.reason)}{rule}",
                      highlight=False, soft_wrap=True)
        if decision.kind == "sent" and decision.touch_id in deliveries:
            _print_delivery(console, deliveries.pop(decision.touch_id))
    for envelope in deliveries.values():
        _print_delivery(console, envelope)


def _when(moment: datetime, prospect: Prospect | None) -> str:
    """One clock for the whole timeline (UTC), so its rows read in order; the prospect's
    local time beside it, since their window is what decides when they are touched."""
    utc = local(moment, "UTC", named=False)[5:]
    if prospect is None or prospect.timezone in ("", "UTC"):
        return utc
    return f"{utc} ({local(moment, prospect.timezone)[11:]})"


def _print_delivery(console: Console, envelope) -> None:
    message = message_from_bytes(envelope.content)
    console.print(f"{'':22} [cyan]delivered    [/cyan] MAIL FROM {envelope.mail_from} -> "
                  f"{', '.join(envelope.rcpt_tos)}", highlight=False, soft_wrap=True)
    for header in ("From", "Subject", "Message-ID", "In-Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post"):
        if message[header]:
            console.print(f"{'':35}[dim]{header}:[/dim] {message[header]}", highlight=False, soft_wrap=True)


def _play_sdr(session: Session, console: Console, now: datetime, state: dict, rules: RuleBook) -> None:
    """The SDR works the task queue once a day, at 16:00 UTC."""
    if now.hour != 16 or now.date() in state["sdr_days"]:
        return
    state["sdr_days"].add(now.date())
    for task in session.exec(select(Task).where(Task.state == "open").order_by(Task.id)).all():
        prospect = session.get(Prospect, task.prospect_id)
        outcome = "meeting_booked" if prospect.email.startswith("priya") and task.kind == "call" else (
            "no_answer" if task.kind == "call" else "done")
        console.print(f"{_when(now, prospect):22} [magenta]SDR          [/magenta]"
                      f"{prospect.email:32} completes task #{task.id} ({task.title}) -> {outcome}",
                      highlight=False, soft_wrap=True)
        complete_task(session, now, task.id, outcome, rules=rules)


def _maybe_reply(session: Session, console: Console, now: datetime, settings: Settings, state: dict) -> None:
    """Dana replies to the second email of her thread a few hours after it arrives."""
    if state["replied"]:
        return
    touches = session.exec(
        select(Touch).join(Prospect, Prospect.id == Touch.prospect_id)
        .where(Prospect.email == "dana.reyes@northwind.example", Touch.state == "sent").order_by(Touch.id)
    ).all()
    if len(touches) < 2 or now - touches[1].sent_at < timedelta(hours=3):
        return
    state["replied"] = True
    original = touches[1]
    reply = EmailMessage()
    reply["From"] = "Dana Reyes <dana.reyes@northwind.example>"
    reply["To"] = "sam@outreach-acme.example"
    reply["Subject"] = original.subject if original.subject.startswith("Re:") else f"Re: {original.subject}"
    reply["Message-ID"] = "<reply-1@mail.northwind.example>"
    reply["In-Reply-To"] = f"<{original.message_id}>"
    reply["References"] = f"<{original.message_id}>"
    reply["Date"] = format_datetime(now)
    reply.set_content("Yes, interested - good timing, we're hiring four SDRs next quarter. Let's set up a call: "
                      "Thursday at 11 works for me.\n\nDana")
    console.print(f"{_when(now, None):22} [bold]inbound      [/bold]dana.reyes@northwind.example     "
                  f"replies to {original.message_id}: {reply['Subject']!r}", highlight=False, soft_wrap=True)
    ingest_raw(session, now, settings, bytes(reply))


def _summary(session: Session, console: Console, smtp: LocalSmtpServer) -> dict:
    console.rule("summary")
    table = Table("prospect", "sequence", "state", "emails", "tasks", "speed to lead", "why")
    for column in table.columns:
        column.overflow = "ellipsis"
        column.no_wrap = True
    counts: dict[str, int] = {}
    for enrollment in session.exec(select(Enrollment).order_by(Enrollment.id)).all():
        prospect = session.get(Prospect, enrollment.prospect_id)
        touches = session.exec(select(Touch).where(Touch.enrollment_id == enrollment.id)).all()
        emails = sum(1 for t in touches if t.channel == "email" and t.state == "sent")
        tasks = sum(1 for t in touches if t.state == "queued")
        first = first_touch_at(session, enrollment.id)  # the pipeline report's one definition
        signal = session.get(Signal, enrollment.signal_id) if enrollment.signal_id else None
        speed = _duration(first - signal.occurred_at) if first and signal else "-"
        table.add_row(prospect.email, enrollment.sequence_name, enrollment.state, str(emails), str(tasks), speed,
                      _short(enrollment.reason))
        counts[enrollment.state] = counts.get(enrollment.state, 0) + 1
    console.print(table)
    console.print(f"{len(smtp.messages)} emails received by the loopback SMTP server; "
                  f"{session.exec(select(Task)).all().__len__()} tasks queued. "
                  "Try `sequencer explain EMAIL` on a kept workspace (--keep) for any prospect's full story.")
    return {"emails": len(smtp.messages), "states": counts}


def _short(reason: str) -> str:
    return reason if len(reason) <= 40 else reason[:39] + "…"


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "< 1 min"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
