"""A small workspace for engine tests: one sequence written to a tmp templates folder."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlmodel import Session, select

from sequencer.core.config import Settings
from sequencer.core.models import Enrollment, Prospect
from sequencer.intake import enrolling, prospects, signals
from sequencer.sending import mailboxes
from sequencer.sequences.versions import sync

SEQUENCE = """\
name: outbound
owner: sam.sdr@acme.example
trigger:
  signals: [intent_surge]
  filters:
    signal.score: {at_least: 50}
window: {days: mon-fri, start: "08:00", end: "17:00"}
mailboxes: [sam@outreach-acme.example]
steps:
  - id: first
    kind: email
    subject: "Hello {{ prospect.first_name }}"
    template: first.j2
  - kind: wait
    business_days: 2
  - id: second
    kind: email
    template: second.j2
  - id: call
    kind: call
    template: call.j2
  - id: wait-visit
    kind: wait_for_signal
    signal: website_visit
    timeout: {hours: 48}
  - id: last
    kind: email
    subject: "A new idea for {{ account.name }}"
    new_thread: true
    template: second.j2
"""
TEMPLATES = {
    "first.j2": "Hi {{ prospect.first_name }},\n\nSaw the {{ signal.topic | default('research') }} surge.\n\n"
                "{{ sender.name }}",
    "second.j2": "Following up, {{ prospect.first_name }}.",
    "call.j2": "Call {{ prospect.first_name }} about {{ account.name }}.",
}


def pooled_sequence(pool: list[str], follow_up: bool = False) -> str:
    """A one-email sequence (two emails with ``follow_up``) sending from ``pool``."""
    text = f"""\
name: outbound
owner: sam.sdr@acme.example
trigger:
  signals: [intent_surge]
window: {{days: mon-fri, start: "08:00", end: "17:00"}}
mailboxes: [{", ".join(pool)}]
steps:
  - id: first
    kind: email
    subject: "Hello {{{{ prospect.first_name }}}}"
    template: first.j2
"""
    if follow_up:
        text += "  - kind: wait\n    business_days: 2\n  - id: second\n    kind: email\n    template: second.j2\n"
    return text


def write_templates(root: Path, sequence: str = SEQUENCE, templates: dict[str, str] | None = None) -> Path:
    (root / "sequences").mkdir(parents=True, exist_ok=True)
    (root / "steps").mkdir(parents=True, exist_ok=True)
    (root / "sequences" / "outbound.yaml").write_text(sequence)
    for name, text in (templates or TEMPLATES).items():
        (root / "steps" / name).write_text(text)
    return root


def prepare(session: Session, now: datetime, settings: Settings, root: Path) -> None:
    sync(session, now, root)
    mailboxes.sync_from_settings(session, settings, now.date())


def add_prospect(session: Session, now: datetime, email: str, **fields: object) -> Prospect:
    values = {"first_name": "Dana", "timezone": "America/New_York", "country": "US", "company": "Northwind",
              **fields}
    prospect = prospects.upsert_prospect(session, now, email, dict(values.items()))
    session.commit()
    return prospect


def fire(session: Session, now: datetime, kind: str, email: str = "", domain: str = "", **payload: object):
    stored = signals.store(session, now, signals.SignalIn(type=kind, email=email, domain=domain, payload=payload))
    return enrolling.process(session, now, stored.signal)


def enrollment_of(session: Session, email: str) -> Enrollment:
    session.expire_all()
    return session.exec(
        select(Enrollment).join(Prospect, Prospect.id == Enrollment.prospect_id).where(Prospect.email == email)
    ).one()
