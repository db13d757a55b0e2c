"""Booking tools' webhooks, verified and read: a Cal.com or Calendly delivery becomes one ``Command``.

Pure: no database, no clock of its own (the caller passes ``now``), nothing sent. What a
command does to the meetings is ``sequencer.meetings.deliveries``; the route is
``sequencer.app.api.webhooks``.

Trust. A delivery is believed only after its signature checks out against a secret that we
configured and the tool holds (``calcom_webhook_secret``, ``calendly_signing_key``); nothing
in an unsigned or wrongly signed body is read, and with no secret configured nothing is
accepted at all (an endpoint that took unsigned deliveries would let anyone book, cancel or
no-show any meeting). The signature covers the exact bytes received, so the body is checked
before it is parsed. Calendly's signature also covers a timestamp, which must be recent: a
captured delivery cannot be replayed later. Cal.com's has no timestamp, so a replayed Cal.com
delivery is harmless only because applying a command twice changes nothing the second time.

The shapes are the tools' own:

- Cal.com (https://cal.com/docs/developing/guides/automation/webhooks): ``{"triggerEvent",
  "createdAt", "payload": {...}}``, signed with ``X-Cal-Signature-256``: the hex HMAC-SHA256
  of the raw body with the webhook's secret. ``payload.uid`` is the booking; a reschedule is
  a new booking whose ``rescheduleUid`` (``fromReschedule`` in older payloads) names the
  previous one. MEETING_ENDED is scheduled by Cal.com ahead of time and arrives either
  wrapped like the others or flattened (``{"triggerEvent", ...booking}``); both are read.
- Calendly (https://developer.calendly.com/api-docs/overview/webhooks/webhook-signatures):
  ``{"event", "created_at", "created_by", "payload": invitee}``, signed with
  ``Calendly-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">``.
  ``payload.uri`` (the invitee) is the booking. A reschedule is an ``invitee.canceled``
  with ``rescheduled: true`` and ``new_invitee``, plus an ``invitee.created`` whose
  ``old_invitee`` names the canceled one, in either order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from suppression.normalize import normalize_email

MAX_BODY = 512 * 1024  # a Cal.com booking with every field is a few kB; Calendly's invitee less
# Calendly's own verification example rejects a signature generated more than three minutes ago.
CALENDLY_TOLERANCE = timedelta(minutes=3)

CALCOM = "calcom"
CALENDLY = "calendly"
SOURCES = (CALCOM, CALENDLY)

# What a delivery asks for; "ignore" is an acknowledged trigger we do not act on.
BOOK, RESCHEDULE, RESCHEDULE_PENDING, CANCEL, HELD, NO_SHOW, NO_SHOW_REMOVED, IGNORE = (
    "book", "reschedule", "reschedule_pending", "cancel", "held", "no_show", "no_show_removed", "ignore",
)


class WebhookError(ValueError):
    """A delivery refused: ``status`` is the HTTP answer, the message names the header or field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Person:
    email: str
    name: str = ""
    timezone: str = ""
    role: str = "prospect"  # a guest from the prospect's side, or "ae" for a co-host


@dataclass(frozen=True)
class Command:
    """What one delivery asks of the meetings, in the tool's own identifiers."""

    source: str
    trigger: str
    action: str
    external_id: str = ""
    previous_external_id: str = ""  # reschedule: the booking it replaces
    next_external_id: str = ""  # Calendly's canceled half of a reschedule: the booking that replaces it
    start: datetime | None = None
    duration_minutes: int | None = None
    ae: Person | None = None
    prospect: Person | None = None
    guests: tuple[Person, ...] = ()
    title: str = ""
    location: str = ""
    reason: str = ""  # why: a cancel reason, a no-show reason code, why a trigger is ignored
    fault: str = ""  # no-show: prospect | ae
    absent: tuple[str, ...] = ()  # no-show: the addresses the tool marked absent
    sent_at: str = ""  # the tool's own time for the event (createdAt / created_at), as sent
    detail: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- signatures


def check_size(body: bytes) -> None:
    if len(body) > MAX_BODY:
        raise WebhookError(413, f"body: larger than {MAX_BODY} bytes")


def _secret(value: str, setting: str) -> bytes:
    if not value:
        raise WebhookError(503, f"{setting} is not configured: this endpoint accepts only signed deliveries "
                                f"(set {setting} in sequencer.toml or SEQUENCER_{setting.upper()})")
    return value.encode("utf-8")


def _same_hex(expected: str, presented: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), presented.strip().lower().encode("ascii", "replace"))


def verify_calcom(secret: str, body: bytes, header: str | None) -> None:
    """Raise ``WebhookError`` unless ``header`` is the hex HMAC-SHA256 of ``body`` under ``secret``."""
    key = _secret(secret, "calcom_webhook_secret")
    if not header:
        raise WebhookError(401, "X-Cal-Signature-256: missing (give the Cal.com webhook a secret)")
    if header.strip() == "no-secret-provided":  # what Cal.com sends for a webhook without a secret
        raise WebhookError(401, "X-Cal-Signature-256: the Cal.com webhook has no secret; set the same one on both")
    if not _same_hex(hmac.new(key, body, hashlib.sha256).hexdigest(), header):
        raise WebhookError(401, "X-Cal-Signature-256: signature does not match the body")


def verify_calendly(signing_key: str, body: bytes, header: str | None, now: datetime,
                    tolerance: timedelta = CALENDLY_TOLERANCE) -> None:
    """Raise ``WebhookError`` unless ``header`` signs ``t.body`` under ``signing_key`` with a recent ``t``."""
    key = _secret(signing_key, "calendly_signing_key")
    if not header:
        raise WebhookError(401, "Calendly-Webhook-Signature: missing")
    stamp, signatures = "", []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            stamp = value.strip()
        elif name == "v1":
            signatures.append(value.strip())
    if not stamp.isdigit() or not signatures:
        raise WebhookError(401, "Calendly-Webhook-Signature: expected t=<unix seconds>,v1=<hex signature>")
    expected = hmac.new(key, stamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    if not any(_same_hex(expected, signature) for signature in signatures):
        raise WebhookError(401, "Calendly-Webhook-Signature: signature does not match the body")
    age = now.timestamp() - int(stamp)
    if abs(age) > tolerance.total_seconds():
        when = "old" if age > 0 else "in the future"
        raise WebhookError(401, f"Calendly-Webhook-Signature: t={stamp} is {abs(int(age))} s {when}, outside the "
                                f"{int(tolerance.total_seconds())} s tolerance (a replayed or delayed delivery)")


def sign_calcom(secret: str, body: bytes) -> str:
    """The header Cal.com would send: for tests and for checking a configuration by hand."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def sign_calendly(signing_key: str, body: bytes, at: datetime) -> str:
    stamp = str(int(at.timestamp()))
    digest = hmac.new(signing_key.encode("utf-8"), stamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


# ----------------------------------------------------------------------------- reading fields


def _document(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookError(400, f"body: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise WebhookError(400, "body: expected a JSON object")
    return data


class _Fields:
    """Reads one JSON object, naming every missing or malformed field by its path."""

    def __init__(self, data: dict[str, Any], path: str) -> None:
        self.data = data
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def obj(self, key: str) -> _Fields:
        value = self.data.get(key)
        if not isinstance(value, dict):
            raise WebhookError(422, f"{self.name(key)}: {'missing' if value is None else 'expected an object'}")
        return _Fields(value, self.name(key))

    def text(self, key: str, required: bool = True) -> str:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise WebhookError(422, f"{self.name(key)}: missing")
            return ""
        if not isinstance(value, str):
            raise WebhookError(422, f"{self.name(key)}: expected a string")
        return value.strip()

    def email(self, key: str) -> str:
        value = self.text(key)
        try:
            return normalize_email(value)
        except ValueError as exc:
            raise WebhookError(422, f"{self.name(key)}: {exc}") from None

    def time(self, key: str) -> datetime:
        value = self.text(key)
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise WebhookError(422, f"{self.name(key)}: not an ISO 8601 time: {value!r}") from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise WebhookError(422, f"{self.name(key)}: a time zone is required (got {value!r})")
        return moment

    def items(self, key: str) -> list[_Fields]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise WebhookError(422, f"{self.name(key)}: expected a list")
        found = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise WebhookError(422, f"{self.name(key)}[{index}]: expected an object")
            found.append(_Fields(item, f"{self.name(key)}[{index}]"))
        return found


def _slot(fields: _Fields, start_key: str, end_key: str) -> tuple[datetime, int]:
    start, end = fields.time(start_key), fields.time(end_key)
    if end <= start:
        raise WebhookError(422, f"{fields.name(end_key)}: {end.isoformat()} is not after "
                                f"{fields.name(start_key)} {start.isoformat()}")
    return start, round((end - start).total_seconds() / 60) or 1


def _person(fields: _Fields, email_key: str = "email", name_key: str = "name", zone_key: str = "timeZone") -> Person:
    zone = fields.text(zone_key, required=False) if zone_key else ""
    return Person(fields.email(email_key), fields.text(name_key, required=False), zone)


# ----------------------------------------------------------------------------- Cal.com

_CALCOM_NO_SHOW = {"AFTER_HOSTS_CAL_VIDEO_NO_SHOW": "ae", "AFTER_GUESTS_CAL_VIDEO_NO_SHOW": "prospect"}


def read_calcom(body: bytes) -> Command:
    """The command in a (verified) Cal.com delivery; ``WebhookError`` 4xx naming the field if malformed."""
    data = _document(body)
    top = _Fields(data, "")
    trigger = top.text("triggerEvent")
    sent_at = top.text("createdAt", required=False)
    if trigger not in ("BOOKING_CREATED", "BOOKING_RESCHEDULED", "BOOKING_CANCELLED", "MEETING_ENDED",
                       "BOOKING_NO_SHOW_UPDATED", *_CALCOM_NO_SHOW):
        return Command(CALCOM, trigger, IGNORE, reason=f"Cal.com trigger {trigger} is not one sequencer acts on",
                       sent_at=sent_at)
    flattened = trigger == "MEETING_ENDED" and "payload" not in data  # how Cal.com's scheduled triggers come
    payload = _Fields(data, "") if flattened else top.obj("payload")
    if trigger in ("BOOKING_CREATED", "BOOKING_RESCHEDULED"):
        return _calcom_booking(trigger, payload, sent_at)
    if trigger == "BOOKING_CANCELLED":
        return Command(CALCOM, trigger, CANCEL, payload.text("uid"), sent_at=sent_at,
                       reason=payload.text("cancellationReason", required=False),
                       detail={"cancelled_by": payload.text("cancelledBy", required=False)})
    if trigger == "MEETING_ENDED":
        return Command(CALCOM, trigger, HELD, payload.text("uid"), sent_at=sent_at)
    if trigger == "BOOKING_NO_SHOW_UPDATED":
        marks = payload.items("attendees")
        if not marks:
            raise WebhookError(422, f"{payload.name('attendees')}: missing")
        absent = tuple(mark.email("email") for mark in marks if mark.data.get("noShow") is True)
        present = tuple(mark.email("email") for mark in marks if mark.data.get("noShow") is not True)
        action = NO_SHOW if absent else NO_SHOW_REMOVED
        return Command(CALCOM, trigger, action, payload.text("bookingUid"), sent_at=sent_at, absent=absent,
                       reason="calcom_no_show_updated", detail={"present": list(present),
                                                                "message": payload.text("message", required=False)})
    # Cal Video's own attendance check: the host, or every guest, did not join.
    host = payload.text("hostEmail", required=False)
    return Command(CALCOM, trigger, NO_SHOW, payload.text("bookingUid"), sent_at=sent_at,
                   fault=_CALCOM_NO_SHOW[trigger], reason=trigger.lower(), absent=(host,) if host else (),
                   detail={"message": payload.text("message", required=False)})


def _calcom_booking(trigger: str, payload: _Fields, sent_at: str) -> Command:
    uid = payload.text("uid")
    previous = ""
    if trigger == "BOOKING_RESCHEDULED":
        previous = payload.text("rescheduleUid", required=False) or payload.text("fromReschedule", required=False)
        if not previous:
            raise WebhookError(422, f"{payload.name('rescheduleUid')}: missing (the booking this one replaces)")
    start, minutes = _slot(payload, "startTime", "endTime")
    ae = _person(payload.obj("organizer"))
    attendees = [_person(attendee) for attendee in payload.items("attendees")]
    attendees = [person for person in attendees if person.email != ae.email]
    if not attendees:
        raise WebhookError(422, f"{payload.name('attendees')}: no attendee besides the organizer")
    location = payload.data.get("location")
    video = payload.data.get("metadata") if isinstance(payload.data.get("metadata"), dict) else {}
    where = location if isinstance(location, str) and "://" in location else video.get("videoCallUrl") or location
    return Command(
        CALCOM, trigger, RESCHEDULE if previous else BOOK, uid, previous_external_id=previous, start=start,
        duration_minutes=minutes, ae=ae, prospect=attendees[0], guests=tuple(attendees[1:]),
        title=payload.text("title", required=False), location=str(where or ""), sent_at=sent_at,
        detail={"event_type": payload.text("type", required=False), "booking_id": payload.data.get("bookingId"),
                "status": payload.text("status", required=False)},
    )


# ----------------------------------------------------------------------------- Calendly


def read_calendly(body: bytes) -> Command:
    """The command in a (verified) Calendly delivery; ``WebhookError`` 4xx naming the field if malformed."""
    top = _Fields(_document(body), "")
    trigger = top.text("event")
    sent_at = top.text("created_at", required=False)
    if trigger not in ("invitee.created", "invitee.canceled", "invitee_no_show.created", "invitee_no_show.deleted"):
        return Command(CALENDLY, trigger, IGNORE, reason=f"Calendly event {trigger} is not one sequencer acts on",
                       sent_at=sent_at)
    payload = top.obj("payload")
    if trigger.startswith("invitee_no_show."):
        # The payload is the invitee (with its no_show); a bare no-show record names it in "invitee".
        uri = payload.text("uri", required=False)
        invitee = uri if "/invitees/" in uri else payload.text("invitee")
        if trigger == "invitee_no_show.deleted":
            return Command(CALENDLY, trigger, NO_SHOW_REMOVED, invitee, sent_at=sent_at)
        absent = (payload.email("email"),) if payload.text("email", required=False) else ()
        return Command(CALENDLY, trigger, NO_SHOW, invitee, fault="prospect", reason="calendly_invitee_no_show",
                       absent=absent, sent_at=sent_at)
    uri = payload.text("uri")
    if trigger == "invitee.canceled":
        if payload.data.get("rescheduled") is True:
            return Command(CALENDLY, trigger, RESCHEDULE_PENDING, uri, next_external_id=payload.text("new_invitee"),
                           sent_at=sent_at)
        cancellation = payload.data.get("cancellation") if isinstance(payload.data.get("cancellation"), dict) else {}
        return Command(CALENDLY, trigger, CANCEL, uri, reason=str(cancellation.get("reason") or ""), sent_at=sent_at,
                       detail={"canceler_type": str(cancellation.get("canceler_type") or "")})
    event = payload.obj("scheduled_event")
    start, minutes = _slot(event, "start_time", "end_time")
    members = event.items("event_memberships")
    if not members:
        raise WebhookError(422, f"{event.name('event_memberships')}: missing (the host the meeting is with)")
    ae, *co_hosts = [_person(member, "user_email", "user_name", "") for member in members]
    parts = (payload.text("first_name", required=False), payload.text("last_name", required=False))
    name = payload.text("name", required=False) or " ".join(part for part in parts if part)
    prospect = Person(payload.email("email"), name, payload.text("timezone", required=False))
    guests = tuple(Person(guest.email("email")) for guest in event.items("event_guests"))
    previous = payload.text("old_invitee", required=False)
    return Command(
        CALENDLY, trigger, RESCHEDULE if previous else BOOK, uri, previous_external_id=previous, start=start,
        duration_minutes=minutes, ae=ae, prospect=prospect,
        guests=guests + tuple(Person(host.email, host.name, role="ae") for host in co_hosts),
        title=event.text("name", required=False), location=_calendly_location(event), sent_at=sent_at,
        detail={"event": event.text("uri", required=False), "status": payload.text("status", required=False)},
    )


def _calendly_location(event: _Fields) -> str:
    location = event.data.get("location")
    if not isinstance(location, dict):
        return ""
    return str(location.get("join_url") or location.get("location") or location.get("type") or "")
