"""``sequencer meetings``: book a meeting and record what became of it.

Every command is a thin shell over ``sequencer.meetings.booking``: it parses the options,
calls one function, commits, and prints the result; a ``MeetingError`` is printed naming
the field and nothing is stored. After a booking, a reschedule or a cancel the calendar
invitation (or its cancellation) goes to the AE (``sequencer.meetings.invites.deliver``).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from datetime import datetime

import typer
from rich.markup import escape
from rich.table import Table
from sqlmodel import Session, select

from sequencer.app.cli.common import console, err_console, fail, open_session, print_json, settings
from sequencer.core.clock import SystemClock
from sequencer.core.config import ConfigError, Settings
from sequencer.core.models import Decision, Meeting, Prospect
from sequencer.core.yaml_source import SourceError
from sequencer.meetings import acceptance, booking
from sequencer.meetings.booking import BookingIn, MeetingError
from sequencer.meetings.checks import FAULTS, REJECTION_REASONS
from sequencer.rules.actions import rulebook

app = typer.Typer(no_args_is_help=True, help="Meetings: book, reschedule, cancel, held, no-show, accept, reject.")


def say(message: str) -> None:
    console.print(message, highlight=False, markup=False, soft_wrap=True)


def parse_start(value: str, option: str = "--start") -> datetime:
    """An ISO 8601 time; a naive one is passed on, and refused by ``booking`` naming ``start``."""
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        fail(f"{option}: {value!r} is not an ISO 8601 time such as 2026-12-03T15:00:00+01:00")
        raise  # unreachable


def _who(by: str) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _meeting(session: Session, meeting_id: int) -> Meeting:
    try:
        return booking.get(session, meeting_id)
    except MeetingError as exc:
        fail(str(exc))
        raise  # unreachable


def _move(session: Session, meeting_id: int, move: Callable[..., object], *args: object) -> Meeting:
    """Load the meeting and make one ``booking`` move on it; a refused move ends the command
    (the move checks before it writes, so nothing was stored)."""
    meeting = _meeting(session, meeting_id)
    try:
        move(session, SystemClock().now(), meeting, *args, via="cli")
    except MeetingError as exc:
        fail(str(exc))
    return meeting


def deliver_invites(session: Session, config: Settings, meeting: Meeting, method: str) -> None:
    """Send the invitation for what was just committed; the meeting stands whatever happens to the email."""
    from channels.email import DeliveryError
    from sequencer.app.wiring import sender_for
    from sequencer.meetings import invites
    from sequencer.sending import mailboxes

    try:  # the mailboxes of sequencer.toml, as `sequencer run` syncs them: the invitation goes from one
        mailboxes.sync_from_settings(session, config, SystemClock().now().date())
    except mailboxes.MailboxError as exc:
        err_console.print(f"[yellow]warning:[/yellow] meeting #{meeting.id} is stored, but no invitation was sent: "
                          f"{escape(str(exc))}", highlight=False)
        return
    sender = sender_for(config)  # the sandbox's outbox when sandbox is set: no trial invitation leaves
    try:
        sent = invites.deliver(session, SystemClock().now(), config, sender, meeting, method)
    except (DeliveryError, MeetingError, ConfigError) as exc:
        session.rollback()
        err_console.print(f"[yellow]warning:[/yellow] meeting #{meeting.id} is stored, but its {method} invitation "
                          f"was not sent: {escape(str(exc))}", highlight=False)
        return
    finally:
        sender.close()
    session.commit()
    say(f"{method} invitation sent to {', '.join(sent) or 'nobody'}")


def _done(session: Session, config: Settings, meeting: Meeting, line: str, method: str | None = None) -> None:
    session.commit()
    say(line)
    if method:
        deliver_invites(session, config, meeting, method)


@app.command("book")
def book_command(
    email: str = typer.Argument(..., help="The prospect's email address."),
    ae: str = typer.Option("", "--ae", help="The AE's email address (default: meeting_default_ae)."),
    start: str = typer.Option(..., "--start", help="ISO 8601 with a zone, e.g. 2026-12-03T15:00:00+01:00."),
    duration: int | None = typer.Option(None, "--duration", help="Minutes (default: meeting_default_duration)."),
    sdr: str = typer.Option("", "--sdr", help="The SDR who booked it (default: the prospect's owner)."),
    title: str = typer.Option("", "--title"),
    location: str = typer.Option("", "--location", help="A video link or a place."),
    name: str = typer.Option("", "--name", help="The prospect's name, if they are new to us."),
) -> None:
    """Book a meeting: stops the prospect's sequences (the meeting_booked rule) and invites the AE."""
    config = settings()
    moment = parse_start(start)
    with open_session(config) as session:
        try:
            meeting = booking.book(session, SystemClock().now(), config, rulebook(config), BookingIn(
                prospect_email=email, ae=ae or config.meeting_default_ae, start=moment,
                duration_minutes=config.meeting_default_duration if duration is None else duration, sdr=sdr,
                title=title, location=location, source="cli", prospect_name=name))
        except (MeetingError, ConfigError) as exc:
            fail(str(exc))
            return
        _done(session, config, meeting, f"meeting #{meeting.id} booked for {_when(meeting.start_at)} with "
              f"{meeting.ae} ({meeting.duration_minutes} min)" + (f"; parked: {meeting.review}" if meeting.review
                                                                  else ""), "REQUEST")


@app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    overdue: bool = typer.Option(False, "--overdue", help="Only held meetings whose acceptance is overdue."),
    state: str = typer.Option("", "--state", help=f"Only this state: {', '.join(booking.STATES)}."),
    ae: str = typer.Option("", "--ae", help="Only this AE's meetings."),
    parked: bool = typer.Option(False, "--parked", help="Only meetings waiting for a review."),
) -> None:
    """Meetings, soonest first; --overdue lists the AEs' undecided held meetings past the window."""
    config = settings()
    if state and state not in booking.STATES:
        fail(f"--state: {state!r} is not one of {', '.join(booking.STATES)}")
    with open_session(config) as session:
        now = SystemClock().now()
        late = {m.id for m in acceptance.overdue(session, now, config)}
        query = select(Meeting, Prospect.email).join(Prospect, Prospect.id == Meeting.prospect_id)
        if overdue:
            query = query.where(Meeting.id.in_(late or {-1}))
        if state:
            query = query.where(Meeting.state == state)
        if ae:
            query = query.where(Meeting.ae == ae.strip().lower())
        if parked:
            query = query.where(Meeting.review != "")
        rows = session.exec(query.order_by(Meeting.start_at, Meeting.id)).all()
    if as_json:
        typer.echo(json.dumps([{**booking.as_dict(m, email), "overdue": m.id in late} for m, email in rows],
                              indent=2))
        return
    table = Table("id", "start (UTC)", "min", "state", "prospect", "ae", "sdr", "via", "acceptance")
    for meeting, email in rows:
        decided = meeting.acceptance if meeting.state == "held" else ""
        if meeting.id in late:
            decided = "OVERDUE"
        state_text = meeting.state + (f" ({meeting.no_show_fault})" if meeting.no_show_fault else "")
        table.add_row(str(meeting.id), _when(meeting.start_at).removesuffix(" UTC"), str(meeting.duration_minutes),
                      state_text + (" parked" if meeting.review else ""), escape(email), escape(meeting.ae),
                      escape(meeting.sdr or "-"), meeting.source, decided)
    console.print(table)


@app.command("show")
def show_command(meeting_id: int = typer.Argument(..., help="The meeting's id."),
                 as_json: bool = typer.Option(False, "--json", help="As one JSON object.")) -> None:
    """One meeting: its state, attendees, history, the AE brief and the qualification criteria."""
    config = settings()
    with open_session(config) as session:
        meeting = _meeting(session, meeting_id)
        prospect = session.get(Prospect, meeting.prospect_id)
        if as_json:
            print_json({**booking.as_dict(meeting, prospect.email), "history": [
                {"at": d.at, "kind": d.kind, "reason": d.reason} for d in _history(session, meeting)],
                "brief": _brief(session, meeting)})
            return
        say(f"meeting #{meeting.id}: {meeting.title}")
        fault = f" ({meeting.no_show_fault}: {meeting.no_show_reason})" if meeting.no_show_fault else ""
        say(f"  {meeting.state}{fault}" + (f", canceled: {meeting.cancel_reason}" if meeting.cancel_reason else ""))
        say(f"  when: {_when(meeting.start_at)}, {meeting.duration_minutes} min; where: {meeting.location or '-'}")
        say(f"  prospect: {prospect.email}; ae: {meeting.ae}; sdr: {meeting.sdr or '-'}; via {meeting.source}"
            + (f" ({meeting.external_id})" if meeting.external_id else ""))
        say(f"  uid: {meeting.uid}, iCalendar SEQUENCE {meeting.ical_sequence}")
        if meeting.review:
            say(f"  parked for review: {meeting.review}")
        if meeting.state == "held":
            closes = acceptance.window_closes(meeting, config)
            say(f"  held {meeting.held_minutes} min (recorded by {meeting.recorded_by or '-'}); acceptance: "
                f"{meeting.acceptance}" + (f" by {meeting.decided_by} on {_when(meeting.decided_at)}"
                                           if meeting.decided_at else f", window closes {_when(closes)}"))
            if meeting.rejection_reason:
                say(f"  rejected: {meeting.rejection_reason}" + (f" ({meeting.rejection_note})"
                                                                 if meeting.rejection_note else ""))
        say("  attendees:")
        for person in meeting.attendees:
            say(f"    {person['email']} ({person['role']}): {person['partstat']}")
        say("  history:")
        for decision in _history(session, meeting):
            say(f"    {_when(decision.at)}  {decision.kind}: {decision.reason}")
        say("\nbrief for the AE:")
        say(_brief(session, meeting))
        _print_qualification(config)


def _history(session: Session, meeting: Meeting) -> list[Decision]:
    rows = session.exec(select(Decision).where(Decision.prospect_id == meeting.prospect_id,
                                               Decision.kind.startswith("meeting_")).order_by(Decision.id))
    return [row for row in rows if (row.detail or {}).get("meeting_id") == meeting.id]


def _brief(session: Session, meeting: Meeting) -> str:
    try:
        from sequencer.meetings.invites import brief
    except ImportError:
        return "  (the brief is not available: sequencer.meetings.invites is not installed)"
    return brief(session, meeting)


def _print_qualification(config: Settings) -> None:
    try:
        qualification = acceptance.load_qualification(config)
    except SourceError as exc:
        for error in exc.errors:
            err_console.print(f"[red]{escape(error)}[/red]", highlight=False, soft_wrap=True)
        fail("the qualification file cannot be read")
        return
    say(f"\n{qualification.name} (from {qualification.path}): the AE accepts only if every one holds")
    for criterion, text in qualification.criteria:
        say(f"  - {criterion}: {text}")
    if qualification.minimum_minutes:
        say(f"  a held meeting counts as qualified-held from {qualification.minimum_minutes} minutes")
    say("rejection reasons (sequencer meetings reject ID --reason CODE):")
    for code, text in qualification.reasons.items():
        say(f"  {code}: {text}")


@app.command("reschedule")
def reschedule_command(
    meeting_id: int = typer.Argument(...),
    start: str = typer.Option(..., "--start", help="The new time, ISO 8601 with a zone."),
    duration: int | None = typer.Option(None, "--duration", help="New length in minutes (default: unchanged)."),
) -> None:
    """Move a meeting to a new time in the future; the AE gets the updated invitation."""
    config = settings()
    moment = parse_start(start)
    with open_session(config) as session:
        meeting = _move(session, meeting_id, booking.reschedule, moment, duration)
        _done(session, config, meeting, f"meeting #{meeting.id} moved to {_when(meeting.start_at)} "
              f"(SEQUENCE {meeting.ical_sequence})", "REQUEST")


@app.command("cancel")
def cancel_command(meeting_id: int = typer.Argument(...), reason: str = typer.Option("", "--reason")) -> None:
    """Cancel a meeting that has not started; the AE gets the cancellation."""
    config = settings()
    with open_session(config) as session:
        meeting = _move(session, meeting_id, booking.cancel, reason)
        _done(session, config, meeting, f"meeting #{meeting.id} canceled", "CANCEL")


@app.command("held")
def held_command(
    meeting_id: int = typer.Argument(...),
    duration: int | None = typer.Option(None, "--duration", help="How long it lasted, minutes (default: booked)."),
    by: str = typer.Option("", "--by", help="Who records it (default: your user name)."),
) -> None:
    """Record that the meeting took place; the AE's acceptance window opens."""
    config = settings()
    with open_session(config) as session:
        meeting = _move(session, meeting_id, booking.mark_held, duration, _who(by))
        _done(session, config, meeting, f"meeting #{meeting.id} held ({meeting.held_minutes} min); "
              f"{meeting.ae} accepts or rejects it within {config.meeting_acceptance_days} days")


@app.command("no-show")
def no_show_command(
    meeting_id: int = typer.Argument(...),
    fault: str = typer.Option(..., "--fault", help=f"Whose fault: {'|'.join(FAULTS)}."),
    reason: str = typer.Option(..., "--reason", help="A reason code, e.g. no_answer, forgot, double_booked."),
    by: str = typer.Option("", "--by", help="Who records it (default: your user name)."),
) -> None:
    """Record a no-show with whose fault it was; the stop rules' meeting_no_show event follows."""
    config = settings()
    with open_session(config) as session:
        meeting = _meeting(session, meeting_id)
        try:
            booking.mark_no_show(session, SystemClock().now(), meeting, fault, reason, _who(by), via="cli",
                                 rules=rulebook(config))
        except MeetingError as exc:
            fail(str(exc))
        _done(session, config, meeting, f"meeting #{meeting.id} recorded as a no-show ({fault}: {reason})")


@app.command("accept")
def accept_command(meeting_id: int = typer.Argument(...),
                   by: str = typer.Option("", "--by", help="Who accepts (default: the meeting's AE).")) -> None:
    """The AE accepts a held meeting into pipeline."""
    config = settings()
    with open_session(config) as session:
        meeting = _move(session, meeting_id, booking.accept, by)
        _done(session, config, meeting, f"meeting #{meeting.id} accepted by {meeting.decided_by}")


@app.command("reject")
def reject_command(
    meeting_id: int = typer.Argument(...),
    reason: str = typer.Option(..., "--reason", help=f"One of {', '.join(REJECTION_REASONS)}."),
    note: str = typer.Option("", "--note", help="Why (required with --reason other)."),
    by: str = typer.Option("", "--by", help="Who rejects (default: the meeting's AE)."),
) -> None:
    """The AE rejects a held meeting, with a reason from the fixed taxonomy."""
    config = settings()
    with open_session(config) as session:
        meeting = _move(session, meeting_id, booking.reject, reason, note, by)
        _done(session, config, meeting, f"meeting #{meeting.id} rejected by {meeting.decided_by}: {reason}")


@app.command("review")
def review_command(meeting_id: int = typer.Argument(...), by: str = typer.Option("", "--by")) -> None:
    """Keep a meeting that was parked for review (booked for someone who was not a prospect)."""
    config = settings()
    with open_session(config) as session:
        meeting = _move(session, meeting_id, booking.clear_review, _who(by))
        _done(session, config, meeting, f"meeting #{meeting.id} reviewed")


@app.command("ics")
def ics_command(meeting_id: int = typer.Argument(...)) -> None:
    """Print the meeting's current .ics (REQUEST, or CANCEL once canceled)."""
    config = settings()
    with open_session(config) as session:
        meeting = _meeting(session, meeting_id)
        try:
            from sequencer.meetings import invites
        except ImportError:
            fail("calendar invitations are not available (sequencer.meetings.invites is not installed)")
            return
        prospect = session.get(Prospect, meeting.prospect_id)
        try:
            organizer = invites.organizer_mailbox(session, meeting)
            ics = invites.calendar(meeting, prospect, "CANCEL" if meeting.state == "canceled" else "REQUEST",
                                   organizer.address, invites.brief(session, meeting),
                                   include_prospect=bool(getattr(config, "meeting_invite_prospect", False)),
                                   organizer_name=organizer.display_name)
        except MeetingError as exc:
            fail(str(exc))
            return
    typer.echo(ics.decode("utf-8"), nl=False)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"
