"""Cal.com and Calendly deliveries, shaped as those tools send them, read into commands (no database)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sequencer.meetings import webhooks as wh
from sequencer.meetings.webhooks import Person, WebhookError, read_calcom, read_calendly

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
PROSPECT = "dana.whitfield@northwind-logistics.example"
AE = "priya.ae@acme.example"
CALENDLY_INVITEE = ("https://api.calendly.com/scheduled_events/d6c1a9e0-4b7f-4c1e-9a53-2f8e7b6d5c41"
                    "/invitees/3f9b2c71-8e4d-4a60-b1c5-7d2e9f0a6b18")
CALENDLY_NEW_INVITEE = ("https://api.calendly.com/scheduled_events/a04e7d3b-1c92-4f5e-8b6a-9d3c2e1f0b57"
                        "/invitees/c8e51f2a-6d3b-4079-a4e2-1b9f8c7d6e05")


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def body(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def refused(read, raw: bytes) -> WebhookError:
    with pytest.raises(WebhookError) as caught:
        read(raw)
    return caught.value


def test_calcom_booking_created() -> None:
    command = read_calcom(body(fixture("calcom_booking_created")))
    assert (command.source, command.trigger, command.action) == ("calcom", "BOOKING_CREATED", wh.BOOK)
    assert command.external_id == "9hT4qGz2WbLx7cVpR3mKsN"
    assert command.start == datetime(2026, 12, 8, 15, 0, tzinfo=UTC)
    assert command.duration_minutes == 30
    assert command.ae == Person(AE, "Priya Raman", "America/New_York")
    assert command.prospect == Person(PROSPECT, "Dana Whitfield", "Europe/Amsterdam")
    assert command.guests == (Person("ops.lead@northwind-logistics.example", "", "Europe/Amsterdam"),)
    assert command.location == "https://meet.google.com/dqv-hjtn-prx"  # the video link, not "integrations:google:meet"
    assert command.title == "Discovery call between Priya Raman and Dana Whitfield"
    assert command.sent_at == "2026-12-01T09:00:00.412Z"


def test_calcom_rescheduled_names_the_booking_it_replaces() -> None:
    command = read_calcom(body(fixture("calcom_booking_rescheduled")))
    assert command.action == wh.RESCHEDULE
    assert (command.external_id, command.previous_external_id) == ("Qm7vXe2LpT9aKc4ZsY1bWd", "9hT4qGz2WbLx7cVpR3mKsN")
    assert (command.start, command.duration_minutes) == (datetime(2026, 12, 10, 16, 0, tzinfo=UTC), 45)
    older = fixture("calcom_booking_rescheduled")  # older Cal.com payloads carry fromReschedule instead
    older["payload"]["fromReschedule"] = older["payload"].pop("rescheduleUid")
    assert read_calcom(body(older)).previous_external_id == "9hT4qGz2WbLx7cVpR3mKsN"


def test_calcom_cancelled_ended_and_no_shows() -> None:
    cancelled = read_calcom(body(fixture("calcom_booking_cancelled")))
    assert (cancelled.action, cancelled.external_id) == (wh.CANCEL, "9hT4qGz2WbLx7cVpR3mKsN")
    assert cancelled.reason == "We went with our incumbent provider for this year."
    ended = read_calcom(body(fixture("calcom_meeting_ended")))  # the flattened shape
    assert (ended.action, ended.external_id) == (wh.HELD, "9hT4qGz2WbLx7cVpR3mKsN")
    wrapped = fixture("calcom_meeting_ended")
    trigger = wrapped.pop("triggerEvent")
    assert read_calcom(body({"triggerEvent": trigger, "createdAt": "2026-12-08T15:30:00Z",
                             "payload": wrapped})).external_id == "9hT4qGz2WbLx7cVpR3mKsN"
    marked = read_calcom(body(fixture("calcom_no_show_updated")))
    assert (marked.action, marked.external_id, marked.absent) == (wh.NO_SHOW, "9hT4qGz2WbLx7cVpR3mKsN", (PROSPECT,))
    host = read_calcom(body(fixture("calcom_after_hosts_no_show")))
    assert (host.action, host.fault, host.absent) == (wh.NO_SHOW, "ae", (AE,))
    guests = fixture("calcom_after_hosts_no_show")
    guests["triggerEvent"] = "AFTER_GUESTS_CAL_VIDEO_NO_SHOW"
    del guests["payload"]["hostEmail"]
    assert (read_calcom(body(guests)).fault, read_calcom(body(guests)).reason) == (
        "prospect", "after_guests_cal_video_no_show")
    unmarked = fixture("calcom_no_show_updated")
    unmarked["payload"]["attendees"][0]["noShow"] = False
    assert read_calcom(body(unmarked)).action == wh.NO_SHOW_REMOVED


@pytest.mark.parametrize("trigger", ["PING", "BOOKING_REQUESTED", "MEETING_STARTED", "RECORDING_READY", "FOO_BAR"])
def test_calcom_other_triggers_are_ignored_whatever_their_payload(trigger: str) -> None:
    command = read_calcom(body({"triggerEvent": trigger, "createdAt": "2026-12-01T09:00:00Z", "payload": None}))
    assert command.action == wh.IGNORE
    assert trigger in command.reason


def calendly_booking() -> dict[str, Any]:
    return fixture("calendly_invitee_created")


def test_calendly_invitee_created() -> None:
    command = read_calendly(body(calendly_booking()))
    assert (command.source, command.trigger, command.action) == ("calendly", "invitee.created", wh.BOOK)
    assert command.external_id == CALENDLY_INVITEE
    assert (command.start, command.duration_minutes) == (datetime(2026, 12, 8, 15, 0, tzinfo=UTC), 30)
    assert command.ae == Person(AE, "Priya Raman")
    assert command.prospect == Person(PROSPECT, "Dana Whitfield", "Europe/Amsterdam")
    assert command.guests == (Person("ops.lead@northwind-logistics.example"),)
    assert (command.title, command.location) == ("30 Minute Discovery", "https://calendly.zoom.us/j/87412396051")


def test_calendly_reschedule_is_a_cancel_and_a_create() -> None:
    canceled = read_calendly(body(fixture("calendly_invitee_canceled_rescheduled")))
    assert canceled.action == wh.RESCHEDULE_PENDING
    assert (canceled.external_id, canceled.next_external_id) == (CALENDLY_INVITEE, CALENDLY_NEW_INVITEE)
    created = read_calendly(body(fixture("calendly_invitee_created_rescheduled")))
    assert created.action == wh.RESCHEDULE
    assert (created.external_id, created.previous_external_id) == (CALENDLY_NEW_INVITEE, CALENDLY_INVITEE)
    assert (created.start, created.duration_minutes) == (datetime(2026, 12, 10, 16, 0, tzinfo=UTC), 45)


def test_calendly_cancel_and_no_shows() -> None:
    canceled = read_calendly(body(fixture("calendly_invitee_canceled")))
    assert (canceled.action, canceled.external_id) == (wh.CANCEL, CALENDLY_INVITEE)
    assert canceled.reason == "We went with our incumbent provider for this year."
    marked = read_calendly(body(fixture("calendly_invitee_no_show_created")))
    assert (marked.action, marked.external_id, marked.fault, marked.absent) == (
        wh.NO_SHOW, CALENDLY_INVITEE, "prospect", (PROSPECT,))
    bare = {"event": "invitee_no_show.created", "created_at": "2026-12-08T15:41:09Z",
            "payload": {"uri": "https://api.calendly.com/invitee_no_shows/71d4", "invitee": CALENDLY_INVITEE,
                        "created_at": "2026-12-08T15:41:09Z"}}
    assert read_calendly(body(bare)).external_id == CALENDLY_INVITEE
    removed = read_calendly(body(fixture("calendly_invitee_no_show_deleted")))
    assert (removed.action, removed.external_id) == (wh.NO_SHOW_REMOVED, CALENDLY_INVITEE)


@pytest.mark.parametrize("event", ["routing_form_submission.created", "event_type.updated", "something.new"])
def test_calendly_other_events_are_ignored(event: str) -> None:
    command = read_calendly(body({"event": event, "created_at": "2026-12-01T09:00:00Z", "payload": {}}))
    assert command.action == wh.IGNORE


def broken(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``document`` with the field at dotted ``path`` set to ``value`` (or removed, for ...)."""
    document = copy.deepcopy(document)
    *parents, last = path.split(".")
    node: Any = document
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is ...:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return document


@pytest.mark.parametrize("path, value, status, says", [
    ("triggerEvent", ..., 422, "triggerEvent: missing"),
    ("payload", ..., 422, "payload: missing"),
    ("payload.uid", ..., 422, "payload.uid: missing"),
    ("payload.startTime", ..., 422, "payload.startTime: missing"),
    ("payload.startTime", "2026-12-08T15:00:00", 422, "payload.startTime: a time zone is required"),
    ("payload.endTime", "2026-12-08 16:00", 422, "payload.endTime: a time zone is required"),
    ("payload.startTime", "next tuesday", 422, "payload.startTime: not an ISO 8601 time"),
    ("payload.endTime", "2026-12-08T14:30:00Z", 422, "payload.endTime: 2026-12-08T14:30:00+00:00 is not after"),
    ("payload.organizer", ..., 422, "payload.organizer: missing"),
    ("payload.organizer.email", "", 422, "payload.organizer.email: missing"),
    ("payload.attendees", [], 422, "payload.attendees: no attendee besides the organizer"),
    ("payload.attendees.0.email", "not an address", 422, "payload.attendees[0].email:"),
])
def test_calcom_bad_fields_are_named(path: str, value: Any, status: int, says: str) -> None:
    error = refused(read_calcom, body(broken(fixture("calcom_booking_created"), path, value)))
    assert error.status == status
    assert says in str(error)


def test_calcom_reschedule_without_the_previous_uid_is_refused() -> None:
    document = broken(fixture("calcom_booking_rescheduled"), "payload.rescheduleUid", ...)
    error = refused(read_calcom, body(document))
    assert "payload.rescheduleUid: missing" in str(error)


@pytest.mark.parametrize("path, value, says", [
    ("event", ..., "event: missing"),
    ("payload.uri", ..., "payload.uri: missing"),
    ("payload.email", ..., "payload.email: missing"),
    ("payload.scheduled_event", ..., "payload.scheduled_event: missing"),
    ("payload.scheduled_event.start_time", "2026-12-08T15:00:00.000000", "payload.scheduled_event.start_time: a time"),
    ("payload.scheduled_event.end_time", "2026-12-08T14:00:00.000000Z", "payload.scheduled_event.end_time:"),
    ("payload.scheduled_event.event_memberships", [], "payload.scheduled_event.event_memberships: missing"),
    ("payload.scheduled_event.event_memberships.0.user_email", ...,
     "payload.scheduled_event.event_memberships[0].user_email: missing"),
])
def test_calendly_bad_fields_are_named(path: str, value: Any, says: str) -> None:
    error = refused(read_calendly, body(broken(calendly_booking(), path, value)))
    assert error.status == 422
    assert says in str(error)


def test_calendly_rescheduled_cancel_without_the_new_invitee_is_refused() -> None:
    document = broken(fixture("calendly_invitee_canceled_rescheduled"), "payload.new_invitee", None)
    assert "payload.new_invitee: missing" in str(refused(read_calendly, body(document)))


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b"\xff\xfe"])
def test_bodies_that_are_not_a_json_object_are_400(raw: bytes) -> None:
    for read in (read_calcom, read_calendly):
        error = refused(read, raw)
        assert error.status == 400
        assert str(error).startswith("body:")
