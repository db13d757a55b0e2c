"""Meeting metrics on a hand-built set whose answers are worked out by hand below.

Now is Monday 2026-11-30 15:00 UTC (ISO week 2026-W49). Two SDRs (sam, jo), two AEs
(alex, blair), two sequences (funding enrolled by funding_round signals, hiring by hiring
signals); the acceptance window is 14 days, qualified-held needs 15 minutes.

    #   sdr  ae     sequence  start  state / outcome                      held_at  decided
    1   sam  alex   funding   11-24  held 30, accepted                    11-24    11-26
    2   sam  alex   funding   11-25  held 10, accepted (too short)        11-25    11-25
    3   sam  blair  hiring    11-26  no-show, prospect's fault
    4   sam  blair  hiring    11-27  no-show, the AE's fault
    5   jo   alex   hiring    11-27  held 45, rejected no_budget          11-27    11-28
    6   jo   alex   -         11-28  held 30, pending (in the window)     11-28
    7   jo   blair  funding   11-10  held 30, pending (overdue)           11-10
    8   jo   blair  funding   11-20  no-show, the SDR's fault
    9   sam  alex   funding   12-02  scheduled (not yet)
    10  sam  alex   funding   11-25  canceled
    11  jo   alex   hiring    11-29  scheduled, never recorded (time passed)
    12  sam  alex   funding   11-03  held 30, accepted 20 days later      11-03    11-23
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sequencer.core.models import Enrollment, Meeting, Prospect, SequenceVersion, Signal, Touch
from sequencer.meetings import metrics
from sequencer.meetings.metrics import Durations, Rate

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
SAM, JO = "sam.sdr@acme.example", "jo.sdr@acme.example"
ALEX, BLAIR = "alex.ae@acme.example", "blair.ae@acme.example"
WINDOW, MINIMUM = 14, 15


def day(month: int, date: int, hour: int = 15) -> datetime:
    return datetime(2026, month, date, hour, 0, tzinfo=UTC)


ROWS = [  # id, sdr, ae, sequence, start, state, extra
    (1, SAM, ALEX, "funding", day(11, 24), "held", {"held_minutes": 30, "held_at": day(11, 24), "acceptance":
                                                    "accepted", "decided_at": day(11, 26)}),
    (2, SAM, ALEX, "funding", day(11, 25), "held", {"held_minutes": 10, "held_at": day(11, 25), "acceptance":
                                                    "accepted", "decided_at": day(11, 25)}),
    (3, SAM, BLAIR, "hiring", day(11, 26), "no_show", {"no_show_fault": "prospect", "no_show_reason": "no_answer"}),
    (4, SAM, BLAIR, "hiring", day(11, 27), "no_show", {"no_show_fault": "ae", "no_show_reason": "double_booked"}),
    (5, JO, ALEX, "hiring", day(11, 27), "held", {"held_minutes": 45, "held_at": day(11, 27), "acceptance": "rejected",
                                                  "rejection_reason": "no_budget", "decided_at": day(11, 28)}),
    (6, JO, ALEX, None, day(11, 28), "held", {"held_minutes": 30, "held_at": day(11, 28)}),
    (7, JO, BLAIR, "funding", day(11, 10), "held", {"held_minutes": 30, "held_at": day(11, 10)}),
    (8, JO, BLAIR, "funding", day(11, 20), "no_show", {"no_show_fault": "sdr", "no_show_reason": "wrong_link"}),
    (9, SAM, ALEX, "funding", day(12, 2), "scheduled", {}),
    (10, SAM, ALEX, "funding", day(11, 25), "canceled", {"cancel_reason": "travel"}),
    (11, JO, ALEX, "hiring", day(11, 29), "scheduled", {}),
    (12, SAM, ALEX, "funding", day(11, 3), "held", {"held_minutes": 30, "held_at": day(11, 3), "acceptance":
                                                    "accepted", "decided_at": day(11, 23)}),
]
# First touches (sent) and bookings, for time to meeting: meeting -> (touch times, booked at)
TOUCHES = {1: ([day(11, 20)], day(11, 22)),                     # 48 h
           5: ([day(11, 21)], day(11, 22, 3)),                  # 12 h
           3: ([day(11, 21), day(11, 20)], day(11, 23))}        # 72 h, from the earlier of the two


@pytest.fixture
def meetings(session) -> None:
    versions = {name: SequenceVersion(name=name, version=1, content_hash=name, definition={})
                for name in ("funding", "hiring")}
    signal_types = {"funding": "funding_round", "hiring": "hiring"}
    session.add_all(versions.values())
    session.flush()
    for number, sdr, ae, sequence, start, state, extra in ROWS:
        prospect = Prospect(email=f"p{number}@customer{number}.example", created_at=day(11, 1))
        session.add(prospect)
        session.flush()
        enrollment_id = None
        if sequence:
            signal = Signal(type=signal_types[sequence], dedupe_key=f"s{number}", prospect_id=prospect.id)
            session.add(signal)
            session.flush()
            enrollment = Enrollment(prospect_id=prospect.id, sequence_version_id=versions[sequence].id,
                                    sequence_name=sequence, state="stopped", signal_id=signal.id,
                                    enrolled_at=day(11, 1))
            session.add(enrollment)
            session.flush()
            enrollment_id = enrollment.id
        touches, booked = TOUCHES.get(number, ([], start - timedelta(days=1)))
        for index, sent in enumerate(touches):
            session.add(Touch(enrollment_id=enrollment_id, prospect_id=prospect.id, step_index=index,
                              channel="email", state="sent", sent_at=sent, created_at=sent))
        session.add(Meeting(id=number, uid=f"m{number}@sequencer", prospect_id=prospect.id,
                            enrollment_id=enrollment_id, sdr=sdr, ae=ae, start_at=start, duration_minutes=30,
                            state=state, created_at=booked, updated_at=booked, start_set_at=booked, **extra))
    session.commit()


def test_show_rate_leaves_out_canceled_future_and_the_aes_no_shows(session, meetings) -> None:
    # passed and counted: sam 1 2 3 12 (4 is the AE's, 9 future, 10 canceled); jo 5 6 7 8 11
    assert metrics.show_rate(session, NOW) == {"all": Rate(6, 9)}
    assert metrics.show_rate(session, NOW, by="sdr") == {JO: Rate(3, 5), SAM: Rate(3, 4)}
    assert metrics.show_rate(session, NOW, by="ae") == {ALEX: Rate(5, 6), BLAIR: Rate(1, 3)}
    assert metrics.show_rate(session, NOW, by="sequence") == {"(none)": Rate(1, 1), "funding": Rate(4, 5),
                                                              "hiring": Rate(1, 3)}
    assert metrics.show_rate(session, NOW, by="signal_type") == {"(none)": Rate(1, 1), "funding_round": Rate(4, 5),
                                                                 "hiring": Rate(1, 3)}
    assert metrics.show_rate(session, NOW, by="week") == {"2026-W45": Rate(1, 1), "2026-W46": Rate(1, 1),
                                                          "2026-W47": Rate(0, 1), "2026-W48": Rate(4, 6)}
    assert metrics.show_rate(session, NOW, since=day(11, 23, 0), until=day(11, 30, 0)) == {"all": Rate(4, 6)}
    assert metrics.show_rate(session, NOW)["all"].value == pytest.approx(2 / 3)


def test_an_ae_no_show_is_never_charged_to_the_sdr(session, meetings) -> None:
    assert metrics.no_shows_by_fault(session) == {"all": {"prospect": 1, "ae": 1, "sdr": 1}}
    assert metrics.no_shows_by_fault(session, by="sdr") == {JO: {"sdr": 1}, SAM: {"prospect": 1}}
    assert metrics.no_shows_by_fault(session, by="ae") == {BLAIR: {"prospect": 1, "ae": 1, "sdr": 1}}
    assert metrics.show_rate(session, NOW, by="sdr")[SAM] == Rate(3, 4)  # meeting 4 is not in sam's denominator


def test_qualified_held_is_held_long_enough_and_accepted(session, meetings) -> None:
    assert metrics.qualified_held(session, MINIMUM) == {"all": 2}  # 1 and 12; 2 was too short, 5 rejected
    assert metrics.qualified_held(session, MINIMUM, by="sdr") == {SAM: 2}
    assert metrics.qualified_held(session, 5, by="week") == {"2026-W45": 1, "2026-W48": 2}


def test_acceptance_rate_counts_acceptances_within_the_window(session, meetings) -> None:
    # held: 1 2 5 6 7 12; accepted in 14 days: 1 2 (12 was accepted after 20)
    assert metrics.acceptance_rate(session, WINDOW) == {"all": Rate(2, 6)}
    assert metrics.acceptance_rate(session, WINDOW, by="sdr") == {JO: Rate(0, 3), SAM: Rate(2, 3)}
    assert metrics.acceptance_rate(session, 30, by="sdr")[SAM] == Rate(3, 3)


def test_rejections_by_reason(session, meetings) -> None:
    assert metrics.rejections_by_reason(session) == {"all": {"no_budget": 1}}
    assert metrics.rejections_by_reason(session, by="ae") == {ALEX: {"no_budget": 1}}


def test_overdue_acceptances(session, meetings) -> None:
    assert metrics.overdue_acceptances(session, NOW, WINDOW) == {"all": 1}  # 7; 6 is still in its window
    assert metrics.overdue_acceptances(session, NOW, WINDOW, by="ae") == {BLAIR: 1}
    assert metrics.overdue_acceptances(session, NOW + timedelta(days=13), WINDOW, by="ae") == {ALEX: 1, BLAIR: 1}


def test_time_from_first_touch_to_meeting(session, meetings) -> None:
    assert metrics.time_to_meeting(session) == {"all": Durations(3, 48.0, 44.0)}
    assert metrics.time_to_meeting(session, by="sequence") == {"funding": Durations(1, 48.0, 48.0),
                                                               "hiring": Durations(2, 42.0, 42.0)}


def test_an_unknown_grouping_is_refused_by_name(session) -> None:
    with pytest.raises(ValueError, match="by: 'month' is not one of sdr, ae, sequence, signal_type, week"):
        metrics.show_rate(session, NOW, by="month")
