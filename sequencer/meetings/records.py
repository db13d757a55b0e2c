"""Finding a stored meeting, locking it for a move, saving it and recording the move in its history.

The decision log is the meeting's append-only history (``meeting_<event>`` on the
prospect's timeline, what ``sequencer explain`` shows), so the booking and every move
write it the same way, through ``_record``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast
from sqlmodel import Session, select

from sequencer.core import decisions
from sequencer.core.models import Meeting
from sequencer.meetings.checks import MeetingError


def find_by_external(session: Session, source: str, external_id: str) -> Meeting | None:
    """The meeting a booking tool knows as ``external_id``, now or before a reschedule."""
    found = session.exec(select(Meeting).where(Meeting.source == source, Meeting.external_id == external_id)).first()
    if found is not None:
        return found
    # previous_external_ids is a JSON list: a text match finds the candidates, Python checks them.
    quoted = json.dumps(external_id)
    candidates = session.exec(select(Meeting).where(
        Meeting.source == source, cast(Meeting.previous_external_ids, String).contains(quoted, autoescape=True)))
    return next((meeting for meeting in candidates if external_id in (meeting.previous_external_ids or [])), None)

def as_dict(meeting: Meeting, prospect_email: str = "") -> dict[str, Any]:
    """The meeting as JSON-ready values (times as ISO 8601 UTC), for ``--json`` and the HTTP API."""
    values = meeting.model_dump()
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = value.isoformat()
    if prospect_email:
        values["prospect_email"] = prospect_email
    return values


def get(session: Session, meeting_id: int) -> Meeting:
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise MeetingError(f"id: no meeting #{meeting_id}")
    return meeting


def _lock(session: Session, meeting: Meeting) -> None:
    """Read the meeting again, locked until the transaction ends (PostgreSQL: FOR UPDATE), so
    two moves made at once (a webhook and a person) are judged one after the other. SQLite
    takes one writer at a time and refuses a write based on a stale read."""
    if meeting.id is None:
        raise MeetingError("id: the meeting is not stored")
    session.refresh(meeting, with_for_update=True)


def _save(session: Session, now: datetime, meeting: Meeting) -> None:
    meeting.updated_at = now
    session.add(meeting)
    session.flush()


def _record(session: Session, now: datetime, meeting: Meeting, event: str, reason: str, via: str,
            **detail: Any) -> None:
    decisions.record(session, now, f"meeting_{event}", reason, prospect_id=meeting.prospect_id,
                     meeting_id=meeting.id, via=via or "unspecified", **detail)
