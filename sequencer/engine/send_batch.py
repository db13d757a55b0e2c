"""Sending a batch of planned emails: claim them together, send them, record them together.

The tick plans each email as it walks the due enrollments (``steps._plan_email``: guards,
mailbox, text); this module does the rest. One transaction claims every enrollment with a
send lease, counts each send against its caps and minimum gap, and records each touch as
"outbox". Then the emails go out, each touch marked "sending" (committed on its own) right
before its message is started (``_WireMarks``). Then one transaction records each one as sent
(or hands the refusal to the stop rules) and moves its enrollment on. A crash between the two
transactions leaves the touch whose message was on the wire "sending", which the next tick
after the lease records as "unknown" and never sends again; the batch's touches still
"outbox" never reached a server, and are sent then.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from channels import verp
from channels.email import DeliveryError, DeliveryUnknown, NotAttempted, RelayUnreachable, UnsendableMessage
from channels.message import OutgoingEmail, new_message_id
from sequencer.core import db, decisions
from sequencer.core.config import Settings
from sequencer.core.models import Decision, Enrollment, Touch
from sequencer.engine.guards import TouchContext
from sequencer.engine.runtime import Runtime
from sequencer.enrollments import lifecycle
from sequencer.inbound.bounces import classify_smtp_response
from sequencer.sending import caps, mailboxes
from sequencer.sequences import schedule
from suppression.tokens import unsubscribe_headers, unsubscribe_url

# The send lease (``send_lease``): how long a claimed batch's enrollments are left to its sender.
# One message waits on the network at most this many times, each bounded by smtp_timeout:
# connect, greeting, EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA, the final reply; and
# MAIL, RCPT, DATA before that on a kept connection that turns out to be closed.
MESSAGE_WAITS = 13
SEND_PACE = 0.5  # seconds a batch allows each message of its largest mailbox's share
RECORD_MARGIN = 10.0  # seconds for the record transaction after the last send
MARK_CHUNK = 5  # touches of one mailbox marked "sending" together, before the first of them starts (_WireMarks)
# A relay that could not be reached (refused, timed out, hung up before the message) is the
# mailbox's failure, not each message's: the batch's emails are tried again after
# relay_retry_seconds, doubling with each failure in a row up to relay_retry_max_seconds, and
# the outage is counted once against the mailbox (mailboxes.relay_failed). Another send that
# no server answered (no password configured, say) is tried again on this schedule. A
# server's refusal is a bounce, and the stop rules decide what follows.
UNREACHED_BACKOFF = timedelta(minutes=15)
UNREACHED_ATTEMPTS = 5
RECORD_ATTEMPTS = 3  # a batch's record, when another worker's lock gets in its way


@dataclass
class PlannedEmail:
    """An email touch that passed its guards, with its mailbox and text; sent with its batch."""

    ctx: TouchContext
    existing: Touch | None
    mailbox: mailboxes.Mailbox
    variant: dict
    rendered: dict[str, str]
    new_thread: bool
    version: int  # the enrollment's version when the email was planned: the claim expects it
    touch_id: int = 0
    limits: list[caps.Cap] | None = None  # the caps this send counts against (chosen with its mailbox)
    touch_row: dict | None = None  # a new touch's columns, until the batch inserts it
    message_id: str = ""
    error: DeliveryError | None = None
    note: str = ""  # why it goes as it does (a new thread after an unknown), shown by ``explain``


def send_planned(session: Session, now: datetime, runtime: Runtime, planned: list[PlannedEmail]) -> list[str]:
    """Send a batch of planned emails; return each one's outcome, in order.

    Three steps. One transaction claims every enrollment (with a send lease fitted to the
    batch), counts each send against its caps and minimum gap, and records each touch as
    "outbox". Then the emails go out, each touch marked "sending" before its message
    starts. Then one transaction records each as sent (or hands the refusal to the stop
    rules, or retries a relay outage soon) and moves its enrollment on. A crash between
    the two leaves touches "sending", which the next tick after the lease records as
    "unknown", never resent, and touches "outbox", which it sends.
    """
    lease, budget = send_lease(runtime.settings, _largest_share(planned))
    outcomes = _claim_all(session, now, planned, lease)
    claimed = [item for item, outcome in zip(planned, outcomes, strict=True) if outcome == "claimed"]
    deadline = time.monotonic() + budget  # no message starts after it, so the lease holds
    errors = []
    if claimed:
        with _WireMarks(session.get_bind(), {item.message_id: item.touch_id for item in claimed}) as marks:
            errors = runtime.sender.send_many([_outgoing(now, runtime, item) for item in claimed],
                                              deadline=deadline, on_start=marks.mark, start_chunk=MARK_CHUNK)
    for item, error in zip(claimed, errors, strict=True):
        item.error = error
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            return _record_all(session, now, runtime, planned, list(outcomes))
        except OperationalError as exc:
            # Another worker held a lock this needed (PostgreSQL may pick this side of a
            # deadlock to break). The emails are out already, so their record must not
            # be lost: undo the whole record and make it again from what was sent.
            if not db.is_lock_conflict(exc) or attempt == RECORD_ATTEMPTS:
                raise
            session.rollback()
    raise AssertionError("unreachable")


def send_lease(settings: Settings, largest_share: int) -> tuple[timedelta, float]:
    """The lease a batch's claim sets, and the seconds its sender may go on starting messages.

    A crash mid-send leaves the batch's enrollments idle until the lease ends (then each
    touch left "sending" is recorded "unknown" and the sequence goes on), so the lease
    fits the batch: SEND_PACE for each message of its largest mailbox's share (one mailbox's
    messages go one after another), plus the longest one started message can take
    (MESSAGE_WAITS x smtp_timeout), plus the record. The sender starts no message once the
    budget is spent (``send_many(deadline=)``); those left are tried at the next tick. A
    ``send_lease_seconds`` setting replaces the fitted lease, but never leaves less than
    one message's pace and its longest wait.
    """
    one = MESSAGE_WAITS * settings.smtp_timeout
    budget = SEND_PACE * max(largest_share, 1)
    if settings.send_lease_seconds:
        budget = max(settings.send_lease_seconds - one - RECORD_MARGIN, SEND_PACE)
    return timedelta(seconds=math.ceil(budget + one + RECORD_MARGIN)), budget


def _largest_share(planned: list[PlannedEmail]) -> int:
    """The most emails of the batch that one mailbox sends (they go one after another)."""
    shares: dict[int, int] = {}
    for item in planned:
        shares[item.mailbox.id] = shares.get(item.mailbox.id, 0) + 1
    return max(shares.values(), default=0)


def _record_all(session: Session, now: datetime, runtime: Runtime, planned: list[PlannedEmail],
                outcomes: list[str]) -> list[str]:
    """Record a sent batch in one transaction; may be made again after a rollback."""
    sent = [item.touch_id for item, outcome in zip(planned, outcomes, strict=True)
            if outcome == "claimed" and item.error is None]
    if sent:
        session.connection().execute(_MARK_SENT, {"ids": sent, "at": now})
    with decisions.batched(session):
        relays = _relay_retry(session, now, runtime.settings, planned, outcomes)
        moves = []
        for index, item in enumerate(planned):
            if outcomes[index] != "claimed":
                continue
            if item.error is None or isinstance(item.error, DeliveryUnknown):
                moves.append(_record_sent(session, now, item))
                outcomes[index] = "sent" if item.error is None else "unknown"
            else:
                outcomes[index] = _delivery_failed(session, now, runtime, item)
        lifecycle.step_on(session, now, moves)
        caps.release(session, [item.limits for item, outcome in zip(planned, outcomes, strict=True)
                               if item.limits and _gives_caps_back(item, outcome)])
        # Mailbox rows last, as the claim takes them last (the minimum gap): one lock order.
        mailboxes.relay_failed(session, relays)
        mailboxes.relay_answered(session, [item.mailbox for item, outcome in zip(planned, outcomes, strict=True)
                                           if outcome in ("sent", "unknown")])
    session.commit()
    return outcomes


def _claim_all(session: Session, now: datetime, planned: list[PlannedEmail], lease: timedelta) -> list[str]:
    try:
        # The claim also sets a lease: after a crash the enrollment is found again (see _recover_unknown).
        claimed = lifecycle.claim_many(session, [(item.ctx.enrollment, item.version) for item in planned],
                                         next_due_at=now + lease)
        counted = caps.reserve_all(session, [item.limits for item in planned if item.ctx.enrollment.id in claimed])
        outcomes = [_claim(session, now, item, counted) if item.ctx.enrollment.id in claimed else "lost_race"
                    for item in planned]
        new = [item for item, outcome in zip(planned, outcomes, strict=True)
               if outcome == "claimed" and item.existing is None]
        if new:  # multi-row INSERTs for the batch's new touches; each id comes back with its enrollment
            ids = dict(session.connection().execute(_INSERT_TOUCH, [item.touch_row for item in new]).all())
            for item in new:
                item.touch_id = ids[item.ctx.enrollment.id]
        session.commit()
    except (IntegrityError, OperationalError) as exc:
        # Another worker wrote one of these touches, or held a lock this claim needed (a
        # deadlock broken, a lock timeout, SQLite busy): nothing was sent, so the whole
        # batch is left for the next tick. Any other database error is raised.
        if isinstance(exc, OperationalError) and not db.is_lock_conflict(exc):
            raise
        session.rollback()
        lifecycle.free(session, [item.ctx.enrollment for item in planned])
        return ["lost_race"] * len(planned)
    return outcomes


def _claim(session: Session, now: datetime, item: PlannedEmail, counted: bool) -> str:
    """Record one claimed planned email as "sending" (counting it against its caps unless
    the batch's were ``counted`` together); or defer it (caller commits)."""
    enrollment, prospect, mailbox, limits = item.ctx.enrollment, item.ctx.prospect, item.mailbox, item.limits
    full = None if counted else caps.reserve(session, limits)
    if full is not None:
        window = lifecycle.window_of(item.ctx.definition)
        until = schedule.next_open(caps.frees_at(full), window, prospect.timezone, prospect.country)
        lifecycle.defer(session, now, enrollment, until, f"{full.label} reached", "caps")
        return "deferred"
    gap = mailbox.min_gap_seconds + _jitter(mailbox, enrollment)
    if gap and not caps.take_gap(session, mailbox, now, gap):
        caps.release(session, [limits])
        until = (mailbox.last_sent_at or now) + timedelta(seconds=gap)
        lifecycle.defer(session, now, enrollment, until,
                        f"mailbox {mailbox.address}: minimum gap {gap:.0f}s between sends", "gap")
        return "deferred"
    item.message_id = new_message_id(mailbox.sending_domain)
    values = {"state": "outbox", "reason": item.note, "variant": item.variant["name"], "mailbox_id": mailbox.id,
              "message_id": item.message_id, "subject": item.rendered["subject"]}
    if item.existing is not None:
        for name, value in values.items():
            setattr(item.existing, name, value)
        session.add(item.existing)
        session.flush()
        item.touch_id = item.existing.id
    else:  # inserted with the batch's other new touches (see _claim_all)
        step = item.ctx.step
        item.touch_row = {
            "enrollment_id": enrollment.id, "prospect_id": prospect.id, "step_index": step["index"],
            "step_id": step["id"], "channel": step["kind"], "recipient": prospect.email, "created_at": now,
            "sent_at": None, **values}
    return "claimed"


class _WireMarks:
    """Marks touches "sending", committed at once, before their messages are started.

    What a crash leaves must tell the messages that may have reached a server ("sending":
    recorded unknown, never resent) from those that never left ("outbox": sent after the
    lease). A mailbox's next MARK_CHUNK touches are marked in one write, on a connection
    kept per sending thread for the batch: a commit per message doubled a batch's time on
    PostgreSQL, and a pooled checkout per write costs a round trip more. The price: a crash
    may leave up to MARK_CHUNK - 1 never-started touches per mailbox "sending", recorded
    unknown (never a duplicate).
    """

    _MARK = (update(Touch).where(Touch.id.in_(bindparam("ids", expanding=True))).values(state="sending")
             .execution_options(synchronize_session=False))

    def __init__(self, bind: Engine | Connection, touch_ids: dict[str, int]) -> None:
        self.engine = bind.engine
        self.touch_ids = touch_ids
        self.local = threading.local()
        self.opened: list[Connection] = []
        self.lock = threading.Lock()

    def mark(self, emails: list[OutgoingEmail]) -> None:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self.local.connection = connection
            with self.lock:
                self.opened.append(connection)
        connection.execute(self._MARK, {"ids": [self.touch_ids[email.message_id] for email in emails]})

    def __enter__(self) -> _WireMarks:
        return self

    def __exit__(self, *exc: object) -> None:
        for connection in self.opened:
            connection.close()


# Not sorted by parameter order: SQLite would then insert row by row. A batch holds one
# touch per enrollment, so the enrollment id tells which id is whose.
_INSERT_TOUCH = insert(Touch).returning(Touch.enrollment_id, Touch.id)
_MARK_SENT = (update(Touch).where(Touch.id.in_(bindparam("ids", expanding=True)))
              .values(state="sent", sent_at=bindparam("at")).execution_options(synchronize_session=False))


def _gives_caps_back(item: PlannedEmail, outcome: str) -> bool:
    """A send that will be tried again, or that no server saw, does not count against the caps."""
    never_reached = item.error is not None and item.error.code == 0 and not isinstance(item.error, DeliveryUnknown)
    return outcome in ("retry", "blocked", "relay_retry") or never_reached


def _relay_retry(session: Session, now: datetime, settings: Settings, planned: list[PlannedEmail],
                 outcomes: list[str]) -> list[tuple[mailboxes.Mailbox, str]]:
    """The batch's emails whose relay was down (or that were not tried) go again soon, as a batch.

    Nothing of them went out, so none is counted against its message: no attempt, no
    bounce, caps given back. Each mailbox whose relay failed counts one outage; the
    retry comes after relay_retry_seconds x 2^(failures in a row - 1), at most
    relay_retry_max_seconds. An email not tried because the batch's time ran out (its
    relay was fine) is due at once. Returns each failed relay's mailbox and error, for the
    caller to count (``mailboxes.relay_failed``); a relay that took a message ends its outage.
    """
    waiting = [index for index, item in enumerate(planned)
               if outcomes[index] == "claimed" and isinstance(item.error, RelayUnreachable | NotAttempted)]
    failed = {planned[i].mailbox.id: (planned[i].mailbox, str(planned[i].error)) for i in waiting
              if isinstance(planned[i].error, RelayUnreachable)}
    # Failures in a row with this one, as read this tick (another worker's count may land in between).
    counts = {item.mailbox.id: item.mailbox.relay_failures + 1 for item in planned if item.mailbox.id in failed}
    by_due: dict[datetime, list[PlannedEmail]] = {}
    for index in waiting:
        item = planned[index]
        count = counts.get(item.mailbox.id, 0)
        delay = min(settings.relay_retry_seconds * 2 ** (count - 1), settings.relay_retry_max_seconds) if count else 0
        by_due.setdefault(now + timedelta(seconds=delay), []).append(item)
        outcomes[index] = "relay_retry"
    for at, items in sorted(by_due.items()):
        kept = lifecycle.claim_many(session, [(item.ctx.enrollment, item.version + 1) for item in items],
                                    next_due_at=at)
        for item in items:
            touch = item.existing or session.get(Touch, item.touch_id)
            touch.state, touch.reason = "retry", str(item.error)
            session.add(touch)
            if item.ctx.enrollment.id not in kept:
                continue  # changed since the batch's claim (a stop rule, a pause): it decides
            count = counts.get(item.mailbox.id, 0)
            why = (f"relay of {item.mailbox.address} unreachable ({count} in a row): {item.error}" if count
                   else str(item.error))
            decisions.record(session, now, "deferred", f"{why}; send again at {at:%H:%M:%S} UTC",
                             enrollment=item.ctx.enrollment, touch_id=item.touch_id, guard="relay",
                             until=at.isoformat())
    return list(failed.values())


def _outgoing(now: datetime, runtime: Runtime, item: PlannedEmail) -> OutgoingEmail:
    ctx, mailbox, enrollment = item.ctx, item.mailbox, item.ctx.enrollment
    return OutgoingEmail(
        mailbox=mailbox, to=ctx.prospect.email, subject=item.rendered["subject"],
        text=_with_footer(item.rendered["text"], ctx), html=item.rendered["html"], message_id=item.message_id,
        in_reply_to="" if item.new_thread else enrollment.thread_message_id,
        references=[] if item.new_thread else [enrollment.thread_message_id],
        headers=unsubscribe_headers(runtime.settings, ctx.prospect.email), date=now,
        envelope_from=verp.return_path(mailbox.address, item.touch_id, runtime.settings.secret_key),
    )


def _record_sent(session: Session, now: datetime, item: PlannedEmail) -> lifecycle.Move:
    """Record a sent email, or one whose fate is unknown; return its enrollment's move to
    the next step (made with the batch's)."""
    enrollment, mailbox, subject = item.ctx.enrollment, item.mailbox, item.rendered["subject"]
    if item.error is not None:  # it may have arrived: never resent, and the sequence goes on
        touch = item.existing or session.get(Touch, item.touch_id)
        touch.state, touch.reason = "unknown", str(item.error)
        session.add(touch)
        decisions.record(session, now, "unknown", str(item.error), enrollment=enrollment, touch_id=item.touch_id,
                         message_id=item.message_id)
    else:
        if item.existing is not None:
            set_committed_value(item.existing, "state", "sent")
            set_committed_value(item.existing, "sent_at", now)
        decisions.record(session, now, "sent", f"email {subject!r} from {mailbox.address}"
                         + (f", {item.note}" if item.note else ""),
                         enrollment=enrollment, touch_id=item.touch_id, variant=item.variant["name"],
                         message_id=item.message_id)
    thread = {"thread_message_id": item.message_id, "thread_subject": subject} if item.new_thread else {}
    return lifecycle.Move(enrollment, item.version + 1, item.ctx.definition, item.ctx.prospect,
                            {"mailbox_id": mailbox.id, **thread})  # item.version + 1: what the batch's claim left


def _with_footer(text: str, ctx: TouchContext) -> str:
    link = unsubscribe_url(ctx.settings, ctx.prospect.email)
    if link in text:
        return text
    return f"{text}\n\n--\nNot the right time? Unsubscribe with one click: {link}"


def _jitter(mailbox: mailboxes.Mailbox, enrollment: Enrollment) -> float:
    if not mailbox.gap_jitter_seconds:
        return 0.0
    digest = hashlib.sha256(f"{mailbox.id}:{enrollment.id}:{enrollment.current_step}".encode()).digest()
    return digest[0] / 255 * mailbox.gap_jitter_seconds


def _delivery_failed(session: Session, now: datetime, runtime: Runtime, item: PlannedEmail) -> str:
    """The email did not go: hand a refusal to the stop rules, try an unreached server again
    (caller commits)."""
    exc, enrollment = item.error, item.ctx.enrollment
    touch = item.existing or session.get(Touch, item.touch_id)
    exc = _ours_to_fix(exc) or exc
    if isinstance(exc, UnsendableMessage):  # no retry can help (and no address is at fault): a person fixes the text
        touch.state, touch.reason = "blocked", str(exc)
        session.add(touch)
        decisions.record(session, now, "blocked", str(exc), enrollment=enrollment, touch_id=touch.id, guard="message")
        if lifecycle.claim(session, enrollment, item.version + 1):  # unchanged since the batch's claim
            lifecycle.pause(session, now, enrollment, f"needs attention: {exc}")
        return "blocked"
    attempts = 1 + len(session.exec(  # this send's own decision is not written yet
        select(Decision.id).where(Decision.touch_id == touch.id, Decision.kind == "send_failed")
    ).all())
    decisions.record(session, now, "send_failed", str(exc), enrollment=enrollment, touch_id=touch.id, code=exc.code,
                     attempt=attempts)
    touch.state, touch.reason = "failed", str(exc)
    session.add(touch)
    if not lifecycle.claim(session, enrollment, item.version + 1):  # changed since the batch's claim
        return "failed"
    if exc.code == 0:
        return _unreached(session, now, enrollment, touch, exc, attempts)
    runtime.on_delivery_error(session, now, touch, enrollment, exc)  # a bounce: the rules say what follows
    if touch.state == "retry":
        return "retry"
    if enrollment.state == "active" and enrollment.current_step == touch.step_index:
        # The rules neither retried, stopped nor paused it: the step cannot be sent.
        lifecycle.stop(session, now, enrollment, f"email refused: {exc}", rule="delivery")
    return "failed"


def _ours_to_fix(exc: DeliveryError) -> UnsendableMessage | None:
    """A 5xx refusing the message itself (too big, a line too long, bad syntax, its content) is
    our fault, like a message refused before sending: never a bounce of the recipient."""
    if isinstance(exc, UnsendableMessage) or not 500 <= exc.code <= 599:
        return None
    verdict = classify_smtp_response(exc.code, exc.message)
    return UnsendableMessage(f"{verdict.reason}: {exc}") if verdict.about_our_message else None


def _unreached(session: Session, now: datetime, enrollment: Enrollment, touch: Touch, exc: DeliveryError,
               attempts: int) -> str:
    """No server answered this send: try again later, up to ``UNREACHED_ATTEMPTS`` sends in all."""
    if attempts >= UNREACHED_ATTEMPTS:
        lifecycle.stop(session, now, enrollment, f"gave up after {attempts} attempts: {exc}", rule="delivery")
        return "failed"
    touch.state = "retry"
    session.add(touch)
    at = now + UNREACHED_BACKOFF * 2 ** (attempts - 1)
    lifecycle.resend_step(session, enrollment, touch.step_index, at, forget_thread=False)
    decisions.record(session, now, "retry", f"no server answered: send again at {at:%Y-%m-%d %H:%M} UTC "
                     f"(attempt {attempts + 1} of {UNREACHED_ATTEMPTS})", enrollment=enrollment,
                     touch_id=touch.id, until=at.isoformat())
    return "retry"
