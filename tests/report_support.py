"""Rows for the report and protection tests, as the engine leaves them: prospects enrolled by a
signal, email touches sent from a mailbox, and what came back (bounces, complaints, replies).

Written straight to the tables (the engine's own tests cover how they get there); every row
carries the keys the engine would give it, foreign keys included.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from sqlmodel import Session

from sequencer.core.models import (
    Bounce,
    DmarcRecord,
    DmarcReport,
    DomainCheckRecord,
    Enrollment,
    InboundMessage,
    Mailbox,
    Meeting,
    Prospect,
    SequenceVersion,
    Signal,
    Touch,
)
from suppression.models import SuppressionEntry

SAM = "sam@outreach-acme.example"
JO = "jo@outreach-acme.example"
_serial = itertools.count(1)


def mailbox(session: Session, address: str, **fields: object) -> Mailbox:
    box = Mailbox(address=address, sending_domain=address.rpartition("@")[2], **fields)
    session.add(box)
    session.commit()
    return box


def sequence(session: Session, name: str = "outbound") -> SequenceVersion:
    version = SequenceVersion(name=name, version=1, content_hash=name, definition={"steps": [
        {"index": 0, "id": "intro", "kind": "email"}, {"index": 1, "id": "bump", "kind": "email"}]})
    session.add(version)
    session.commit()
    return version


def sent(session: Session, box: Mailbox, at: datetime, n: int, *, version: SequenceVersion, step: int = 0,
         variant: str = "A", signal_type: str = "intent_surge", lead_minutes: float = 3.0,
         owner: str = "sam.sdr@acme.example") -> list[Touch]:
    """``n`` prospects, each enrolled by a signal ``lead_minutes`` before ``at`` and sent one email then."""
    touches = []
    for _ in range(n):
        serial = next(_serial)
        prospect = Prospect(email=f"p{serial}@company{serial}.example", owner=owner)
        session.add(prospect)
        session.flush()
        signal = Signal(type=signal_type, dedupe_key=f"s{serial}", prospect_id=prospect.id, source="test",
                        occurred_at=at - timedelta(minutes=lead_minutes), received_at=at)
        session.add(signal)
        session.flush()
        enrollment = Enrollment(prospect_id=prospect.id, sequence_version_id=version.id,
                                sequence_name=version.name, signal_id=signal.id, mailbox_id=box.id, enrolled_at=at,
                                current_step=step + 1)
        session.add(enrollment)
        session.flush()
        touch = Touch(enrollment_id=enrollment.id, prospect_id=prospect.id, step_index=step,
                      step_id=version.definition["steps"][step]["id"], channel="email", state="sent",
                      variant=variant, mailbox_id=box.id, recipient=prospect.email, created_at=at, sent_at=at)
        session.add(touch)
        touches.append(touch)
    session.commit()
    return touches


def bounce(session: Session, touch: Touch, at: datetime, bounce_type: str = "hard", reason: str = "user_unknown",
           status: str = "5.1.1", diagnostic: str = "550 5.1.1 no such user", source: str = "dsn") -> None:
    session.add(Bounce(at=at, source=source, touch_id=touch.id, mailbox_id=touch.mailbox_id,
                       recipient=touch.recipient, bounce_type=bounce_type, bounce_reason=reason, status_code=status,
                       diagnostic=diagnostic))
    if source == "smtp":  # refused at send time: the touch never counted as sent
        touch.state, touch.sent_at = "failed", None
        session.add(touch)
    session.commit()


def inbound(session: Session, touch: Touch, at: datetime, kind: str) -> InboundMessage:
    """A complaint, reply or unsubscribe request matched to ``touch``."""
    message = InboundMessage(dedupe_key=f"in-{next(_serial)}", kind=kind, touch_id=touch.id,
                             enrollment_id=touch.enrollment_id, from_address=touch.recipient, received_at=at)
    session.add(message)
    session.commit()
    return message


def world(session: Session, now: datetime) -> dict[str, Mailbox]:
    """Two mailboxes of one domain. Sam: 200 sends over two days (A and B of the intro), 4 bounces
    (2 hard 5.1.1, 1 soft, 1 block refused at send time), 1 complaint, 10 replies, 1 mailed unsubscribe.
    Jo: 50 sends, nothing back. Two domain checks (DKIM went from pass to fail). One DMARC report."""
    version = sequence(session)
    sam = mailbox(session, SAM, daily_cap=150, owner="sam.sdr@acme.example")
    jo = mailbox(session, JO, daily_cap=100)
    day1, day2 = now - timedelta(days=2), now - timedelta(days=1)
    a = sent(session, sam, day1, 100, version=version, variant="A", lead_minutes=2)
    b = sent(session, sam, day2, 100, version=version, variant="B", lead_minutes=30,
                            signal_type="funding_round")
    sent(session, jo, day2, 50, version=version, variant="A", owner="jo.sdr@acme.example")
    bounce(session, a[0], day1)
    bounce(session, a[1], day1, diagnostic="550 5.1.1 <p2@company2.example>: user unknown")
    bounce(session, a[2], day1, "soft", "mailbox_full", "4.2.2", "452 4.2.2 mailbox full")
    bounce(session, b[0], day2, "block", "policy_blocked", "5.7.1", "554 5.7.1 listed at zen",
                          source="smtp")
    inbound(session, a[3], day1, "complaint")
    for touch in a[10:18] + b[10:12]:
        inbound(session, touch, day2, "reply")
    request = inbound(session, b[20], day2, "unsubscribe_request")
    session.add(SuppressionEntry(kind="email", value=b[20].recipient, reason="unsubscribed",
                                 added_at=request.received_at + timedelta(seconds=42)))
    check = {"domain": "outreach-acme.example", "checks": [{"name": "dkim", "status": "pass", "reason": "2048-bit"},
                                                          {"name": "spf", "status": "pass", "reason": "ok"}]}
    session.add(DomainCheckRecord(domain="outreach-acme.example", status="pass", checked_at=day1, report=check))
    failing = {"domain": "outreach-acme.example", "checks": [
        {"name": "dkim", "status": "fail", "reason": "no key at s1._domainkey"},
        {"name": "spf", "status": "pass", "reason": "ok"}]}
    session.add(DomainCheckRecord(domain="outreach-acme.example", status="fail", checked_at=day2, report=failing))
    report = DmarcReport(org_name="google.com", report_id="r1", domain="outreach-acme.example", begin_at=day1,
                         end_at=day2, received_at=now)
    session.add(report)
    session.flush()
    session.add_all([DmarcRecord(dmarc_report_id=report.id, source_ip="192.0.2.25", count=120, dkim="pass",
                                 spf="pass"),
                     DmarcRecord(dmarc_report_id=report.id, source_ip="203.0.113.9", count=7, dkim="fail",
                                 spf="fail")])
    session.add(Meeting(uid="m1", prospect_id=a[10].prospect_id, enrollment_id=a[10].enrollment_id,
                        sdr="sam.sdr@acme.example", ae="alex.ae@acme.example", start_at=now - timedelta(hours=5),
                        state="held", held_minutes=30, held_at=now - timedelta(hours=4), acceptance="accepted",
                        decided_at=now - timedelta(hours=1), created_at=day2))
    session.add(Meeting(uid="m2", prospect_id=a[11].prospect_id, enrollment_id=a[11].enrollment_id,
                        sdr="sam.sdr@acme.example", ae="alex.ae@acme.example", start_at=now - timedelta(hours=3),
                        state="no_show", no_show_fault="prospect", created_at=day2))
    session.commit()
    return {"sam": sam, "jo": jo}
