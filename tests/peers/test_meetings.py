"""Meetings through the real ``sequencer`` command line, on SQLite and PostgreSQL.

Every lifecycle move and every refused one: scheduled -> rescheduled -> held | no_show |
canceled, then accepted | rejected. A refusal names the field and stores nothing (the
meeting row, its decision log and the prospects are compared before and after). The CLI's
clock is the test's (``meetings_support``); invitations go to the loopback SMTP server.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from meetings_support import AE, DANA, SDR, Workspace
from sqlmodel import func, select

from channels.tasks import Task
from sequencer.core.db import session as new_session
from sequencer.core.models import Enrollment, Meeting, Prospect

pytest_plugins = ["meetings_support"]  # the workspace fixture
IN_TWO_DAYS = timedelta(days=2)


def book(ws: Workspace, *extra: str, email: str = DANA, when: timedelta = IN_TWO_DAYS) -> str:
    return ws.ok("meetings", "book", email, "--ae", AE, "--start", ws.at(when), "--duration", "30", *extra)


def snapshot(ws: Workspace) -> tuple:
    """What a refused command must leave as it was."""
    with new_session(ws.engine) as session:
        meetings = [m.model_dump() for m in session.exec(select(Meeting).order_by(Meeting.id))]
        prospects = session.exec(select(func.count()).select_from(Prospect)).one()
        states = [e.state for e in session.exec(select(Enrollment).order_by(Enrollment.id))]
    return meetings, prospects, states, [d.id for d in ws.decisions("")]


def held_meeting(ws: Workspace) -> None:
    ws.enrolled()
    book(ws)
    ws.clock.advance(IN_TWO_DAYS + timedelta(minutes=40))
    ws.ok("meetings", "held", "1", "--by", SDR)


# --- booking --------------------------------------------------------------------------


def test_booking_stops_the_sequence_by_the_rule_invites_the_ae_and_is_on_the_timeline(workspace: Workspace) -> None:
    workspace.enrolled()

    output = book(workspace, "--location", "https://meet.acme.example/x")

    assert "meeting #1 booked for" in output and "REQUEST invitation sent to alex.ae@acme.example" in output
    meeting = workspace.meeting()
    assert (meeting.state, meeting.ical_sequence, meeting.source, meeting.ae, meeting.sdr) == (
        "scheduled", 0, "cli", AE, SDR)
    assert meeting.uid.endswith("@sequencer") and meeting.start_at == workspace.clock.now() + IN_TWO_DAYS
    assert {(p["email"], p["role"], p["partstat"]) for p in meeting.attendees} == {
        (AE, "ae", "NEEDS-ACTION"), (DANA, "prospect", "NEEDS-ACTION"), (SDR, "sdr", "ACCEPTED")}
    with new_session(workspace.engine) as session:
        enrollment = session.exec(select(Enrollment)).one()
    assert (enrollment.state, enrollment.rule) == ("stopped", "builtin.meeting_booked")
    assert meeting.enrollment_id == enrollment.id
    assert [m.rcpt_tos for m in workspace.smtp.messages] == [[AE]]
    explained = workspace.ok("explain", DANA)
    assert "meeting_booked: meeting #1 booked for" in explained
    assert "stopped: meeting #1 booked via cli [rule builtin.meeting_booked]" in explained


def test_booking_a_new_address_creates_the_prospect(workspace: Workspace) -> None:
    book(workspace, "--name", "Lee Park", email="lee@contoso.example")

    with new_session(workspace.engine) as session:
        prospect = session.exec(select(Prospect).where(Prospect.email == "lee@contoso.example")).one()
    assert (prospect.first_name, prospect.last_name) == ("Lee", "Park")
    assert workspace.meeting().review == ""


def test_booking_a_new_address_can_be_parked_for_review(workspace: Workspace) -> None:
    workspace.configure(meeting_unknown_prospect="park")

    output = book(workspace, email="lee@contoso.example")

    assert "parked: booked for lee@contoso.example, who was not a prospect" in output
    assert "lee@contoso.example" in workspace.ok("meetings", "list", "--parked")
    workspace.ok("meetings", "review", "1")
    assert workspace.meeting().review == ""
    assert "lee@contoso.example" not in workspace.ok("meetings", "list", "--parked")
    assert [d.kind for d in workspace.decisions()][-1] == "meeting_reviewed"


@pytest.mark.parametrize(("args", "message"), [
    (["--start", "2026-12-03T15:00:00"], "start: a time zone is required"),
    (["--start", "next tuesday"], "--start: 'next tuesday' is not an ISO 8601 time"),
    (["--start", "2026-11-29T15:00:00+00:00"], "start: 2026-11-29 15:00 UTC is not in the future"),
    (["--duration", "0"], "duration_minutes: must be between 5 and 480 minutes, not 0"),
    (["--duration", "600"], "duration_minutes: must be between 5 and 480 minutes, not 600"),
    (["--ae", "not-an-address"], "ae: invalid email 'not-an-address'"),
    (["--ae", "stranger@elsewhere.example"], "ae: stranger@elsewhere.example is not one of the AEs in meeting_aes"),
    (["--sdr", "sam@@acme"], "sdr: invalid email"),
    (["--title", "x" * 201], "title: longer than 200 characters"),
    (["--title", "bad\x07title"], "title: control characters are not allowed"),
], ids=["naive", "not-iso", "past", "zero-minutes", "too-long", "bad-ae", "unknown-ae", "bad-sdr", "long-title",
        "control-chars"])
def test_a_bad_booking_names_the_field_and_stores_nothing(workspace: Workspace, args: list[str], message: str) -> None:
    workspace.configure(meeting_aes=[AE])
    workspace.enrolled()
    before = snapshot(workspace)
    options = {"--ae": AE, "--start": workspace.at(IN_TWO_DAYS), "--duration": "30"}
    extra: list[str] = []
    for index in range(0, len(args), 2):
        if args[index] in options:
            options[args[index]] = args[index + 1]
        else:
            extra += args[index:index + 2]

    output = workspace.refused("meetings", "book", DANA, *[x for pair in options.items() for x in pair], *extra)

    assert message in output
    assert snapshot(workspace) == before
    assert workspace.smtp.messages == []


def test_a_bad_prospect_address_is_refused_by_name(workspace: Workspace) -> None:
    before = snapshot(workspace)

    output = workspace.refused("meetings", "book", "dana@", "--ae", AE, "--start", workspace.at(IN_TWO_DAYS))

    assert "prospect_email: invalid email 'dana@'" in output
    assert snapshot(workspace) == before


def test_a_task_closed_as_meeting_booked_books_the_meeting(workspace: Workspace) -> None:
    workspace.enrolled()
    with new_session(workspace.engine) as session:  # the call step: queue the SDR's task
        enrollment = session.exec(select(Enrollment)).one()
        call = next(s for s in enrollment_steps(session, enrollment) if s["kind"] == "call")
        enrollment.current_step, enrollment.next_due_at = call["index"], workspace.clock.now()
        session.add(enrollment)
        session.commit()
    from sequencer.app.wiring import build
    from sequencer.engine.tick import tick
    with new_session(workspace.engine) as session:
        tick(session, workspace.clock, build(workspace.settings, check_domains=False))
        task = session.exec(select(Task)).one()

    output = workspace.ok("tasks", "done", str(task.id), "--outcome", "meeting_booked", "--meeting-start",
                          workspace.at(IN_TWO_DAYS), "--ae", AE, "--duration", "45")

    assert "enrollment stopped" in output and "meeting #1 booked" in output
    meeting = workspace.meeting()
    assert (meeting.source, meeting.duration_minutes, meeting.enrollment_id) == ("task", 45, task.enrollment_id)
    assert AE in [to for m in workspace.smtp.messages for to in m.rcpt_tos]


def test_a_task_with_a_bad_meeting_stays_open_and_nothing_is_booked(workspace: Workspace) -> None:
    workspace.enrolled()
    with new_session(workspace.engine) as session:
        enrollment = session.exec(select(Enrollment)).one()
        from channels import tasks as task_channel
        from sequencer.core.models import Touch
        touch = Touch(enrollment_id=enrollment.id, prospect_id=enrollment.prospect_id, step_index=3, channel="call",
                      state="queued")
        session.add(touch)
        session.flush()
        task = task_channel.queue(session, touch, SDR, "call", "Call Dana", "", workspace.clock.now())
        session.commit()

    output = workspace.refused("tasks", "done", str(task.id), "--outcome", "meeting_booked", "--meeting-start",
                               "2026-12-03T15:00:00", "--ae", AE)

    assert "start: a time zone is required" in output
    assert workspace.meetings() == []
    with new_session(workspace.engine) as session:
        assert session.get(Task, task.id).state == "open"
        assert session.exec(select(Enrollment)).one().state == "active"
    output = workspace.refused("tasks", "done", str(task.id), "--outcome", "connected", "--ae", AE)
    assert "give --meeting-start too" in output


def enrollment_steps(session, enrollment: Enrollment) -> list[dict]:
    from sequencer.core.models import SequenceVersion
    return session.get(SequenceVersion, enrollment.sequence_version_id).definition["steps"]


# --- reschedule and cancel ------------------------------------------------------------


def test_reschedules_raise_the_sequence_each_time_and_send_the_update(workspace: Workspace) -> None:
    workspace.enrolled()
    book(workspace)

    workspace.ok("meetings", "reschedule", "1", "--start", workspace.at(timedelta(days=3)))
    output = workspace.ok("meetings", "reschedule", "1", "--start", workspace.at(timedelta(days=4)), "--duration",
                          "60")

    assert "SEQUENCE 2" in output
    meeting = workspace.meeting()
    assert (meeting.state, meeting.ical_sequence, meeting.duration_minutes) == ("rescheduled", 2, 60)
    assert meeting.start_at == workspace.clock.now() + timedelta(days=4)
    assert [d.kind for d in workspace.decisions("meeting_r")] == ["meeting_rescheduled", "meeting_rescheduled"]
    assert len([m for m in workspace.smtp.messages if m.rcpt_tos == [AE]]) == 3  # the booking and two updates


@pytest.mark.parametrize(("when", "message"), [
    (timedelta(hours=-1), "is not in the future"),
    (IN_TWO_DAYS, "meeting #1 is already at"),
], ids=["into-the-past", "same-time"])
def test_a_reschedule_into_the_past_or_to_the_same_time_is_refused(workspace: Workspace, when: timedelta,
                                                                    message: str) -> None:
    workspace.enrolled()
    book(workspace)
    before = snapshot(workspace)

    output = workspace.refused("meetings", "reschedule", "1", "--start", workspace.at(when))

    assert output.startswith("error: start: ") and message in output
    assert snapshot(workspace) == before


def test_cancel_records_the_reason_and_raises_the_sequence(workspace: Workspace) -> None:
    workspace.enrolled()
    book(workspace)

    output = workspace.ok("meetings", "cancel", "1", "--reason", "prospect travelling")

    assert "CANCEL invitation sent to alex.ae@acme.example" in output
    meeting = workspace.meeting()
    assert (meeting.state, meeting.ical_sequence, meeting.cancel_reason) == ("canceled", 1, "prospect travelling")


@pytest.mark.parametrize("command", [
    ["reschedule", "1", "--start", "+3d"], ["cancel", "1"], ["held", "1"],
    ["no-show", "1", "--fault", "prospect", "--reason", "no_answer"],
], ids=["reschedule", "cancel", "held", "no-show"])
def test_a_canceled_meeting_moves_no_further(workspace: Workspace, command: list[str]) -> None:
    workspace.enrolled()
    book(workspace)
    workspace.ok("meetings", "cancel", "1")
    workspace.clock.advance(timedelta(days=3))
    before = snapshot(workspace)
    command = [workspace.at(IN_TWO_DAYS) if part == "+3d" else part for part in command]

    output = workspace.refused("meetings", *command)

    assert "state: meeting #1 is already canceled" in output
    assert snapshot(workspace) == before


def test_a_meeting_that_has_started_cannot_be_canceled(workspace: Workspace) -> None:
    workspace.enrolled()
    book(workspace)
    workspace.clock.advance(IN_TWO_DAYS + timedelta(minutes=5))
    before = snapshot(workspace)

    output = workspace.refused("meetings", "cancel", "1")

    assert "state: meeting #1 started at" in output and "record it as held or as a no-show" in output
    assert snapshot(workspace) == before


# --- held and no-show ----------------------------------------------------------------


def test_held_records_who_and_how_long(workspace: Workspace) -> None:
    workspace.enrolled()
    book(workspace)
    workspace.clock.advance(IN_TWO_DAYS + timedelta(minutes=35))

    workspace.ok("meetings", "held", "1", "--duration", "25", "--by", SDR)

    meeting = workspace.meeting()
    assert (meeting.state, meeting.held_minutes, meeting.recorded_by, meeting.acceptance) == (
        "held", 25, SDR, "pending")
    assert meeting.held_at == workspace.clock.now()


@pytest.mark.parametrize(("command", "message"), [
    (["held", "1"], "state: meeting #1 starts at"),
    (["no-show", "1", "--fault", "prospect", "--reason", "no_answer"], "state: meeting #1 starts at"),
    (["accept", "1"], "state: meeting #1 is scheduled; only a held meeting can be accepted"),
    (["reject", "1", "--reason", "no_budget"], "state: meeting #1 is scheduled; only a held meeting can be rejected"),
], ids=["held-early", "no-show-early", "accept-before-held", "reject-before-held"])
def test_moves_before_the_meeting_are_refused(workspace: Workspace, command: list[str], message: str) -> None:
    workspace.enrolled()
    book(workspace)
    before = snapshot(workspace)

    output = workspace.refused("meetings", *command)

    assert message in output
    assert snapshot(workspace) == before


@pytest.mark.parametrize(("command", "message"), [
    (["held", "1"], "state: meeting #1 is already held"),
    (["no-show", "1", "--fault", "prospect", "--reason", "no_answer"], "state: meeting #1 is already held"),
    (["held", "2"], "id: no meeting #2"),
], ids=["held-twice", "no-show-after-held", "unknown-id"])
def test_a_held_meeting_is_final(workspace: Workspace, command: list[str], message: str) -> None:
    held_meeting(workspace)
    before = snapshot(workspace)

    output = workspace.refused("meetings", *command)

    assert message in output
    assert snapshot(workspace) == before


@pytest.mark.parametrize(("args", "message"), [
    (["--fault", "weather", "--reason", "no_answer"], "fault: 'weather' is not one of prospect, ae, sdr, unknown"),
    (["--fault", "prospect", "--reason", "Did Not Show!"], "reason: a no-show needs a reason code"),
    (["--fault", "prospect", "--reason", ""], "reason: a no-show needs a reason code"),
], ids=["bad-fault", "bad-code", "empty-code"])
def test_a_bad_no_show_names_the_field_and_stores_nothing(workspace: Workspace, args: list[str], message: str) -> None:
    workspace.enrolled()
    book(workspace)
    workspace.clock.advance(IN_TWO_DAYS + timedelta(minutes=20))
    before = snapshot(workspace)

    output = workspace.refused("meetings", "no-show", "1", *args)

    assert message in output
    assert snapshot(workspace) == before


def test_a_no_show_records_fault_reason_and_who(workspace: Workspace) -> None:
    workspace.enrolled()
    book(workspace)
    workspace.clock.advance(IN_TWO_DAYS + timedelta(minutes=20))

    workspace.ok("meetings", "no-show", "1", "--fault", "ae", "--reason", "double_booked", "--by", "mia.manager")

    meeting = workspace.meeting()
    assert (meeting.state, meeting.no_show_fault, meeting.no_show_reason, meeting.recorded_by) == (
        "no_show", "ae", "double_booked", "mia.manager")
    decision = workspace.decisions("meeting_no_show")[0]
    assert decision.detail | {"fault": "ae", "reason_code": "double_booked", "by": "mia.manager", "via": "cli"} == \
        decision.detail
    assert "ignored" in [d.kind for d in workspace.decisions("ignored")]  # built in: meeting_no_show -> ignore


def test_a_prospect_no_show_can_enroll_them_into_a_re_engagement_sequence(workspace: Workspace) -> None:
    templates = workspace.settings.templates_dir
    (templates / "sequences" / "re-engage.yaml").write_text(
        "name: re-engage\nowner: sam.sdr@acme.example\ntrigger:\n  signals: [manual]\n"
        "mailboxes: [sam@outreach-acme.example]\nsteps:\n  - id: sorry\n    kind: email\n"
        "    subject: \"Missed you\"\n    template: second.j2\n")
    rules = workspace.root / "rules.yaml"
    rules.write_text("defaults:\n  meeting_no_show.prospect: [{enroll: {sequence: re-engage}}]\n")
    workspace.configure(rules_file=str(rules))
    workspace.enrolled()
    book(workspace)
    workspace.clock.advance(IN_TWO_DAYS + timedelta(minutes=20))

    workspace.ok("meetings", "no-show", "1", "--fault", "prospect", "--reason", "no_answer")

    with new_session(workspace.engine) as session:
        running = session.exec(select(Enrollment).where(Enrollment.state == "active")).all()
    assert [e.sequence_name for e in running] == ["re-engage"]
    assert "enrolled" in workspace.ok("explain", DANA)


def test_an_ae_no_show_does_not_trigger_the_prospect_rule(workspace: Workspace) -> None:
    rules = workspace.root / "rules.yaml"
    rules.write_text("defaults:\n  meeting_no_show.prospect: [stop]\n  meeting_no_show.ae: [ignore]\n")
    workspace.configure(rules_file=str(rules))
    workspace.enrolled()
    book(workspace)
    workspace.clock.advance(IN_TWO_DAYS + timedelta(minutes=20))

    workspace.ok("meetings", "no-show", "1", "--fault", "ae", "--reason", "sick")

    assert [d.rule for d in workspace.decisions("ignored")] == ["defaults.meeting_no_show.ae"]


# --- acceptance ------------------------------------------------------------------------


def test_the_ae_accepts_a_held_meeting_once(workspace: Workspace) -> None:
    held_meeting(workspace)

    workspace.ok("meetings", "accept", "1")

    meeting = workspace.meeting()
    assert (meeting.acceptance, meeting.decided_by, meeting.decided_at) == ("accepted", AE, workspace.clock.now())
    before = snapshot(workspace)
    assert "acceptance: meeting #1 was already accepted by alex.ae@acme.example" in workspace.refused(
        "meetings", "reject", "1", "--reason", "no_budget")
    assert "acceptance: meeting #1 was already accepted" in workspace.refused("meetings", "accept", "1")
    assert snapshot(workspace) == before


def test_a_rejection_takes_a_reason_from_the_taxonomy(workspace: Workspace) -> None:
    held_meeting(workspace)

    workspace.ok("meetings", "reject", "1", "--reason", "out_of_icp", "--by", "alex.ae@acme.example")

    meeting = workspace.meeting()
    assert (meeting.acceptance, meeting.rejection_reason, meeting.rejection_note) == ("rejected", "out_of_icp", "")


@pytest.mark.parametrize(("args", "message"), [
    (["--reason", "meh"], "reason: 'meh' is not one of no_budget, no_project, wrong_title, out_of_icp, "
                          "competitor_chosen, duplicate, not_decision_maker, other"),
    (["--reason", "other"], "note: a rejection for reason 'other' needs a note"),
], ids=["unknown-reason", "other-without-note"])
def test_a_bad_rejection_names_the_field_and_stores_nothing(workspace: Workspace, args: list[str],
                                                            message: str) -> None:
    held_meeting(workspace)
    before = snapshot(workspace)

    output = workspace.refused("meetings", "reject", "1", *args)

    assert message in output
    assert snapshot(workspace) == before


def test_other_with_a_note_is_accepted_as_a_rejection(workspace: Workspace) -> None:
    held_meeting(workspace)

    workspace.ok("meetings", "reject", "1", "--reason", "other", "--note", "student project")

    assert (workspace.meeting().rejection_reason, workspace.meeting().rejection_note) == ("other", "student project")


def test_overdue_acceptances_are_listed(workspace: Workspace) -> None:
    held_meeting(workspace)
    assert json.loads(workspace.ok("meetings", "list", "--overdue", "--json")) == []

    workspace.clock.advance(timedelta(days=14, minutes=1))

    listed = json.loads(workspace.ok("meetings", "list", "--overdue", "--json"))
    assert [(m["id"], m["overdue"], m["prospect_email"]) for m in listed] == [(1, True, DANA)]
    assert "OVERDUE" in workspace.ok("meetings", "list")


# --- show, list, ics ------------------------------------------------------------------


def test_show_prints_the_meeting_its_history_the_brief_and_the_qualification_criteria(workspace: Workspace) -> None:
    held_meeting(workspace)

    output = workspace.ok("meetings", "show", "1")

    assert "meeting #1: Meeting: Dana Reyes (Northwind)" in output
    assert "meeting_booked: meeting #1 booked for" in output and "meeting_held: meeting #1 held (30 min)" in output
    assert "brief for the AE:" in output and "Account: Northwind" in output
    assert "Sales-accepted meeting (from" in output
    assert "- budget: Budget exists or can be found for it this year." in output
    assert "competitor_chosen: They already chose or signed with a competitor." in output


def test_show_refuses_a_broken_qualification_file_naming_the_line(workspace: Workspace) -> None:
    held_meeting(workspace)
    broken = workspace.root / "qualification.yaml"
    broken.write_text("name: Ours\ncriteria:\n  - id: budget\nrejection_reasons:\n  too_small: no\n")
    workspace.configure(qualification_file=str(broken))

    output = workspace.refused("meetings", "show", "1")

    assert f"{broken}:3: a criterion is {{id: ..., text: ...}}" in output
    assert f"{broken}:5: 'too_small' is not in the fixed rejection taxonomy" in output


def test_list_json_has_every_meeting(workspace: Workspace) -> None:
    workspace.enrolled()
    book(workspace)
    book(workspace, email="lee@contoso.example", when=timedelta(days=1))

    listed = json.loads(workspace.ok("meetings", "list", "--json"))

    assert [(m["id"], m["prospect_email"], m["state"]) for m in listed] == [
        (2, "lee@contoso.example", "scheduled"), (1, DANA, "scheduled")]
    assert listed[1]["start_at"] == (workspace.clock.now() + IN_TWO_DAYS).isoformat()


def test_ics_prints_the_current_invitation(workspace: Workspace) -> None:
    workspace.enrolled()
    book(workspace)
    workspace.ok("meetings", "reschedule", "1", "--start", workspace.at(timedelta(days=3)))

    ics = workspace.ok("meetings", "ics", "1")

    meeting = workspace.meeting()
    assert "METHOD:REQUEST" in ics and f"UID:{meeting.uid}" in ics and "SEQUENCE:1" in ics
    workspace.ok("meetings", "cancel", "1")
    ics = workspace.ok("meetings", "ics", "1")
    assert "METHOD:CANCEL" in ics and "SEQUENCE:2" in ics and "STATUS:CANCELLED" in ics
