"""The iCalendar objects on their own: invitations written by ``icalendar`` and read back by
``vobject`` (a second, independent parser), RSVPs recognised by the inbound classifier, and
the calendar layout of ``channels.message``. No database, no network."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import SimpleNamespace

import pytest
import vobject

from channels.message import _WIRE, OutgoingEmail, build, wire
from sequencer.core.models import Mailbox
from sequencer.inbound.classify import classify
from sequencer.meetings.checks import MeetingError
from sequencer.meetings.ical import parse_reply, read_reply
from sequencer.meetings.invites import calendar

UID = "5f0c1d2e3f405162738495a6b7c8d9e0@sequencer"


def a_meeting(**fields: object) -> SimpleNamespace:
    values = {
        "id": 7, "uid": UID, "prospect_id": 1, "ae": "alex.ae@acme.example", "sdr": "sam.sdr@acme.example",
        "title": "Intro: Northwind & Acme", "location": "https://meet.acme.example/x",
        "start_at": datetime(2026, 12, 3, 16, 0, tzinfo=UTC), "duration_minutes": 30, "ical_sequence": 0,
        "attendees": [
            {"email": "alex.ae@acme.example", "name": 'Alex "The Closer" Kim', "role": "ae",
             "partstat": "NEEDS-ACTION"},
            {"email": "dana@northwind.example", "name": "Dana Reyes", "role": "prospect", "partstat": "NEEDS-ACTION"},
            {"email": "sam.sdr@acme.example", "name": "", "role": "sdr", "partstat": "ACCEPTED"},
        ],
        "created_at": datetime(2026, 11, 30, 15, 0, tzinfo=UTC), "updated_at": None, "cancel_reason": "",
    }
    return SimpleNamespace(**{**values, **fields})


PROSPECT = SimpleNamespace(email="dana@northwind.example", first_name="Dana", last_name="Reyes",
                           timezone="America/New_York", account_id=None)


def read(ics: bytes):
    return vobject.readOne(ics.decode("utf-8"))


def test_a_request_read_back_by_a_second_parser():
    ics = calendar(a_meeting(), PROSPECT, "REQUEST", "sam@outreach-acme.example", "Line one\nline, two; three",
                   organizer_name="Sam Rivera", stamp=datetime(2026, 11, 30, 15, 5, tzinfo=UTC))

    cal = read(ics)
    event = cal.vevent
    assert cal.method.value == "REQUEST" and cal.version.value == "2.0"
    assert (event.uid.value, event.sequence.value) == (UID, "0")
    assert event.dtstart.value == datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
    assert event.dtend.value == datetime(2026, 12, 3, 16, 30, tzinfo=UTC)
    assert event.dtstamp.value == datetime(2026, 11, 30, 15, 5, tzinfo=UTC)
    assert event.summary.value == "Intro: Northwind & Acme"
    assert event.description.value == "Line one\nline, two; three"  # escaped by one parser, unescaped by the other
    assert event.organizer.value == "mailto:sam@outreach-acme.example"
    (ae,) = event.contents["attendee"]  # not the SDR, not the prospect (not invited by default)
    assert ae.value == "mailto:alex.ae@acme.example"
    assert ae.params["CN"] == ["Alex The Closer Kim"]  # a CN cannot hold DQUOTE (RFC 5545 3.2)
    assert (ae.params["RSVP"], ae.params["PARTSTAT"]) == (["TRUE"], ["NEEDS-ACTION"])


def test_the_prospect_is_an_attendee_when_invited():
    cal = read(calendar(a_meeting(), PROSPECT, "REQUEST", "sam@outreach-acme.example", "", include_prospect=True))

    assert [a.value for a in cal.vevent.contents["attendee"]] == ["mailto:alex.ae@acme.example",
                                                                   "mailto:dana@northwind.example"]


def test_times_in_another_zone_are_written_in_utc_never_floating():
    berlin = timezone(timedelta(hours=1))
    ics = calendar(a_meeting(start_at=datetime(2026, 12, 3, 17, 0, tzinfo=berlin)), PROSPECT, "REQUEST",
                   "sam@outreach-acme.example", "")

    assert b"DTSTART:20261203T160000Z\r\n" in ics and b"TZID" not in ics


def test_a_cancel_says_cancelled_and_asks_for_no_answer():
    cal = read(calendar(a_meeting(ical_sequence=2), PROSPECT, "CANCEL", "sam@outreach-acme.example", ""))

    assert cal.method.value == "CANCEL" and cal.vevent.status.value == "CANCELLED"
    assert cal.vevent.sequence.value == "2"
    assert "RSVP" not in cal.vevent.attendee.params


@pytest.mark.parametrize(("fields", "message"), [
    ({"start_at": datetime(2026, 12, 3, 16, 0)}, "start_at: a time zone is required"),
    ({"start_at": None}, "start_at: the meeting has no time"),
    ({"duration_minutes": 0}, "duration_minutes: must be a positive number of minutes, not 0"),
])
def test_a_meeting_that_cannot_be_an_invitation_is_refused_by_field(fields, message):
    with pytest.raises(MeetingError, match=message):
        calendar(a_meeting(**fields), PROSPECT, "REQUEST", "sam@outreach-acme.example", "")


def test_the_method_is_checked():
    with pytest.raises(MeetingError, match="method: 'REPLY' is not one of REQUEST, CANCEL"):
        calendar(a_meeting(), PROSPECT, "REPLY", "sam@outreach-acme.example", "")


# --- the email around it ---------------------------------------------------------------------


def an_invitation(ics: bytes, text: str = "A meeting has been booked for you.") -> OutgoingEmail:
    box = Mailbox(id=1, address="sam@outreach-acme.example", display_name="Sam Rivera",
                  sending_domain="outreach-acme.example")
    return OutgoingEmail(mailbox=box, to="alex.ae@acme.example", subject="Invitation", text=text,
                         message_id="inv1@outreach-acme.example", date=datetime(2026, 11, 30, 15, tzinfo=UTC),
                         calendar=ics, calendar_method="REQUEST")


@pytest.mark.parametrize("title", ["Intro", "Intro: Northwind & Acme — Grüße"], ids=["ascii", "utf-8"])
def test_the_calendar_part_carries_the_same_bytes_whatever_its_encoding(title, monkeypatch):
    ics = calendar(a_meeting(title=title), PROSPECT, "REQUEST", "sam@outreach-acme.example", "brief")
    boundaries = itertools.count()
    monkeypatch.setattr("channels.message.secrets.token_hex", lambda _n: f"{next(boundaries) % 2:032x}")

    data = wire(an_invitation(ics))

    assert data == build(an_invitation(ics)).as_bytes(policy=_WIRE)
    message = message_from_bytes(data, policy=policy.default)
    parts = {p.get_content_type(): p for p in message.walk()}
    assert parts["text/calendar"]["Content-Transfer-Encoding"] == ("7bit" if title.isascii() else "base64")
    assert parts["text/calendar"].get_payload(decode=True).replace(b"\r\n", b"\n") == ics.replace(b"\r\n", b"\n")
    assert parts["application/ics"].get_payload(decode=True) == ics
    assert read(parts["text/calendar"].get_payload(decode=True)).vevent.summary.value == title
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_a_method_that_could_inject_a_header_is_refused():
    email = an_invitation(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    email.calendar_method = "REQUEST\r\nBcc: x@evil.example"
    with pytest.raises(ValueError, match=r"calendar_method: .* is not an iTIP method"):
        wire(email)


# --- RSVPs -----------------------------------------------------------------------------------


def reply_ics(*attendee_lines: str, method: str = "REPLY", uid: str = UID, sequence: str = "1") -> bytes:
    return "\r\n".join(["BEGIN:VCALENDAR", f"METHOD:{method}", "PRODID:-//Google Inc//Google Calendar 70.9054//EN",
                        "VERSION:2.0", "BEGIN:VEVENT", *attendee_lines, f"UID:{uid}", f"SEQUENCE:{sequence}",
                        "DTSTAMP:20261130T170000Z", "ORGANIZER:mailto:sam@outreach-acme.example",
                        "END:VEVENT", "END:VCALENDAR", ""]).encode()


ACCEPT = "ATTENDEE;CN=Alex Kim;PARTSTAT=ACCEPTED:mailto:Alex.AE@acme.example"


def test_a_reply_is_read():
    assert read_reply(reply_ics(ACCEPT)).__dict__ == {"uid": UID, "attendee": "alex.ae@acme.example",
                                                      "partstat": "ACCEPTED", "sequence": 1,
                                                      "organizer": "sam@outreach-acme.example"}
    assert parse_reply(reply_ics(ACCEPT)) == (UID, "alex.ae@acme.example", "ACCEPTED")


@pytest.mark.parametrize("ics", [
    reply_ics(ACCEPT, method="REQUEST"),
    reply_ics(ACCEPT, "ATTENDEE;PARTSTAT=DECLINED:mailto:dana@northwind.example"),  # a REPLY has one ATTENDEE
    reply_ics("ATTENDEE;PARTSTAT=MAYBE:mailto:alex.ae@acme.example"),
    reply_ics("ATTENDEE;PARTSTAT=ACCEPTED:mailto:not-an-address"),
    reply_ics(ACCEPT, uid=""),
    reply_ics(ACCEPT, sequence="one"),
    b"BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nATTENDEE",
    b"\x00\xff" * 50,
], ids=["request", "two attendees", "unknown partstat", "bad address", "no uid", "bad sequence", "cut", "binary"])
def test_anything_else_is_not_a_reply(ics):
    assert read_reply(ics) is None


def rsvp_mail(ics: bytes, *, attached_message: bool = False) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "alex.ae@acme.example", "sam@outreach-acme.example"
    message["Subject"], message["Message-ID"] = "Accepted: Intro", "<r1@acme.example>"
    message.set_content("Accepted.")
    if attached_message:  # someone forwarding a message that carried the RSVP: not theirs to give
        inner = EmailMessage()
        inner["From"], inner["Subject"] = "alex.ae@acme.example", "Accepted: Intro"
        inner.set_content("Accepted.")
        inner.add_alternative(ics, maintype="text", subtype="calendar", params={"method": "REPLY"})
        message.add_attachment(inner)
    else:
        message.add_alternative(ics, maintype="text", subtype="calendar", params={"method": "REPLY"})
    return bytes(message)


def test_the_classifier_recognises_a_calendar_reply():
    result = classify(rsvp_mail(reply_ics(ACCEPT)))

    assert result.kind == "calendar_reply"
    assert (result.calendar_uid, result.calendar_attendee, result.calendar_partstat, result.calendar_sequence) == (
        UID, "alex.ae@acme.example", "ACCEPTED", 1)
    assert any("iTIP REPLY in a text/calendar part" in line for line in result.evidence)


@pytest.mark.parametrize("raw", [rsvp_mail(reply_ics(ACCEPT, method="REQUEST")),
                                 rsvp_mail(reply_ics(ACCEPT), attached_message=True)],
                         ids=["an invitation, not an answer", "an RSVP inside a forwarded message"])
def test_the_classifier_leaves_other_calendar_mail_alone(raw):
    assert classify(raw).kind == "reply"
