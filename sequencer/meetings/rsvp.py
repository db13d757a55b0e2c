"""An attendee's RSVP (iTIP REPLY) arriving as mail: believe it, or record why not.

Mail is evidence, not a command: anyone can write a REPLY with any UID, ATTENDEE and From.
A reply changes an attendee's PARTSTAT only when all of these hold:

* its UID is one of our meetings' (random, and known only to the people we sent it to);
* the ATTENDEE answering is on that meeting, and we sent them the invitation (the decision
  log says so: ``invites.sent_to``);
* the message comes From that attendee (RFC 6047 3.1: the originator is the attendee
  replying). The From header alone is forgeable, so it is never enough on its own: it
  must agree with an invitation only that address received;
* it answers the current SEQUENCE (an answer to the time before a reschedule says nothing
  about the new time, RFC 5546 2.1.5), and the meeting is still to happen.

A reply held back is still stored by ingest and its reason is in the decision log, so a
person sees it in ``explain``. A prospect's decline is the ``meeting_declined`` event for
the managers' rules (built in: ``[ignore]``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlmodel import Session, select

from sequencer.core import decisions
from sequencer.core.models import Enrollment, Meeting
from sequencer.meetings.invites import PARTSTATS, sent_to
from sequencer.meetings.moves import set_partstat
from sequencer.rules.actions import Event, apply
from sequencer.rules.book import RuleBook
from suppression.normalize import normalize_email

FINAL_STATES = ("held", "no_show", "canceled")


@dataclass
class RsvpOutcome:
    applied: bool
    action: str  # what happened, for people
    meeting_id: int | None = None
    enrollment_id: int | None = None
    prospect_id: int | None = None
    done: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def apply_reply(session: Session, now: datetime, rules: RuleBook, *, uid: str, attendee: str, partstat: str,
                sequence: int, sender: str) -> RsvpOutcome:
    """Apply one REPLY to its meeting if it may be believed (see the module); does not commit."""
    meeting = session.exec(select(Meeting).where(Meeting.uid == uid)).first() if uid else None
    if meeting is None:
        return _refused(session, now, None, f"RSVP for UID {uid!r}: no meeting of ours has this UID")
    answering = _address(attendee)
    label = f"RSVP {partstat} from {answering or repr(attendee)} for meeting #{meeting.id}"
    on_meeting = {str(a.get("email", "")).lower(): a for a in meeting.attendees}
    if partstat not in PARTSTATS:
        return _refused(session, now, meeting, f"{label}: PARTSTAT {partstat!r} is not one we record")
    if not answering or answering not in on_meeting:
        return _refused(session, now, meeting, f"{label}: {attendee!r} is not an attendee of this meeting")
    if answering not in sent_to(session, meeting):
        return _refused(session, now, meeting, f"{label}: we sent this attendee no invitation for it")
    if _address(sender) != answering:
        return _refused(session, now, meeting, f"{label}: the message comes from {sender or 'no address'!r}, "
                                               "not from the attendee")
    if sequence < meeting.ical_sequence:
        return _refused(session, now, meeting, f"{label}: it answers SEQUENCE {sequence}, the meeting is at "
                                               f"{meeting.ical_sequence} (it changed since)")
    if meeting.state in FINAL_STATES:
        return _refused(session, now, meeting, f"{label}: the meeting is already {meeting.state}")
    set_partstat(session, now, meeting, answering, partstat, via="rsvp")
    outcome = RsvpOutcome(True, f"{label}: recorded", meeting.id, meeting.enrollment_id, meeting.prospect_id)
    role = on_meeting[answering].get("role", "")
    if partstat == "DECLINED" and role == "prospect":
        enrollment = session.get(Enrollment, meeting.enrollment_id) if meeting.enrollment_id else None
        event = Event(name="meeting_declined", summary=f"{answering} declined meeting #{meeting.id} "
                      f"({meeting.title or 'untitled'}, {meeting.start_at:%Y-%m-%d %H:%M} UTC)",
                      address=answering, enrollment=enrollment, detail={"meeting_id": meeting.id})
        rule, done = apply(session, now, rules, event)
        outcome.done = done
        outcome.action += f"; rule {rule.name}: {', '.join(done) or 'nothing to do'}"
    return outcome


def _refused(session: Session, now: datetime, meeting: Meeting | None, why: str) -> RsvpOutcome:
    decisions.record(session, now, "meeting_rsvp_refused", f"{why}: not applied",
                     prospect_id=meeting.prospect_id if meeting else None,
                     meeting_id=meeting.id if meeting else None)
    return RsvpOutcome(False, f"{why}: not applied", meeting.id if meeting else None,
                       meeting.enrollment_id if meeting else None, meeting.prospect_id if meeting else None)


def _address(raw: str | None) -> str:
    try:
        return normalize_email(raw or "")
    except ValueError:
        return ""
