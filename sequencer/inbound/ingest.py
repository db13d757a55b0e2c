"""Inbound mail in: classify, store once, match to our touch, and apply the manager's rule.

Every message is stored exactly once (by Message-ID, else by content hash), so ingesting
the same message twice changes nothing. A message that cannot be read, or whose handling
fails, is quarantined with the reason instead of raising: one bad message never stops a
poller or loses the others in its batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from sequencer.core import decisions
from sequencer.core.config import Settings
from sequencer.core.models import Enrollment, InboundMessage, Mailbox, Touch
from sequencer.deliverability import dmarc
from sequencer.enrollments import lifecycle
from sequencer.inbound import match as matching
from sequencer.inbound.bounce_log import MAX_DIAGNOSTIC, record_bounce
from sequencer.inbound.classify import Classification, classify
from sequencer.inbound.evidence import withheld
from sequencer.inbound.storable import storable
from sequencer.meetings import rsvp
from sequencer.rules.actions import Event, apply, rulebook, withhold
from sequencer.rules.book import RuleBook

QUARANTINE_HEAD = 64 * 1024  # bytes of a quarantined message kept for a person to look at
MAX_KEY_ID = 500  # InboundMessage.dedupe_key holds 512 characters
MAX_REASON = 2000  # characters of a quarantine reason (an exception's text can carry a whole SQL statement)
EVENTS = {
    "reply": "reply", "out_of_office": "out_of_office", "auto_reply": "auto_reply", "bounce": "bounce",
    "complaint": "complaint", "unsubscribe_request": "unsubscribe_request", "left_company": "left_company",
}


@dataclass
class IngestResult:
    message: InboundMessage
    duplicate: bool
    action: str
    done: list[str] = field(default_factory=list)


def our_domains(session: Session) -> frozenset[str]:
    return frozenset(session.exec(select(Mailbox.sending_domain)).all())


def dedupe_key(result: Classification, raw: bytes) -> str:
    """The Message-ID, else the content's hash; an id too long for the column is hashed too."""
    if result.message_id and len(result.message_id) > MAX_KEY_ID:
        return "sha256-id:" + hashlib.sha256(result.message_id.encode()).hexdigest()
    return result.message_id or "sha256:" + hashlib.sha256(raw).hexdigest()


def event_for(result: Classification, match: matching.Match, enrollment: Enrollment | None) -> Event:
    """Translate a classification into the stop-rules event it represents.

    A bounce, complaint or unsubscribe request is about the address its matched touch went
    to: the recipients a DSN or a report lists are the sender's claim, the touch is what we
    know we sent (a listed recipient that differs is named in the summary). Whether the
    event may act at all is ``sequencer.inbound.evidence``'s call, made before ``apply``.
    """
    sent_to = match.touch.recipient if match.touch is not None else ""
    listed = [a.lower() for a in result.bounced_recipients] if result.kind == "bounce" else \
        [result.complained_recipient.lower()] if result.kind == "complaint" and result.complained_recipient else []
    address = {
        "bounce": sent_to or (listed or [""])[0],
        "complaint": sent_to or (listed or [""])[0],
        "unsubscribe_request": sent_to or result.from_address or "",
    }.get(result.kind, result.from_address or "")
    names = f" (it names {', '.join(listed)})" if sent_to and listed and listed != [sent_to] else ""
    summary = {
        "bounce": f"{result.bounce_type or ''} bounce ({result.bounce_reason or 'unknown'}) {result.status_code or ''} "
                  f"for {address}{names}"
        .replace("  ", " "),
        "complaint": f"spam complaint ({result.feedback_type or 'abuse'}) about {address}{names}",
    }.get(result.kind, f"{result.kind.replace('_', ' ')} {result.subject!r} from {result.from_address}")
    return Event(
        name=EVENTS[result.kind], summary=summary, address=(address or "").lower(),
        sender_domain=(result.from_address or "").rpartition("@")[2].lower() if result.kind != "bounce" else "",
        sentiment=result.sentiment if result.kind == "reply" else None,
        bounce_type=result.bounce_type, bounce_reason=result.bounce_reason if result.kind == "bounce" else None,
        return_date=result.return_date, new_contacts=result.new_contacts,
        touch=match.touch, enrollment=enrollment, strength=match.strength,
        text=(result.reply_text or "") if result.kind == "reply" else "",
        detail={"matched_by": match.method, "match_strength": match.strength} if match.touch else {},
    )


def ingest_raw(session: Session, now: datetime, settings: Settings, raw: bytes,
               rules: RuleBook | None = None) -> IngestResult:
    """Store one raw message once, match it, and apply the stop rule for what it is."""
    # Every string in the classification is the sender's text (headers, body, DSN fields):
    # made storable once here, so the row, its detail and the rule's event all take it.
    result = storable(classify(raw, our_domains=our_domains(session)))
    key = dedupe_key(result, raw)
    existing = session.exec(select(InboundMessage).where(InboundMessage.dedupe_key == key)).first()
    if existing is not None:
        return IngestResult(existing, True, "duplicate: already processed")
    if result.kind == "unparseable":
        return _quarantine(session, now, key, raw, result, f"unreadable message: {result.reason}")
    try:
        if dmarc.looks_like_report(raw):  # a receiver's DMARC aggregate report: sequencer.deliverability.dmarc
            stored = dmarc.ingest(session, now, key, raw, result.message_id or "", result.from_address or "",
                                  result.subject or "")
            if stored is not None:
                return IngestResult(stored[0], False, stored[1])
        if result.kind == "calendar_reply":  # an RSVP answers a meeting, not a touch: sequencer.meetings.rsvp
            return _calendar_reply(session, now, rules or rulebook(settings), key, result)
        return _handle(session, now, rules or rulebook(settings), key, result, settings.secret_key)
    except IntegrityError:
        session.rollback()
        existing = session.exec(select(InboundMessage).where(InboundMessage.dedupe_key == key)).first()
        if existing is not None:
            return IngestResult(existing, True, "duplicate: already processed")
        return _quarantine(session, now, key, raw, result, "could not be stored (integrity error)")
    except Exception as exc:
        session.rollback()
        return _quarantine(session, now, key, raw, result, f"handling failed: {type(exc).__name__}: {exc}")


def _handle(session: Session, now: datetime, rules: RuleBook, key: str, result: Classification,
            secret_key: str) -> IngestResult:
    match = matching.find(session, result, secret_key)
    enrollment = session.get(Enrollment, match.touch.enrollment_id) if match.touch else None
    row = InboundMessage(
        dedupe_key=key, message_id=result.message_id or "", from_address=result.from_address or "",
        subject=result.subject[:500], kind=result.kind, bounce_type=result.bounce_type or "",
        bounce_reason=result.bounce_reason or "", status_code=result.status_code or "",
        diagnostic=(result.diagnostic or "")[:MAX_DIAGNOSTIC],
        touch_id=match.touch.id if match.touch else None,
        enrollment_id=enrollment.id if enrollment else None, match_method=match.method,
        detail=storable({"classification": result.to_dict(), "match": match.to_dict()}), received_at=now,
    )
    session.add(row)
    session.flush()
    event = event_for(result, match, enrollment)
    why_not = withheld(result, match)  # evidence before action: see sequencer.inbound.evidence
    if why_not is not None:
        rule, done = withhold(session, now, rules, event, why_not), []
        row.detail = {**row.detail, "rule": rule.name, "actions": done, "not_acted": why_not}
        session.add(row)
        session.commit()
        return IngestResult(row, False, f"{rule.name}: {why_not}: not acted on", done)
    if result.kind == "bounce" and match.touch is not None:  # strongly matched (withheld above otherwise)
        record_bounce(session, now, match.touch, source="dsn", bounce_type=result.bounce_type or "",
                      bounce_reason=result.bounce_reason or "unknown", status_code=result.status_code,
                      diagnostic=result.diagnostic, about_our_message=result.about_our_message,
                      inbound_message_id=row.id)
    if result.kind == "bounce" and result.about_our_message and match.touch is not None:
        done = _our_message_refused(session, now, result, match.touch, enrollment)
        row.detail = {**row.detail, "rule": "", "actions": done}
        session.add(row)
        session.commit()
        return IngestResult(row, False, "our message was refused: " + ("; ".join(done) or "nothing to do"), done)
    rule, done = apply(session, now, rules, event)
    row.detail = {**row.detail, "rule": rule.name, "actions": done}
    session.add(row)
    session.commit()
    summary = "; ".join(done) if done else ("no matching touch" if match.touch is None else "nothing to do")
    return IngestResult(row, False, f"{rule.name}: {summary}", done)


def _our_message_refused(session: Session, now: datetime, result: Classification, touch: Touch,
                         enrollment: Enrollment | None) -> list[str]:
    """A bounce about the message itself (too big, bad syntax, its content) is our fault, as
    at send time: the touch is blocked for a person and its enrollment paused; the address is
    neither suppressed nor bounced, and no stop rule runs (the caller commits)."""
    reason = f"our message was refused ({result.status_code or 'no status'}): {(result.diagnostic or '')[:200]}"
    touch.state, touch.reason = "blocked", reason
    session.add(touch)
    decisions.record(session, now, "blocked", reason, enrollment=enrollment, prospect_id=touch.prospect_id,
                     touch_id=touch.id, guard="message")
    done = [f"blocked touch #{touch.id} for a person"]
    if enrollment is not None and enrollment.state == "active" and lifecycle.claim(session, enrollment):
        lifecycle.pause(session, now, enrollment, f"needs attention: {reason}")
        done.append(f"paused enrollment #{enrollment.id}")
    return done


def _calendar_reply(session: Session, now: datetime, rules: RuleBook, key: str,
                    result: Classification) -> IngestResult:
    """Store an RSVP once and apply it to its meeting when it may be believed (``rsvp.apply_reply``)."""
    outcome = rsvp.apply_reply(session, now, rules, uid=result.calendar_uid or "", attendee=result.calendar_attendee
                               or "", partstat=result.calendar_partstat or "", sequence=result.calendar_sequence or 0,
                               sender=result.from_address or "")
    row = InboundMessage(
        dedupe_key=key, message_id=result.message_id or "", from_address=result.from_address or "",
        subject=result.subject[:500], kind=result.kind, enrollment_id=outcome.enrollment_id,
        match_method="calendar_uid" if outcome.meeting_id else "",
        detail=storable({"classification": result.to_dict(), "meeting": outcome.to_dict()}), received_at=now,
    )
    session.add(row)
    session.commit()
    return IngestResult(row, False, outcome.action, outcome.done)


def _quarantine(session: Session, now: datetime, key: str, raw: bytes, result: Classification,
                reason: str) -> IngestResult:
    row = InboundMessage(
        dedupe_key=key, message_id=result.message_id or "", from_address=result.from_address or "",
        subject=(result.subject or "")[:500], kind="quarantined", quarantined=True, received_at=now,
        detail=storable({"reason": reason[:MAX_REASON], "size": len(raw),
                         "head": raw[:QUARANTINE_HEAD].decode("latin-1").replace("\x00", "\\0"),
                         "classification": result.to_dict()}),
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        row = session.exec(select(InboundMessage).where(InboundMessage.dedupe_key == key)).one()
        return IngestResult(row, True, "duplicate: already processed")
    return IngestResult(row, False, f"quarantined: {reason}")


def quarantine_raw(session: Session, now: datetime, raw: bytes, reason: str) -> IngestResult:
    """Store ``raw`` as quarantined with ``reason``: for a caller whose ingest of it raised.

    The session is rolled back first (nothing of the failed attempt is kept); the message
    is stored once, under the key ``ingest_raw`` would have used.
    """
    session.rollback()
    result = storable(classify(raw, our_domains=our_domains(session)))
    key = dedupe_key(result, raw)
    existing = session.exec(select(InboundMessage).where(InboundMessage.dedupe_key == key)).first()
    if existing is not None:
        return IngestResult(existing, True, "duplicate: already processed")
    return _quarantine(session, now, key, raw, result, reason)
