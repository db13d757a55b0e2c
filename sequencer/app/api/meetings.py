"""``POST /meetings``: book a meeting over HTTP (a CRM, a scheduling page, a script).

A write route, mounted with ``mount_writes`` (an API key with the ``admin`` scope): who
holds the key may book meetings for any prospect. The body is JSON with the fields of
``booking.BookingIn``; an unknown field is refused, so a typo is not dropped silently.
201 with the meeting when it was booked, 200 with the same meeting when ``external_id``
repeats one already booked (a retried request books once), 422 naming the field when the
input is bad, and then nothing is stored. The AE's invitation goes after the commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from sequencer.app.api import NowDep, SessionDep, SettingsDep
from sequencer.core.config import ConfigError
from sequencer.core.models import Prospect
from sequencer.meetings import booking
from sequencer.meetings.booking import BookingIn, MeetingError
from sequencer.rules.actions import rulebook

router = APIRouter()


class MeetingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prospect_email: str = Field(max_length=320)
    ae: str = Field(default="", max_length=320)
    start: datetime
    duration_minutes: int | None = None
    sdr: str = Field(default="", max_length=320)
    title: str = ""
    location: str = ""
    external_id: str | None = None
    prospect_name: str = ""
    extra_attendees: list[dict[str, Any]] = Field(default_factory=list, max_length=50)


@router.post("/meetings", status_code=201)
def book_meeting(body: MeetingRequest, response: Response, session: SessionDep, settings: SettingsDep,
                 now: NowDep) -> dict:
    request = BookingIn(
        prospect_email=body.prospect_email, ae=body.ae or settings.meeting_default_ae, start=body.start,
        duration_minutes=settings.meeting_default_duration if body.duration_minutes is None else body.duration_minutes,
        sdr=body.sdr, title=body.title, location=body.location, source="http", external_id=body.external_id,
        prospect_name=body.prospect_name, extra_attendees=body.extra_attendees)
    existing = booking.find_by_external(session, "http", body.external_id) if body.external_id else None
    try:
        meeting = booking.book(session, now, settings, rulebook(settings), request)
    except (MeetingError, ConfigError) as exc:
        session.rollback()
        raise HTTPException(422, str(exc)) from exc
    session.commit()
    if existing is not None:
        response.status_code = 200
        return {"meeting": booking.as_dict(meeting, body.prospect_email.strip().lower()), "duplicate": True,
                "invited": []}
    prospect = session.get(Prospect, meeting.prospect_id)
    return {"meeting": booking.as_dict(meeting, prospect.email), "duplicate": False,
            "invited": _invite(session, settings, now, meeting)}


def _invite(session, settings, now, meeting) -> list[str] | str:
    """Who got the invitation, or why nobody did; the meeting is stored either way."""
    from channels.email import DeliveryError
    from sequencer.app.wiring import sender_for
    from sequencer.meetings import invites
    from sequencer.sending import mailboxes

    sender = sender_for(settings)  # the sandbox's outbox when sandbox is set
    try:
        mailboxes.sync_from_settings(session, settings, now.date())
        return invites.deliver(session, now, settings, sender, meeting, "REQUEST")
    except (DeliveryError, MeetingError, ConfigError, mailboxes.MailboxError) as exc:
        session.rollback()
        return f"not sent: {exc}"
    finally:
        sender.close()
