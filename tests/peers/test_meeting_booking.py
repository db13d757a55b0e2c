"""``sequencer.meetings.booking`` as the webhooks and RSVPs call it: external ids across
reschedules, replays and a race, attendees' answers, a withdrawn no-show. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlmodel import select

from sequencer.core.db import session as new_session
from sequencer.core.models import Decision, Meeting
from sequencer.meetings import booking
from sequencer.meetings.booking import BookingIn, MeetingError
from sequencer.rules.parse import load_rules

DANA = "dana@northwind.example"
AE = "alex.ae@acme.example"
RULES = load_rules(None)


def request(clock, **changes) -> BookingIn:
    values = {"prospect_email": DANA, "ae": AE, "start": clock.now() + timedelta(days=2), "duration_minutes": 30,
              "source": "calcom", "external_id": "bk-1", **changes}
    return BookingIn(**values)


def test_a_replayed_booking_returns_the_first_meeting_unchanged(session, clock, settings):
    first = booking.book(session, clock.now(), settings, RULES, request(clock))
    session.commit()

    again = booking.book(session, clock.now(), settings, RULES, request(clock, duration_minutes=60, ae="x@y.example"))

    assert again.id == first.id and again.duration_minutes == 30 and again.ae == AE
    assert len(session.exec(select(Meeting)).all()) == 1


def test_a_booking_tool_prospect_has_accepted_their_own_booking(session, clock, settings):
    meeting = booking.book(session, clock.now(), settings, RULES, request(clock))

    assert {p["role"]: p["partstat"] for p in meeting.attendees} == {"ae": "NEEDS-ACTION", "prospect": "ACCEPTED"}


def test_a_meeting_is_found_by_its_id_before_a_reschedule(session, clock, settings):
    meeting = booking.book(session, clock.now(), settings, RULES, request(clock))
    booking.set_partstat(session, clock.now(), meeting, AE, "accepted")

    booking.reschedule(session, clock.now(), meeting, clock.now() + timedelta(days=3), new_external_id="bk-2",
                       via="calcom")

    assert (meeting.external_id, meeting.previous_external_ids, meeting.ical_sequence) == ("bk-2", ["bk-1"], 1)
    assert booking.find_by_external(session, "calcom", "bk-1").id == meeting.id
    assert booking.find_by_external(session, "calcom", "bk-2").id == meeting.id
    assert booking.find_by_external(session, "calendly", "bk-1") is None
    assert booking.find_by_external(session, "calcom", "bk") is None
    assert {p["role"]: p["partstat"] for p in meeting.attendees}["ae"] == "NEEDS-ACTION"  # a new time, a new question


def test_a_reschedule_onto_another_meetings_id_is_refused(session, clock, settings):
    booking.book(session, clock.now(), settings, RULES, request(clock, external_id="other"))
    meeting = booking.book(session, clock.now(), settings, RULES, request(clock))

    with pytest.raises(MeetingError, match=r"external_id: 'other' already belongs to meeting #1"):
        booking.reschedule(session, clock.now(), meeting, clock.now() + timedelta(days=3), new_external_id="other")
    assert (meeting.external_id, meeting.ical_sequence) == ("bk-1", 0)


@pytest.mark.parametrize(("email", "partstat", "message"), [
    ("stranger@elsewhere.example", "ACCEPTED", "attendee_email: stranger@elsewhere.example is not an attendee"),
    (AE, "MAYBE", "partstat: 'MAYBE' is not one of NEEDS-ACTION, ACCEPTED, DECLINED, TENTATIVE"),
], ids=["not-an-attendee", "bad-partstat"])
def test_a_bad_answer_to_the_invite_is_refused(session, clock, settings, email, partstat, message):
    meeting = booking.book(session, clock.now(), settings, RULES, request(clock))
    session.commit()

    with pytest.raises(MeetingError, match=message):
        booking.set_partstat(session, clock.now(), meeting, email, partstat)
    session.rollback()
    assert [p["partstat"] for p in session.get(Meeting, meeting.id).attendees] == ["NEEDS-ACTION", "ACCEPTED"]


def test_a_withdrawn_no_show_can_then_be_held(session, clock, settings):
    meeting = booking.book(session, clock.now(), settings, RULES, request(clock))
    clock.advance(timedelta(days=2, minutes=10))
    booking.mark_no_show(session, clock.now(), meeting, "prospect", "no_answer", via="calendly", rules=RULES)

    booking.clear_no_show(session, clock.now(), meeting, by="calendly", via="calendly")
    booking.mark_held(session, clock.now(), meeting, 25, via="calendly")

    assert (meeting.state, meeting.no_show_fault, meeting.held_minutes) == ("held", "", 25)
    kinds = [d.kind for d in session.exec(select(Decision).order_by(Decision.id)) if d.kind.startswith("meeting_")]
    assert kinds == ["meeting_booked", "meeting_no_show", "meeting_no_show_cleared", "meeting_held"]
    with pytest.raises(MeetingError, match="state: meeting #1 is held, not a no-show"):
        booking.clear_no_show(session, clock.now(), meeting)


# PostgreSQL only: SQLite takes one writer at a time, so there the second delivery fails with a
# lock error and the tool's retry books once (tests/e2e/test_booking_webhooks.py covers that path).
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_same_booking_delivered_twice_at_once_books_once(engine, clock, settings):
    """Two deliveries race: the second waits on the first's unique key, then finds its meeting."""
    first = new_session(engine)
    meeting = booking.book(first, clock.now(), settings, RULES, request(clock))
    found: list = []

    def second() -> None:
        with new_session(engine) as other:
            found.append(booking.book(other, clock.now(), settings, RULES, request(clock)).id)
            other.commit()

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=1)
    assert thread.is_alive()  # waiting for the first transaction's unique key
    first.commit()
    thread.join(timeout=10)
    first.close()

    assert found == [meeting.id]
    with new_session(engine) as session:
        assert len(session.exec(select(Meeting)).all()) == 1
