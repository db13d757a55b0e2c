"""Cal.com and Calendly webhooks over real HTTP (uvicorn on loopback), signed as those tools sign,
on SQLite and PostgreSQL; invitations go out through the real SMTP path to a loopback server."""

from __future__ import annotations

import copy
import email
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine_support import add_prospect, enrollment_of, fire, prepare, write_templates
from loopback_faults import FaultySmtpServer
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select
from suppression_fixtures import live_server
from typer.testing import CliRunner

from sequencer.app.api import create_app
from sequencer.app.cli import app as cli
from sequencer.core.clock import SimulatedClock
from sequencer.core.config import REPO_TEMPLATES, Settings
from sequencer.core.db import make_engine
from sequencer.core.db import session as new_session
from sequencer.core.models import Account, Decision, Meeting, MeetingNotice, Prospect
from sequencer.meetings.webhooks import MAX_BODY, sign_calcom, sign_calendly

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
NOW = datetime(2026, 12, 1, 9, 0, 30, tzinfo=UTC)  # the fixtures book on Dec 1 for Dec 8, 15:00 UTC
AFTER = datetime(2026, 12, 8, 15, 40, tzinfo=UTC)  # the meeting of the fixtures has taken place
CALCOM_SECRET = "calcom-webhook-secret-5d1f8a93"
CALENDLY_KEY = "calendly-signing-key-8e2b4c61"
PROSPECT = "dana.whitfield@northwind-logistics.example"
GUEST = "ops.lead@northwind-logistics.example"
AE = "priya.ae@acme.example"
CALCOM_UID, CALCOM_NEW_UID = "9hT4qGz2WbLx7cVpR3mKsN", "Qm7vXe2LpT9aKc4ZsY1bWd"
CALENDLY_INVITEE = ("https://api.calendly.com/scheduled_events/d6c1a9e0-4b7f-4c1e-9a53-2f8e7b6d5c41"
                    "/invitees/3f9b2c71-8e4d-4a60-b1c5-7d2e9f0a6b18")
CALENDLY_NEW_INVITEE = ("https://api.calendly.com/scheduled_events/a04e7d3b-1c92-4f5e-8b6a-9d3c2e1f0b57"
                        "/invitees/c8e51f2a-6d3b-4079-a4e2-1b9f8c7d6e05")


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@dataclass
class Live:
    client: httpx.Client
    engine: Engine
    clock: SimulatedClock
    settings: Settings
    smtp: FaultySmtpServer

    def calcom(self, document: dict[str, Any] | bytes, secret: str = CALCOM_SECRET,
               signature: str | None = None) -> httpx.Response:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        headers = {"content-type": "application/json",
                   "x-cal-signature-256": signature if signature is not None else sign_calcom(secret, body)}
        return self.client.post("/webhooks/calcom", content=body, headers=headers)

    def calendly(self, document: dict[str, Any] | bytes, key: str = CALENDLY_KEY, at: datetime | None = None,
                 signature: str | None = None) -> httpx.Response:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        stamp = at or self.clock.now() - timedelta(seconds=1)
        headers = {"content-type": "application/json",
                   "calendly-webhook-signature": signature if signature is not None
                   else sign_calendly(key, body, stamp)}
        return self.client.post("/webhooks/calendly", content=body, headers=headers)

    def meetings(self) -> list[Meeting]:
        with new_session(self.engine) as session:
            return list(session.exec(select(Meeting).order_by(Meeting.id)))

    def meeting(self) -> Meeting:
        (only,) = self.meetings()
        return only

    def decisions(self, kind: str) -> list[Decision]:
        with new_session(self.engine) as session:
            return list(session.exec(select(Decision).where(Decision.kind == kind).order_by(Decision.id)))

    def counts(self) -> dict[str, int]:
        """Rows in every table a delivery could write to: "nothing stored" is these unchanged."""
        with new_session(self.engine) as session:
            return {model.__name__: session.exec(select(func.count()).select_from(model)).one()
                    for model in (Meeting, Prospect, Account, Decision, MeetingNotice)}

    def invites(self) -> list[tuple[list[str], str, Message]]:
        """(recipients, METHOD, the text/calendar part) of every invitation the SMTP server received."""
        found = []
        for received in self.smtp.messages:
            message = email.message_from_bytes(received.content)
            for part in message.walk():
                if part.get_content_type() == "text/calendar" and not part.get_filename():
                    text = part.get_payload(decode=True).decode()
                    method = next(line.split(":", 1)[1] for line in text.splitlines() if line.startswith("METHOD:"))
                    found.append((received.rcpt_tos, method.strip(), part))
        return found


@pytest.fixture
def live(db_url: str, smtp: FaultySmtpServer, tmp_path: Path) -> Iterator[Live]:
    settings = Settings(
        database_url=db_url, templates_dir=write_templates(tmp_path / "templates"), primary_domain="acme.example",
        secret_key="test-secret-0123456789abcdefghij", unsubscribe_url="https://go.outreach-acme.example/u",
        calcom_webhook_secret=CALCOM_SECRET, calendly_signing_key=CALENDLY_KEY,
        mailboxes=[{"address": "sam@outreach-acme.example", "display_name": "Sam Rivera",
                    "owner": "sam.sdr@acme.example", "smtp_host": smtp.host, "smtp_port": smtp.port,
                    "daily_cap": 100}],
    )
    engine = make_engine(db_url)
    clock = SimulatedClock(NOW)
    with new_session(engine) as session:
        prepare(session, NOW, settings, settings.templates_dir)
    with live_server(create_app(settings, engine, clock)) as base, \
            httpx.Client(base_url=base, timeout=20, follow_redirects=False) as client:
        yield Live(client, engine, clock, settings, smtp)
    engine.dispose()


# ---------------------------------------------------------------------------- Cal.com, every trigger


def test_calcom_booking_created_books_stops_the_sequence_and_invites_the_ae(live: Live) -> None:
    with new_session(live.engine) as session:
        add_prospect(session, NOW, PROSPECT, first_name="Dana", last_name="Whitfield")
        fire(session, NOW, "intent_surge", email=PROSPECT, score=80)
        session.commit()
        assert enrollment_of(session, PROSPECT).state == "active"

    response = live.calcom(fixture("calcom_booking_created"))

    assert response.status_code == 200, response.text
    assert response.json()["result"] == "booked"
    meeting = live.meeting()
    assert (meeting.source, meeting.external_id, meeting.state, meeting.ical_sequence) == (
        "calcom", CALCOM_UID, "scheduled", 0)
    assert (meeting.ae, meeting.start_at, meeting.duration_minutes) == (AE, datetime(2026, 12, 8, 15, tzinfo=UTC), 30)
    assert meeting.location == "https://meet.google.com/dqv-hjtn-prx"
    assert {(a["email"], a["role"]) for a in meeting.attendees} >= {(AE, "ae"), (PROSPECT, "prospect"),
                                                                   (GUEST, "prospect")}
    with new_session(live.engine) as session:
        assert enrollment_of(session, PROSPECT).state == "stopped"
    (invite,) = live.invites()
    assert invite[0] == [AE] and invite[1] == "REQUEST"
    assert f"UID:{meeting.uid}" in invite[2].get_payload(decode=True).decode()
    (logged,) = live.decisions("meeting_webhook")
    assert (logged.detail["source"], logged.detail["trigger"], logged.detail["result"]) == (
        "calcom", "BOOKING_CREATED", "booked")


def test_calcom_replayed_delivery_is_one_meeting_and_one_invite(live: Live) -> None:
    document = fixture("calcom_booking_created")
    first = live.calcom(document)
    again = live.calcom(document)
    assert (first.json()["result"], again.json()["result"]) == ("booked", "duplicate")
    assert first.json()["meeting_id"] == again.json()["meeting_id"]
    assert len(live.meetings()) == 1
    assert len(live.invites()) == 1
    assert len(live.decisions("meeting_booked")) == 1


def test_calcom_rescheduled_moves_the_meeting_and_sends_the_next_sequence(live: Live) -> None:
    live.calcom(fixture("calcom_booking_created"))
    response = live.calcom(fixture("calcom_booking_rescheduled"))
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "rescheduled"
    meeting = live.meeting()
    assert (meeting.state, meeting.ical_sequence, meeting.external_id) == ("rescheduled", 1, CALCOM_NEW_UID)
    assert meeting.previous_external_ids == [CALCOM_UID]
    assert (meeting.start_at, meeting.duration_minutes) == (datetime(2026, 12, 10, 16, tzinfo=UTC), 45)
    methods = [(method, part.get_payload(decode=True).decode()) for _, method, part in live.invites()]
    assert [method for method, _ in methods] == ["REQUEST", "REQUEST"]
    assert "SEQUENCE:1" in methods[1][1] and f"UID:{meeting.uid}" in methods[1][1]
    assert live.calcom(fixture("calcom_booking_rescheduled")).json()["result"] == "duplicate"
    assert len(live.invites()) == 2


def test_calcom_cancelled_cancels_and_sends_method_cancel_once(live: Live) -> None:
    live.calcom(fixture("calcom_booking_created"))
    response = live.calcom(fixture("calcom_booking_cancelled"))
    assert response.json()["result"] == "canceled"
    meeting = live.meeting()
    assert (meeting.state, meeting.ical_sequence) == ("canceled", 1)
    assert meeting.cancel_reason == "We went with our incumbent provider for this year."
    assert [method for _, method, _ in live.invites()] == ["REQUEST", "CANCEL"]
    assert live.calcom(fixture("calcom_booking_cancelled")).json()["result"] == "duplicate"
    assert len(live.invites()) == 2


def test_calcom_meeting_ended_marks_it_held(live: Live) -> None:
    live.calcom(fixture("calcom_booking_created"))
    live.clock.set(AFTER)
    response = live.calcom(fixture("calcom_meeting_ended"))
    assert response.json()["result"] == "held"
    meeting = live.meeting()
    assert (meeting.state, meeting.held_minutes, meeting.recorded_by) == ("held", 30, "calcom MEETING_ENDED")
    assert live.calcom(fixture("calcom_meeting_ended")).json()["result"] == "duplicate"


def test_calcom_no_show_updated_is_the_prospects_no_show(live: Live) -> None:
    live.calcom(fixture("calcom_booking_created"))
    live.clock.set(AFTER)
    response = live.calcom(fixture("calcom_no_show_updated"))
    assert response.json()["result"] == "no_show"
    meeting = live.meeting()
    assert (meeting.state, meeting.no_show_fault, meeting.no_show_reason) == (
        "no_show", "prospect", "calcom_no_show_updated")
    # Cal.com sends MEETING_ENDED whatever happened: it does not turn the no-show into a held meeting.
    assert live.calcom(fixture("calcom_meeting_ended")).json()["result"] == "unchanged"
    assert live.meeting().state == "no_show"
    unmarked = fixture("calcom_no_show_updated")
    unmarked["payload"]["attendees"][0]["noShow"] = False
    assert live.calcom(unmarked).json()["result"] == "no_show_cleared"
    assert live.meeting().state == "scheduled"


def test_calcom_host_no_show_is_the_aes_fault(live: Live) -> None:
    live.calcom(fixture("calcom_booking_created"))
    live.clock.set(datetime(2026, 12, 8, 15, 5, tzinfo=UTC))
    assert live.calcom(fixture("calcom_after_hosts_no_show")).json()["result"] == "no_show"
    meeting = live.meeting()
    assert (meeting.no_show_fault, meeting.no_show_reason) == ("ae", "after_hosts_cal_video_no_show")


def test_calcom_a_guest_marked_absent_is_not_a_no_show_of_the_meeting(live: Live) -> None:
    live.calcom(fixture("calcom_booking_created"))
    live.clock.set(AFTER)
    document = fixture("calcom_no_show_updated")
    document["payload"]["attendees"] = [{"email": GUEST, "noShow": True}]
    assert live.calcom(document).json()["result"] == "unchanged"
    assert live.meeting().state == "scheduled"


# ---------------------------------------------------------------------------- Calendly, every event


def test_calendly_invitee_created_books(live: Live) -> None:
    response = live.calendly(fixture("calendly_invitee_created"))
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "booked"
    meeting = live.meeting()
    assert (meeting.source, meeting.external_id, meeting.ae) == ("calendly", CALENDLY_INVITEE, AE)
    assert meeting.location == "https://calendly.zoom.us/j/87412396051"
    with new_session(live.engine) as session:
        prospect = session.exec(select(Prospect).where(Prospect.email == PROSPECT)).one()
        assert (prospect.first_name, prospect.last_name, prospect.timezone) == ("Dana", "Whitfield",
                                                                                "Europe/Amsterdam")
    assert [(to, method) for to, method, _ in live.invites()] == [([AE], "REQUEST")]
    assert live.calendly(fixture("calendly_invitee_created")).json()["result"] == "duplicate"
    assert len(live.meetings()) == 1 and len(live.invites()) == 1


@pytest.mark.parametrize("order", ["canceled first", "created first"])
def test_calendly_reschedule_is_one_move_whichever_half_arrives_first(live: Live, order: str) -> None:
    live.calendly(fixture("calendly_invitee_created"))
    halves = [fixture("calendly_invitee_canceled_rescheduled"), fixture("calendly_invitee_created_rescheduled")]
    if order == "created first":
        halves.reverse()
    results = [live.calendly(half).json()["result"] for half in halves]
    assert results == (["pending", "rescheduled"] if order == "canceled first" else ["rescheduled", "duplicate"])
    meeting = live.meeting()
    assert (meeting.state, meeting.ical_sequence, meeting.external_id) == ("rescheduled", 1, CALENDLY_NEW_INVITEE)
    assert meeting.previous_external_ids == [CALENDLY_INVITEE]
    assert (meeting.start_at, meeting.duration_minutes) == (datetime(2026, 12, 10, 16, tzinfo=UTC), 45)
    assert [method for _, method, _ in live.invites()] == ["REQUEST", "REQUEST"]


def test_calendly_invitee_canceled_cancels(live: Live) -> None:
    live.calendly(fixture("calendly_invitee_created"))
    assert live.calendly(fixture("calendly_invitee_canceled")).json()["result"] == "canceled"
    meeting = live.meeting()
    assert (meeting.state, meeting.ical_sequence) == ("canceled", 1)
    assert meeting.cancel_reason == "We went with our incumbent provider for this year."
    assert [method for _, method, _ in live.invites()] == ["REQUEST", "CANCEL"]


def test_calendly_no_show_created_and_deleted(live: Live) -> None:
    live.calendly(fixture("calendly_invitee_created"))
    live.clock.set(AFTER)
    assert live.calendly(fixture("calendly_invitee_no_show_created")).json()["result"] == "no_show"
    meeting = live.meeting()
    assert (meeting.state, meeting.no_show_fault, meeting.no_show_reason) == (
        "no_show", "prospect", "calendly_invitee_no_show")
    assert live.calendly(fixture("calendly_invitee_no_show_created")).json()["result"] == "duplicate"
    assert live.calendly(fixture("calendly_invitee_no_show_deleted")).json()["result"] == "no_show_cleared"
    assert live.meeting().state == "scheduled"


def test_a_delivery_for_a_booking_we_never_saw_is_acknowledged_and_logged(live: Live) -> None:
    response = live.calendly(fixture("calendly_invitee_canceled"))
    assert response.status_code == 200
    assert response.json()["result"] == "unmatched"
    assert live.meetings() == []
    (logged,) = live.decisions("meeting_webhook")
    assert logged.detail["result"] == "unmatched" and logged.detail["external_id"] == CALENDLY_INVITEE


# ---------------------------------------------------------------------------- signatures, replays, secrets


@pytest.mark.parametrize("tool", ["calcom", "calendly"])
def test_a_bad_signature_is_401_and_stores_nothing(live: Live, tool: str) -> None:
    before = live.counts()
    if tool == "calcom":
        document = fixture("calcom_booking_created")
        responses = [live.calcom(document, secret="not-the-secret"), live.calcom(document, signature=""),
                     live.calcom(document, signature="no-secret-provided")]
        tampered = json.dumps(document).encode()
        responses.append(live.calcom(tampered.replace(b"15:30:00Z", b"16:30:00Z"),
                                     signature=sign_calcom(CALCOM_SECRET, tampered)))
    else:
        document = fixture("calendly_invitee_created")
        responses = [live.calendly(document, key="not-the-key"), live.calendly(document, signature=""),
                     live.calendly(document, signature="t=abc,v1=def")]
    assert [r.status_code for r in responses] == [401] * len(responses)
    assert all("Signature" in r.json()["detail"] for r in responses)
    assert live.counts() == before
    assert live.smtp.messages == []


def test_a_stale_calendly_timestamp_is_401_even_with_a_good_signature(live: Live) -> None:
    before = live.counts()
    response = live.calendly(fixture("calendly_invitee_created"), at=NOW - timedelta(minutes=10))
    assert response.status_code == 401
    assert "outside the 180 s tolerance" in response.json()["detail"]
    assert live.counts() == before


@pytest.mark.parametrize("tool", ["calcom", "calendly"])
def test_no_secret_configured_refuses_every_delivery(live: Live, tool: str) -> None:
    before = live.counts()
    if tool == "calcom":
        live.settings.calcom_webhook_secret = ""
        response = live.calcom(fixture("calcom_booking_created"), signature="no-secret-provided")
        signed = live.calcom(fixture("calcom_booking_created"), secret="")  # would be Cal.com's HMAC with ""
    else:
        live.settings.calendly_signing_key = ""
        response = live.calendly(fixture("calendly_invitee_created"))
        signed = live.calendly(fixture("calendly_invitee_created"), key="")
    assert (response.status_code, signed.status_code) == (503, 503)
    assert "is not configured" in response.json()["detail"]
    assert live.counts() == before


# ---------------------------------------------------------------------------- unknown attendees and AEs


def test_an_unknown_attendee_is_created_as_a_prospect_by_default(live: Live) -> None:
    assert live.settings.webhook_unknown_attendee == "create"
    assert live.calcom(fixture("calcom_booking_created")).json()["result"] == "booked"
    assert live.meeting().review == ""
    with new_session(live.engine) as session:
        assert session.exec(select(Prospect).where(Prospect.email == PROSPECT)).one()


def test_an_unknown_attendee_is_parked_for_review_and_listed(live: Live, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    live.settings.webhook_unknown_attendee = "park"
    response = live.calendly(fixture("calendly_invitee_created"))
    assert response.status_code == 200
    assert response.json()["result"] == "parked"
    meeting = live.meeting()
    assert meeting.review and PROSPECT in meeting.review
    assert [(to, method) for to, method, _ in live.invites()] == [([AE], "REQUEST")]  # on the AE's calendar
    (logged,) = [d for d in live.decisions("meeting_webhook") if d.detail["result"] == "parked"]
    assert logged.detail["delivery"] == fixture("calendly_invitee_created")  # the raw delivery, kept

    config = tmp_path / "sequencer.toml"
    config.write_text(f'database_url = "{live.settings.database_url}"\n'
                      f'secret_key = "{live.settings.secret_key}"\n'
                      f'templates_dir = "{REPO_TEMPLATES}"\n')
    monkeypatch.setenv("SEQUENCER_CONFIG", str(config))
    listed = CliRunner().invoke(cli, ["webhooks", "parked", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = [json.loads(line) for line in listed.output.splitlines()]
    assert (row["meeting_id"], row["source"], row["prospect"], row["ae"]) == (meeting.id, "calendly", PROSPECT, AE)
    assert row["delivery"]["payload"]["questions_and_answers"][0]["answer"].startswith("About 40 containers")
    table = CliRunner().invoke(cli, ["webhooks", "parked"])
    assert str(meeting.id) in table.output and "calendly" in table.output

    kept = CliRunner().invoke(cli, ["meetings", "review", str(meeting.id), "--by", "sam.sdr@acme.example"])
    assert kept.exit_code == 0, kept.output
    assert live.meeting().review == ""
    assert CliRunner().invoke(cli, ["webhooks", "parked", "--json"]).output == ""
    assert "no parked bookings" in CliRunner().invoke(cli, ["webhooks", "parked"]).output
    assert len(live.invites()) == 1


def test_an_unknown_ae_is_422_naming_the_field_when_aes_are_listed(live: Live) -> None:
    live.settings.meeting_aes = ["jordan.ae@acme.example"]
    before = live.counts()
    calcom = live.calcom(fixture("calcom_booking_created"))
    calendly = live.calendly(fixture("calendly_invitee_created"))
    assert (calcom.status_code, calendly.status_code) == (422, 422)
    assert calcom.json()["detail"].startswith("payload.organizer.email (ae): priya.ae@acme.example is not one of")
    assert calendly.json()["detail"].startswith("payload.scheduled_event.event_memberships[0].user_email (ae):")
    assert live.counts() == before
    live.settings.meeting_aes = [AE, "jordan.ae@acme.example"]
    assert live.calcom(fixture("calcom_booking_created")).json()["result"] == "booked"


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("tool", ["calcom", "calendly"])
def test_an_unknown_trigger_is_acknowledged_ignored_and_logged(live: Live, tool: str) -> None:
    if tool == "calcom":
        response = live.calcom({"triggerEvent": "BOOKING_PAYMENT_INITIATED", "createdAt": "2026-12-01T09:00:00Z",
                                "payload": fixture("calcom_booking_created")["payload"]})
    else:
        response = live.calendly({"event": "routing_form_submission.created", "created_at": "2026-12-01T09:00:00Z",
                                  "created_by": "https://api.calendly.com/users/5b8e", "payload": {"uri": "x"}})
    assert response.status_code == 200
    assert response.json()["result"] == "ignored"
    assert live.meetings() == []
    (logged,) = live.decisions("meeting_webhook")
    assert logged.detail["result"] == "ignored" and "not one sequencer acts on" in logged.reason


def with_field(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(document)
    *parents, last = path.split(".")
    node = document
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return document


@pytest.mark.parametrize("tool, path, value, says", [
    ("calcom", "payload.organizer", ..., "payload.organizer: missing"),
    ("calcom", "payload.uid", ..., "payload.uid: missing"),
    ("calcom", "payload.startTime", "2026-12-08T15:00:00", "payload.startTime: a time zone is required"),
    ("calcom", "payload.endTime", "2026-12-08T14:00:00Z", "payload.endTime: 2026-12-08T14:00:00+00:00 is not after"),
    ("calendly", "payload.email", ..., "payload.email: missing"),
    ("calendly", "payload.scheduled_event.start_time", "2026-12-08T15:00:00.000000",
     "payload.scheduled_event.start_time: a time zone is required"),
    ("calendly", "payload.scheduled_event.end_time", "2026-12-08T14:30:00.000000Z",
     "payload.scheduled_event.end_time: 2026-12-08T14:30:00+00:00 is not after"),
])
def test_bad_fields_are_4xx_naming_the_field_and_store_nothing(live: Live, tool: str, path: str, value: Any,
                                                               says: str) -> None:
    before = live.counts()
    if tool == "calcom":
        response = live.calcom(with_field(fixture("calcom_booking_created"), path, value))
    else:
        response = live.calendly(with_field(fixture("calendly_invitee_created"), path, value))
    assert response.status_code == 422
    assert says in response.json()["detail"]
    assert live.counts() == before


def test_an_illegal_move_is_409_and_changes_nothing(live: Live) -> None:
    live.calcom(fixture("calcom_booking_created"))
    live.clock.set(AFTER)
    live.calcom(fixture("calcom_meeting_ended"))
    before = live.counts()
    response = live.calcom(fixture("calcom_booking_cancelled"))
    assert response.status_code == 409
    assert "is already held and cannot be canceled" in response.json()["detail"]
    assert live.meeting().state == "held"
    assert live.counts() == before


def test_bodies_are_bounded_before_they_are_read(live: Live) -> None:
    before = live.counts()
    huge = b'{"triggerEvent": "BOOKING_CREATED", "pad": "' + b"x" * MAX_BODY + b'"}'
    assert live.calcom(huge).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused once it grows past the limit
        yield b'{"event": "invitee.created", "pad": "'
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    streamed = live.client.post("/webhooks/calendly", content=chunks(),
                                headers={"calendly-webhook-signature": "t=1,v1=00"})
    assert streamed.status_code == 413
    assert "larger than" in streamed.json()["detail"]
    assert live.counts() == before


@pytest.mark.parametrize("trigger", ["booking", "cancel"])
def test_the_same_delivery_several_times_at_once_acts_once_and_invites_once(live: Live, trigger: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    if trigger == "cancel":
        live.calcom(fixture("calcom_booking_created"))
        send, document, acted = live.calcom, fixture("calcom_booking_cancelled"), "canceled"
    else:
        send, document, acted = live.calendly, fixture("calendly_invitee_created"), "booked"
    invites_before = len(live.invites())
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: send(document), range(6)))
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    assert sorted(r.json()["result"] for r in responses) == [acted] + ["duplicate"] * 5
    assert len({r.json()["meeting_id"] for r in responses}) == 1
    assert len(live.meetings()) == 1
    assert len(live.invites()) == invites_before + 1


def test_an_invitation_that_cannot_be_sent_does_not_lose_the_meeting(live: Live) -> None:
    live.smtp.refuse(AE, "550 5.1.1 no such user")
    response = live.calcom(fixture("calcom_booking_created"))
    assert response.status_code == 200
    assert response.json()["result"] == "booked"
    assert response.json()["invited"] == []
    assert live.meeting().state == "scheduled"
    (invite,) = live.decisions("meeting_invite")
    assert AE in invite.detail["failed"]
