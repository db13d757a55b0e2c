"""Calendar invitations for a meeting: iTIP (RFC 5546) carried over email by iMIP (RFC 6047).

On booking the AE (and the prospect, with ``meeting_invite_prospect``) gets a
``METHOD:REQUEST`` with a stable UID (``Meeting.uid``) and ``SEQUENCE`` 0; a reschedule sends
the same UID with the next SEQUENCE (``booking.reschedule`` counts it), a cancel a
``METHOD:CANCEL`` with ``STATUS:CANCELLED``. Times are written in UTC (``...Z``), never
floating, so no VTIMEZONE is needed. The email around it is ``channels.message``'s calendar
layout (text, HTML and ``text/calendar`` as alternatives, the ``.ics`` attached).

What comes back is an attendee's ``METHOD:REPLY`` (``read_reply``); ``sequencer.meetings.rsvp``
decides whether to believe it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from sqlmodel import Session, select

from channels.email import DeliveryError, SmtpSender
from channels.message import OutgoingEmail
from sequencer.core import decisions
from sequencer.core.config import ConfigError, Settings
from sequencer.core.models import Decision, Mailbox, Meeting, Prospect
from sequencer.meetings.brief import brief
from sequencer.meetings.checks import MeetingError
from sequencer.meetings.ical import PARTSTATS, CalendarReply, parse_reply, read_reply
from suppression.store import find_suppression

__all__ = ["PARTSTATS", "CalendarReply", "brief", "calendar", "deliver", "invite_email", "invitees", "parse_reply",
           "read_reply"]

PRODID = "-//sequencer//meetings//EN"
METHODS = ("REQUEST", "CANCEL")
INVITE_DECISION = "meeting_invite"  # one per deliver(): who got which METHOD at which SEQUENCE
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f"]')  # a CN parameter cannot hold DQUOTE or controls (RFC 5545 3.1)


def invitees(meeting: Meeting, prospect: Prospect | None, include_prospect: bool) -> list[dict[str, Any]]:
    """Who the invitation is for: the AE (and any other attendee who is not the SDR or the
    prospect), plus the prospect when ``include_prospect``. Each once, by address."""
    people: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(email: str, name: str, role: str) -> None:
        key = email.strip().lower()
        if key and key not in seen:
            seen.add(key)
            people.append({"email": email.strip(), "name": name, "role": role})

    add(meeting.ae, next((a.get("name", "") for a in meeting.attendees if a.get("role") == "ae"
                          and str(a.get("email", "")).lower() == meeting.ae.lower()), ""), "ae")
    for attendee in meeting.attendees:
        role = attendee.get("role", "")
        if role == "sdr" or (role == "prospect" and not include_prospect):
            continue
        add(str(attendee.get("email", "")), str(attendee.get("name", "")), role)
    if include_prospect and prospect is not None:
        add(prospect.email, _full_name(prospect), "prospect")
    return people


def calendar(meeting: Meeting, prospect: Prospect | None, method: str, organizer_email: str, brief_text: str, *,
             include_prospect: bool = False, organizer_name: str = "", stamp: datetime | None = None) -> bytes:
    """The iCalendar object (RFC 5545) of one iTIP message about ``meeting``: REQUEST or CANCEL.

    ``include_prospect`` lists the prospect as an attendee (as ``deliver`` does when the
    prospect is invited); ``stamp`` is DTSTAMP, when the message is made (default: the
    meeting's last change). ORGANIZER is the SDR's sending mailbox: replies come back to it.
    """
    method = _method(method)
    start = _utc(meeting.start_at, "start_at")
    if meeting.duration_minutes is None or meeting.duration_minutes <= 0:
        raise MeetingError(f"duration_minutes: must be a positive number of minutes, not {meeting.duration_minutes}")
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    event = icalendar.Event()
    event.add("uid", meeting.uid)
    event.add("sequence", meeting.ical_sequence)
    event.add("dtstamp", _utc(stamp or meeting.updated_at or meeting.created_at or datetime.now(UTC), "stamp"))
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=meeting.duration_minutes))
    event.add("summary", _title(meeting, prospect))
    if meeting.location:
        event.add("location", meeting.location)
    if brief_text:
        event.add("description", brief_text)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add("organizer", _address(organizer_email, organizer_name))
    for person in invitees(meeting, prospect, include_prospect):
        if person["email"].lower() == organizer_email.lower():
            continue
        params = {"CUTYPE": "INDIVIDUAL", "ROLE": "REQ-PARTICIPANT"}
        if method == "REQUEST":  # every REQUEST asks again: a new time needs a new answer (RFC 5546 2.1.4)
            params |= {"PARTSTAT": "NEEDS-ACTION", "RSVP": "TRUE"}
        event.add("attendee", _address(person["email"], person["name"], params))
    cal.add_component(event)
    return cal.to_ical()


def invite_email(meeting: Meeting, prospect: Prospect | None, method: str, mailbox: Mailbox, settings: Settings,
                 brief_text: str, *, to: str = "", stamp: datetime | None = None) -> OutgoingEmail:
    """The email carrying the invitation to ``to`` (default: the AE), from ``mailbox``."""
    method = _method(method)
    include = _invite_prospect(settings)
    ics = calendar(meeting, prospect, method, mailbox.address, brief_text, include_prospect=include,
                   organizer_name=mailbox.display_name, stamp=stamp)
    title = _title(meeting, prospect)
    start = _utc(meeting.start_at, "start_at")
    when = f"{start:%a %d %b %Y %H:%M} UTC"
    if method == "CANCEL":
        subject, opening = f"Canceled: {title} @ {when}", "This meeting has been canceled."
    elif meeting.ical_sequence:
        subject, opening = f"Updated invitation: {title} @ {when}", "This meeting has moved to a new time."
    else:
        subject, opening = f"Invitation: {title} @ {when}", "A meeting has been booked for you."
    lines = [opening, "", f"When: {when} ({meeting.duration_minutes} minutes)"]
    local = _local_time(start, prospect)
    if local:
        lines.append(f"       {local} for the prospect")
    if meeting.location:
        lines.append(f"Where: {meeting.location}")
    if method == "CANCEL" and meeting.cancel_reason:
        lines.append(f"Reason: {meeting.cancel_reason}")
    if brief_text:
        lines += ["", brief_text]
    return OutgoingEmail(mailbox=mailbox, to=to or meeting.ae, subject=subject, text="\n".join(lines),
                         calendar=ics, calendar_method=method, date=stamp)


def deliver(session: Session, now: datetime, settings: Settings, sender: SmtpSender, meeting: Meeting,
            method: str) -> list[str]:
    """Send the invitation (REQUEST) or its cancellation (CANCEL) for ``meeting``; return who got it.

    From the SDR's mailbox (the one whose owner or address is ``meeting.sdr``, else the first
    one), to the AE and the other invitees (``invitees``); to the prospect too with
    ``meeting_invite_prospect``, unless the prospect's address is suppressed. Someone who
    already got this METHOD at this SEQUENCE is not sent it again, so a shell that calls
    this twice (a webhook delivered twice) sends once. A refused send is recorded and the
    others still go. One ``meeting_invite`` decision records the outcome, and it is
    committed here: an email that left must never be forgotten by a later rollback.
    """
    method = _method(method)
    if (method == "CANCEL") != (meeting.state == "canceled") or meeting.state in ("held", "no_show"):
        raise MeetingError(f"method: meeting #{meeting.id} is {meeting.state}: "
                           + ("its invitation is a CANCEL" if meeting.state == "canceled" else
                              "it has happened, nothing to send" if meeting.state in ("held", "no_show") else
                              "a CANCEL is sent once it is canceled"))
    prospect = session.get(Prospect, meeting.prospect_id)
    mailbox = organizer_mailbox(session, meeting)
    text = brief(session, meeting)
    already = sent_to(session, meeting, method)
    sent: list[str] = []
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    message_ids: dict[str, str] = {}
    for person in invitees(meeting, prospect, _invite_prospect(settings)):
        address = person["email"]
        if address.lower() in already:
            skipped[address] = f"already sent this {method} (SEQUENCE {meeting.ical_sequence})"
            continue
        if person["role"] != "ae":  # an AE is our own colleague; anyone else may have asked never to hear from us
            why = _suppressed(session, now, address, prospect if person["role"] == "prospect" else None)
            if why:
                skipped[address] = why
                continue
        email = invite_email(meeting, prospect, method, mailbox, settings, text, to=address, stamp=now)
        try:
            message_ids[address] = sender.send(email)
        except DeliveryError as exc:
            failed[address] = str(exc)
            continue
        sent.append(address)
    parts = [f"{method} (SEQUENCE {meeting.ical_sequence}) from {mailbox.address}: "
             f"sent to {', '.join(sent) or 'nobody'}"]
    parts += [f"{address} not sent: {why}" for address, why in {**skipped, **failed}.items()]
    decisions.record(session, now, INVITE_DECISION, "; ".join(parts), prospect_id=meeting.prospect_id,
                     enrollment=None, meeting_id=meeting.id, uid=meeting.uid, method=method,
                     sequence=meeting.ical_sequence, mailbox=mailbox.address, sent_to=[a.lower() for a in sent],
                     message_ids=message_ids, skipped=skipped, failed=failed)
    session.commit()
    return sent


def organizer_mailbox(session: Session, meeting: Meeting) -> Mailbox:
    """The SDR's sending mailbox (owner or address equal to ``meeting.sdr``), else the first one."""
    sdr = (meeting.sdr or "").strip().lower()
    boxes = session.exec(select(Mailbox).order_by(Mailbox.id)).all()
    if not boxes:
        raise MeetingError("sdr: there is no sending mailbox to send the invitation from (add one to mailboxes)")
    own = [box for box in boxes if sdr and sdr in (box.owner.strip().lower(), box.address.strip().lower())]
    return (own or boxes)[0]


def sent_to(session: Session, meeting: Meeting, method: str | None = None) -> set[str]:
    """The addresses we sent an invitation for ``meeting`` to (of ``method`` at its current
    SEQUENCE, when given), read from the decision log that ``deliver`` writes."""
    rows = session.exec(select(Decision.detail).where(Decision.kind == INVITE_DECISION,
                                                      Decision.prospect_id == meeting.prospect_id)).all()
    found: set[str] = set()
    for detail in rows:
        if detail.get("meeting_id") != meeting.id:
            continue
        if method is not None and (detail.get("method"), detail.get("sequence")) != (method, meeting.ical_sequence):
            continue
        found.update(str(address).lower() for address in detail.get("sent_to", []))
    return found


def _method(method: str) -> str:
    value = (method or "").strip().upper()
    if value not in METHODS:
        raise MeetingError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    return value


def _invite_prospect(settings: Settings) -> bool:
    value = settings.meeting_invite_prospect
    if not isinstance(value, bool):  # "false" in sequencer.toml is a string, and a true one
        raise ConfigError(f"meeting_invite_prospect must be true or false, not {value!r}")
    return value


def _suppressed(session: Session, now: datetime, address: str, prospect: Prospect | None) -> str:
    try:
        entry = find_suppression(session, now, address, prospect.account_id if prospect else None)
    except ValueError as exc:
        return f"not a valid address ({exc})"
    return f"suppressed ({entry.kind} {entry.value}, {entry.reason})" if entry is not None else ""


def _utc(value: datetime | None, name: str) -> datetime:
    if value is None:
        raise MeetingError(f"{name}: the meeting has no time")
    if value.tzinfo is None or value.utcoffset() is None:
        raise MeetingError(f"{name}: a time zone is required")
    return value.astimezone(UTC)


def _title(meeting: Meeting, prospect: Prospect | None) -> str:
    if meeting.title:
        return meeting.title
    who = (_full_name(prospect) or prospect.email) if prospect is not None else "a prospect"
    return f"Meeting with {who}"


def _full_name(prospect: Prospect | None) -> str:
    return " ".join(p for p in (prospect.first_name, prospect.last_name) if p).strip() if prospect else ""


def _local_time(start: datetime, prospect: Prospect | None) -> str:
    zone = getattr(prospect, "timezone", "") or "UTC"
    if zone == "UTC":
        return ""
    try:
        local = start.astimezone(ZoneInfo(zone))
    except (KeyError, ValueError, OSError):  # an unknown zone name: say nothing rather than something wrong
        return ""
    return f"{local:%a %d %b %Y %H:%M} {zone}"


def _address(email: str, name: str = "", params: dict[str, str] | None = None) -> icalendar.vCalAddress:
    address = icalendar.vCalAddress(f"mailto:{email.strip()}")
    clean = _UNSAFE_NAME.sub("", name or "").strip()
    if clean:
        address.params["CN"] = clean
    address.params.update(params or {})
    return address
