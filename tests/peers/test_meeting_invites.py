"""Calendar invites for AEs: sent through the real SMTP path, read back, parsed by a second parser.

Each test starts where a meeting really comes from: the engine mails Dana, Dana answers,
and the meeting is booked (``booking.book``). The invitation then goes out through
``invites.deliver`` and ``channels.email.SmtpSender`` to the loopback SMTP server; what the
server received is parsed with the stdlib email package and its iCalendar part with
``vobject`` (not ``icalendar``, which wrote it). RSVPs come back through ``ingest_raw``,
shaped as Outlook and Google Calendar send them. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import mailbox
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
import vobject
from engine_support import prepare, write_templates
from inbound_support import reply, send_first_email
from sqlmodel import select
from typer.testing import CliRunner

from channels.email import SmtpSender
from sequencer.app.cli import app as cli
from sequencer.app.wiring import build as build_runtime
from sequencer.core.config import ConfigError
from sequencer.core.models import Decision, InboundMessage, Meeting
from sequencer.inbound.ingest import ingest_raw
from sequencer.meetings import booking, invites
from sequencer.rules.actions import rulebook
from sequencer.rules.parse import load_rules
from suppression.store import add_entry, make_spec

DANA = "dana@northwind.example"
AE = "alex.ae@acme.example"
SDR_MAILBOX = "sam@outreach-acme.example"  # owned by sam.sdr@acme.example, the sequence's owner
START = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)


@pytest.fixture
def sender():
    sender = SmtpSender(timeout=5)
    yield sender
    sender.close()


@pytest.fixture
def meeting(tmp_path, session, clock, settings, smtp, sender) -> Meeting:
    """Dana got the first email, answered it, and a meeting was booked with the AE."""
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates"))
    runtime = build_runtime(settings, sender, check_domains=False)
    (first,) = send_first_email(session, clock, runtime, smtp, DANA, last_name="Reyes", title="VP Engineering")
    ingest_raw(session, clock.now(), settings, reply(first, "Yes, interested - Thursday afternoon works for us."))
    made = booking.book(session, clock.now(), settings, rulebook(settings), booking.BookingIn(
        prospect_email=DANA, ae=AE, start=START, duration_minutes=45, title="Northwind x Acme: intro",
        location="https://meet.acme.example/intro-42"))
    session.commit()
    smtp.messages.clear()
    return made


def received(smtp, to: str) -> list[EmailMessage]:
    return [message_from_bytes(r.content, policy=policy.default) for r in smtp.messages if r.rcpt_tos == [to]]


def shape(message: EmailMessage) -> list:
    """The MIME tree: (type, [children]) for a multipart, the type (and disposition) for a leaf."""
    if message.is_multipart():
        return [message.get_content_type(), [shape(part) for part in message.iter_parts()]]
    disposition = message.get_content_disposition()
    return f"{message.get_content_type()}; {disposition}" if disposition else message.get_content_type()


def calendar_parts(message: EmailMessage) -> tuple[EmailMessage, EmailMessage]:
    inline = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    attached = next(p for p in message.walk() if p.get_content_disposition() == "attachment")
    return inline, attached


def read_back(message: EmailMessage):
    """The invitation as vobject reads it, after checking both copies of it are the same bytes."""
    inline, attached = calendar_parts(message)
    assert inline.get_payload(decode=True) == attached.get_payload(decode=True)
    return vobject.readOne(inline.get_payload(decode=True).decode("utf-8"))


def attendees(event) -> dict[str, dict]:
    return {a.value.lower().removeprefix("mailto:"): {k: v[0] for k, v in a.params.items()}
            for a in event.contents.get("attendee", [])}


def test_the_booking_invite_reaches_the_ae_in_the_shape_outlook_and_gmail_read(session, clock, settings, smtp,
                                                                               sender, meeting):
    sent = invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST")

    assert sent == [AE]
    (message,) = received(smtp, AE)
    assert smtp.messages[0].mail_from == SDR_MAILBOX and message["From"].addresses[0].addr_spec == SDR_MAILBOX
    assert message["Subject"] == "Invitation: Northwind x Acme: intro @ Thu 03 Dec 2026 16:00 UTC"
    assert shape(message) == ["multipart/mixed", [
        ["multipart/alternative", ["text/plain", "text/html", "text/calendar"]],
        "application/ics; attachment",
    ]]
    inline, attached = calendar_parts(message)
    assert (inline.get_param("method"), inline.get_content_charset()) == ("REQUEST", "utf-8")
    assert b"\r\nContent-Type: text/calendar; method=REQUEST; charset=UTF-8\r\n" in smtp.messages[0].content
    assert attached.get_filename() == "invite.ics"

    cal = read_back(message)
    event = cal.vevent
    assert cal.method.value == "REQUEST"
    assert event.uid.value == meeting.uid and meeting.uid.endswith("@sequencer")
    assert event.sequence.value == "0"
    assert event.dtstart.value == START and event.dtend.value == START + timedelta(minutes=45)
    assert event.dtstart.value.utcoffset() == timedelta(0)  # UTC, never floating
    assert event.dtstamp.value == clock.now()
    assert event.summary.value == "Northwind x Acme: intro"
    assert event.location.value == "https://meet.acme.example/intro-42"
    assert event.organizer.value.lower() == f"mailto:{SDR_MAILBOX}" and event.organizer.params["CN"] == ["Sam Rivera"]
    assert attendees(event) == {AE: {"CUTYPE": "INDIVIDUAL", "ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION",
                                     "RSVP": "TRUE"}}  # the prospect is not invited unless configured
    assert event.status.value == "CONFIRMED"
    raw = inline.get_payload(decode=True).decode()
    assert "DTSTART:20261203T160000Z" in raw and "DTEND:20261203T164500Z" in raw and "TZID" not in raw


def test_the_description_is_the_ae_brief(session, clock, settings, smtp, sender, meeting):
    invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST")

    (message,) = received(smtp, AE)
    description = read_back(message).vevent.description.value
    assert description == invites.brief(session, meeting)
    assert "Prospect: Dana Reyes, VP Engineering <dana@northwind.example>" in description
    assert "Account: Northwind (northwind.example)" in description
    assert "Started by: signal intent_surge on 2026-11-30" in description and "score: 80" in description
    assert 'email first "Hello Dana"' in description  # the touch
    assert "> Yes, interested - Thursday afternoon works for us." in description  # the reply that led to it
    text = message.get_body(("plain",)).get_content()
    assert description.replace("\n", "\r\n") in text.replace("\r\n", "\n").replace("\n", "\r\n")


def test_a_reschedule_keeps_the_uid_and_raises_the_sequence(session, clock, settings, smtp, sender, meeting):
    invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST")
    later = START + timedelta(days=1, hours=2)
    booking.reschedule(session, clock.now(), meeting, later)
    session.commit()

    assert invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST") == [AE]

    first, second = received(smtp, AE)
    assert second["Subject"].startswith("Updated invitation: ")
    before, after = read_back(first).vevent, read_back(second).vevent
    assert read_back(second).method.value == "REQUEST"
    assert after.uid.value == before.uid.value == meeting.uid
    assert (before.sequence.value, after.sequence.value) == ("0", "1")
    assert after.dtstart.value == later and after.dtend.value == later + timedelta(minutes=45)
    assert attendees(after)[AE]["PARTSTAT"] == "NEEDS-ACTION"  # a new time asks again


def test_a_cancel_keeps_the_uid_raises_the_sequence_and_says_cancelled(session, clock, settings, smtp, sender,
                                                                       meeting):
    invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST")
    booking.cancel(session, clock.now(), meeting, "prospect asked to postpone")
    session.commit()

    assert invites.deliver(session, clock.now(), settings, sender, meeting, "CANCEL") == [AE]

    _, canceled = received(smtp, AE)
    assert canceled["Subject"] == "Canceled: Northwind x Acme: intro @ Thu 03 Dec 2026 16:00 UTC"
    inline, _ = calendar_parts(canceled)
    assert inline.get_param("method") == "CANCEL"
    assert b"\r\nContent-Type: text/calendar; method=CANCEL; charset=UTF-8\r\n" in smtp.messages[-1].content
    cal = read_back(canceled)
    assert cal.method.value == "CANCEL"
    assert cal.vevent.uid.value == meeting.uid and cal.vevent.sequence.value == "1"
    assert cal.vevent.status.value == "CANCELLED"
    assert list(attendees(cal.vevent)) == [AE]
    assert "Reason: prospect asked to postpone" in canceled.get_body(("plain",)).get_content()


def test_the_prospect_is_invited_when_configured_unless_suppressed(session, clock, settings, smtp, sender, meeting):
    settings.meeting_invite_prospect = True

    assert invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST") == [AE, DANA]

    (to_dana,) = received(smtp, DANA)
    assert set(attendees(read_back(to_dana).vevent)) == {AE, DANA}
    assert attendees(read_back(to_dana).vevent)[DANA]["RSVP"] == "TRUE"

    add_entry(session, clock.now(), make_spec(DANA, reason="unsubscribed"))
    booking.reschedule(session, clock.now(), meeting, START + timedelta(hours=1))
    session.commit()
    assert invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST") == [AE]
    assert len(received(smtp, DANA)) == 1  # nothing more to a suppressed address
    decision = session.exec(select(Decision).where(Decision.kind == "meeting_invite")
                            .order_by(Decision.id.desc())).first()
    assert decision.detail["sent_to"] == [AE] and "suppressed" in decision.detail["skipped"][DANA]
    assert f"{DANA} not sent: suppressed" in decision.reason


def test_an_invite_delivered_twice_is_sent_once(session, clock, settings, smtp, sender, meeting):
    assert invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST") == [AE]
    assert invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST") == []

    assert len(received(smtp, AE)) == 1


def test_a_refused_invite_is_recorded_and_nothing_is_claimed_sent(session, clock, settings, smtp, sender, meeting):
    smtp.refuse(AE, "550 5.1.1 no such user")

    assert invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST") == []

    decision = session.exec(select(Decision).where(Decision.kind == "meeting_invite")).one()
    assert decision.detail["sent_to"] == [] and "550" in decision.detail["failed"][AE]
    assert invites.sent_to(session, meeting) == set()


def test_a_setting_that_is_not_a_boolean_is_refused_by_name(session, clock, settings, smtp, sender, meeting):
    settings.meeting_invite_prospect = "false"  # as a string in sequencer.toml: true in Python

    with pytest.raises(ConfigError, match="meeting_invite_prospect must be true or false, not 'false'"):
        invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST")
    assert smtp.messages == []


def test_an_unknown_method_is_refused_by_name(session, clock, settings, smtp, sender, meeting):
    with pytest.raises(booking.MeetingError, match="method: 'PUBLISH' is not one of REQUEST, CANCEL"):
        invites.deliver(session, clock.now(), settings, sender, meeting, "PUBLISH")
    assert smtp.messages == []


def test_a_method_that_does_not_fit_the_meeting_is_refused(session, clock, settings, smtp, sender, meeting):
    with pytest.raises(booking.MeetingError, match=f"method: meeting #{meeting.id} is scheduled: a CANCEL is sent"):
        invites.deliver(session, clock.now(), settings, sender, meeting, "CANCEL")
    booking.cancel(session, clock.now(), meeting)
    session.commit()
    with pytest.raises(booking.MeetingError, match=f"method: meeting #{meeting.id} is canceled: its invitation is"):
        invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST")
    assert smtp.messages == []


# --- RSVPs -----------------------------------------------------------------------------------


def rsvp_ics(meeting: Meeting, attendee: str, partstat: str, *, uid: str | None = None,
             sequence: int | None = None) -> str:
    """An iTIP REPLY as a calendar client writes it (by hand here: not with the library we test)."""
    return "\r\n".join([
        "BEGIN:VCALENDAR", "METHOD:REPLY", "PRODID:Microsoft Exchange Server 2010", "VERSION:2.0",
        "BEGIN:VEVENT", f"ATTENDEE;PARTSTAT={partstat};CN=Someone:mailto:{attendee.upper()}",
        f"ORGANIZER;CN=Sam Rivera:mailto:{SDR_MAILBOX}", "DTSTART:20261203T160000Z", "DTEND:20261203T164500Z",
        f"UID:{uid or meeting.uid}", f"SEQUENCE:{meeting.ical_sequence if sequence is None else sequence}",
        "DTSTAMP:20261130T170000Z", f"SUMMARY:{partstat.title()}: {meeting.title}", "END:VEVENT",
        "END:VCALENDAR", "",
    ])


def outlook_rsvp(sender: str, ics: str, word: str = "Accepted") -> bytes:
    """Outlook's shape: multipart/alternative, text/calendar; method=REPLY in base64."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, SDR_MAILBOX, f"{word}: Northwind x Acme: intro"
    message["Date"], message["Message-ID"] = "Mon, 30 Nov 2026 17:00:00 +0000", f"<rsvp-{abs(hash(ics))}@x.example>"
    message.set_content(f"{word}.")
    message.add_alternative(ics.encode(), maintype="text", subtype="calendar", cte="base64",
                            params={"method": "REPLY", "charset": "utf-8"})
    return bytes(message)


def google_rsvp(sender: str, ics: str) -> bytes:
    """Google Calendar's shape: the REPLY inline in multipart/alternative and attached as invite.ics."""
    boundary, inner = "000000000000a1b2c3", "000000000000d4e5f6"
    encoded = base64.encodebytes(ics.encode()).decode()
    return (
        f"From: Dana Reyes <{sender}>\r\nTo: {SDR_MAILBOX}\r\nSubject: Declined: Northwind x Acme: intro\r\n"
        f"Date: Mon, 30 Nov 2026 17:00:00 +0000\r\nMessage-ID: <google-{abs(hash(ics))}@google.com>\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f'--{boundary}\r\nContent-Type: multipart/alternative; boundary="{inner}"\r\n\r\n'
        f'--{inner}\r\nContent-Type: text/plain; charset="UTF-8"\r\n\r\nDana Reyes has declined this invitation.\r\n'
        f'--{inner}\r\nContent-Type: text/html; charset="UTF-8"\r\n\r\n<p>Dana Reyes has declined.</p>\r\n'
        f'--{inner}\r\nContent-Type: text/calendar; charset="UTF-8"; method=REPLY\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--{inner}--\r\n"
        f'--{boundary}\r\nContent-Type: application/ics; name="invite.ics"\r\n'
        f'Content-Disposition: attachment; filename="invite.ics"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        f"{encoded}\r\n--{boundary}--\r\n"
    ).encode()


def partstats(session, meeting: Meeting) -> dict[str, str]:
    session.expire_all()
    fresh = session.get(Meeting, meeting.id)
    return {person["email"]: person["partstat"] for person in fresh.attendees}


def test_the_ae_accepting_in_outlook_is_recorded_on_the_meeting(session, clock, settings, sender, meeting):
    invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST")

    result = ingest_raw(session, clock.now(), settings, outlook_rsvp(AE, rsvp_ics(meeting, AE, "ACCEPTED")))

    assert result.message.kind == "calendar_reply" and not result.duplicate
    assert result.message.detail["meeting"]["applied"] is True
    assert result.message.detail["classification"]["calendar_uid"] == meeting.uid
    assert partstats(session, meeting)[AE] == "ACCEPTED"
    assert session.exec(select(Decision).where(Decision.kind == "meeting_partstat")).one().detail["via"] == "rsvp"
    again = ingest_raw(session, clock.now(), settings, outlook_rsvp(AE, rsvp_ics(meeting, AE, "ACCEPTED")))
    assert again.duplicate


def test_the_prospect_declining_in_google_calendar_is_an_event_for_the_rules(tmp_path, session, clock, settings,
                                                                             sender, meeting):
    settings.meeting_invite_prospect = True
    invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST")

    result = ingest_raw(session, clock.now(), settings, google_rsvp(DANA, rsvp_ics(meeting, DANA, "DECLINED")))

    assert partstats(session, meeting)[DANA] == "DECLINED"
    ignored = session.exec(select(Decision).where(Decision.kind == "ignored")).one()
    assert ignored.rule == "builtin.meeting_declined" and ignored.prospect_id == meeting.prospect_id
    assert ignored.reason.startswith(f"{DANA} declined meeting #{meeting.id} (Northwind x Acme: intro")
    assert result.action == (f"RSVP DECLINED from {DANA} for meeting #{meeting.id}: recorded; "
                             "rule builtin.meeting_declined: ignored")

    # A team's own rule for it is applied: here, no more outreach to Dana for 90 days.
    path = tmp_path / "rules.yaml"
    path.write_text("defaults:\n  meeting_declined: [{suppress: {expires_after_days: 90, reason: manual}}]\n")
    booking.reschedule(session, clock.now(), meeting, START + timedelta(days=7))
    session.commit()
    invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST")
    ingest_raw(session, clock.now(), settings, google_rsvp(DANA, rsvp_ics(meeting, DANA, "DECLINED")),
               rules=load_rules(path))
    suppressed = session.exec(select(Decision).where(Decision.rule == "defaults.meeting_declined")).all()
    assert suppressed and all(d.prospect_id == meeting.prospect_id for d in suppressed)


@pytest.mark.parametrize("forgery", ["unknown uid", "not from the attendee", "never invited", "stale sequence",
                                     "not on the meeting"])
def test_a_forged_rsvp_changes_nothing(session, clock, settings, sender, meeting, forgery):
    invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST")
    if forgery == "stale sequence":
        booking.reschedule(session, clock.now(), meeting, START + timedelta(hours=2))
        session.commit()
        invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST")
    before = partstats(session, meeting)
    sender_address, ics = {
        "unknown uid": (AE, rsvp_ics(meeting, AE, "ACCEPTED", uid="0123abcd@sequencer")),
        "not from the attendee": ("mallory@attacker.example", rsvp_ics(meeting, AE, "DECLINED")),
        # Dana is an attendee, but the invitation went only to the AE (meeting_invite_prospect is off)
        "never invited": (DANA, rsvp_ics(meeting, DANA, "DECLINED")),
        "stale sequence": (AE, rsvp_ics(meeting, AE, "DECLINED", sequence=0)),
        "not on the meeting": ("mallory@attacker.example", rsvp_ics(meeting, "mallory@attacker.example", "ACCEPTED")),
    }[forgery]

    result = ingest_raw(session, clock.now(), settings, outlook_rsvp(sender_address, ics, "Declined"))

    assert result.message.kind == "calendar_reply"  # stored, for a person to see
    assert result.message.detail["meeting"]["applied"] is False
    assert "not applied" in result.action
    assert partstats(session, meeting) == before
    assert session.exec(select(Decision).where(Decision.kind == "meeting_partstat")).all() == []
    assert session.exec(select(Decision).where(Decision.kind == "ignored")).all() == []
    refused = session.exec(select(Decision).where(Decision.kind == "meeting_rsvp_refused")).one()
    assert refused.reason == result.action
    stored = session.exec(select(InboundMessage).where(InboundMessage.kind == "calendar_reply")).one()
    assert stored.id == result.message.id


def test_the_invite_and_the_rsvp_are_on_the_prospects_timeline(tmp_path, monkeypatch, session, clock, settings,
                                                               sender, meeting):
    """Over the CLI: an mbox with the AE's acceptance and a forged decline, then ``explain``."""
    invites.deliver(session, clock.now(), settings, sender, meeting, "REQUEST")
    box = mailbox.mbox(str(tmp_path / "rsvps.mbox"))
    box.add(outlook_rsvp(AE, rsvp_ics(meeting, AE, "ACCEPTED")))
    box.add(outlook_rsvp("mallory@attacker.example", rsvp_ics(meeting, AE, "DECLINED"), "Declined"))
    box.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("COLUMNS", "400")

    ingested = CliRunner().invoke(cli, ["inbound", "ingest", str(tmp_path / "rsvps.mbox")])
    result = CliRunner().invoke(cli, ["explain", DANA, "--tz", "UTC"])

    assert ingested.exit_code == 0, ingested.output
    assert partstats(session, meeting)[AE] == "ACCEPTED"
    assert result.exit_code == 0, result.output
    assert "the message comes from 'mallory@attacker.example', not from the attendee: not applied" in result.output
    assert f"meeting_invite: REQUEST (SEQUENCE 0) from {SDR_MAILBOX}: sent to {AE}" in result.output
    assert f"meeting_partstat: meeting #{meeting.id}: {AE} answered ACCEPTED" in result.output
