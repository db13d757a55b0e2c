"""Who a new meeting is for: its prospect (created when unknown), its enrollment, its SDR and its attendees.

A booking names a prospect by address and, at most, an enrollment; the rest (which
enrollment gets the credit, who the SDR is, the default title, each attendee's first
PARTSTAT) is worked out here from what is stored, so a booking from any shell resolves
the same people the same way.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from sequencer.core.models import Account, Enrollment, Prospect, SequenceVersion
from sequencer.enrollments import lifecycle
from sequencer.intake.prospects import upsert_prospect
from sequencer.meetings.checks import BOOKING_TOOLS, MeetingError


def _enrollment_of(session: Session, prospect: Prospect | None, enrollment_id: int | None) -> Enrollment | None:
    """The enrollment a meeting is credited to: the one named, else the prospect's running one, else its latest."""
    if enrollment_id is not None:
        enrollment = session.get(Enrollment, enrollment_id)
        if enrollment is None or prospect is None or enrollment.prospect_id != prospect.id:
            raise MeetingError(f"enrollment_id: enrollment #{enrollment_id} is not one of this prospect's")
        return enrollment
    if prospect is None:
        return None
    rows = session.exec(select(Enrollment).where(Enrollment.prospect_id == prospect.id)
                        .order_by(Enrollment.enrolled_at.desc(), Enrollment.id.desc())).all()
    return next((e for e in rows if e.state in lifecycle.ACTIVE_STATES), rows[0] if rows else None)


def _new_prospect(session: Session, now: datetime, email: str, name: str, sdr: str) -> Prospect:
    first, _, last = name.partition(" ")
    try:
        return upsert_prospect(session, now, email, {"first_name": first, "last_name": last, "owner": sdr,
                                                     "created_by": "meeting booking"})
    except ValueError as exc:
        raise MeetingError(f"prospect_email: {exc}") from None


def _sequence_owner(session: Session, enrollment: Enrollment | None) -> str:
    if enrollment is None:
        return ""
    version = session.get(SequenceVersion, enrollment.sequence_version_id)
    return (version.definition or {}).get("owner", "") if version else ""


def _default_title(session: Session, prospect: Prospect) -> str:
    name = " ".join(part for part in (prospect.first_name, prospect.last_name) if part) or prospect.email
    account = session.get(Account, prospect.account_id) if prospect.account_id else None
    return f"Meeting: {name}" + (f" ({account.name})" if account and account.name else "")


def _first_partstat(role: str, source: str) -> str:
    """An attendee's answer before they gave one: the prospect who booked through a tool has
    accepted (they picked the time), and the SDR who booked it has too."""
    if role == "sdr" or (role == "prospect" and source in BOOKING_TOOLS):
        return "ACCEPTED"
    return "NEEDS-ACTION"


def _attendees(prospect: Prospect, name: str, ae: str, sdr: str, source: str, extra: list[dict]) -> list[dict]:
    prospect_name = name or " ".join(p for p in (prospect.first_name, prospect.last_name) if p)
    people = [{"email": ae, "name": "", "role": "ae", "partstat": _first_partstat("ae", source)},
              {"email": prospect.email, "name": prospect_name, "role": "prospect",
               "partstat": _first_partstat("prospect", source)}]
    if sdr and sdr not in (ae, prospect.email):
        people.append({"email": sdr, "name": "", "role": "sdr", "partstat": _first_partstat("sdr", source)})
    seen = {person["email"] for person in people}
    for person in extra:
        if person["email"] not in seen:
            people.append(person)
            seen.add(person["email"])
    return people
