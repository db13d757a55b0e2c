"""Send guards: an ordered list of small checks run before every touch.

Each guard looks at one ``TouchContext`` and returns a ``Verdict``: go, defer until a
time, or block with a reason. The engine runs the list in order and acts on the first
verdict that is not "go"; adding a guard means adding a small function, not a branch.
Caps, the minimum gap and the sending domain's health are not guards: they belong to the
choice of a mailbox (``sending.mailboxes.choose``), which only email touches make.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlmodel import Session

from sequencer.core.config import Settings
from sequencer.core.models import Account, Enrollment, Mailbox, Prospect
from sequencer.engine.tick_state import TickState
from sequencer.enrollments import lifecycle
from sequencer.sequences import schedule
from suppression.store import find_suppression


@dataclass
class TouchContext:
    """Everything a guard may look at for one touch about to happen."""

    session: Session
    now: datetime
    settings: Settings
    enrollment: Enrollment
    prospect: Prospect
    account: Account | None
    step: dict[str, Any]
    channel: str
    definition: dict[str, Any]  # the enrollment's sequence version
    tick: TickState
    mailbox: Mailbox | None = None


@dataclass(frozen=True)
class Verdict:
    action: Literal["go", "defer", "block"]
    reason: str = ""
    until: datetime | None = None
    guard: str = ""

    @property
    def go(self) -> bool:
        return self.action == "go"


GO = Verdict("go")


def defer(guard: str, until: datetime, reason: str) -> Verdict:
    return Verdict("defer", reason=reason, until=until, guard=guard)


def block(guard: str, reason: str) -> Verdict:
    return Verdict("block", reason=reason, guard=guard)


Guard = Callable[[TouchContext], Verdict]


def run_guards(guards: list[Guard], ctx: TouchContext) -> Verdict:
    """Return the first verdict that is not "go", or ``GO`` when every guard agrees."""
    for guard in guards:
        verdict = guard(ctx)
        if not verdict.go:
            return verdict
    return GO


def suppression_guard(ctx: TouchContext) -> Verdict:
    """Block the touch when the prospect's address, domain or account is suppressed.

    Enrollment checks the list too, but a person can unsubscribe, bounce or become a
    customer while a sequence waits; only a look immediately before each touch honours
    that. It applies to every channel: someone on the list gets no call or LinkedIn
    message either. An address that cannot be normalised blocks email touches (there is
    nowhere safe to send them) but lets other channels through after the account check.
    """
    account_id = ctx.account.id if ctx.account is not None else ctx.prospect.account_id
    email = ctx.prospect.email
    read = ctx.tick.suppressed  # the tick read the list for all its touches at once
    try:
        entry = read[(email, account_id)] if (email, account_id) in read else find_suppression(
            ctx.session, ctx.now, email, account_id)
    except ValueError as exc:
        if ctx.channel == "email":
            return block("suppression", f"unusable address: {exc}")
        entry = find_suppression(ctx.session, ctx.now, None, account_id)
    if entry is None:
        return GO
    return block("suppression", f"suppressed: {entry.reason} ({entry.kind} {entry.value})")


def window_guard(ctx: TouchContext) -> Verdict:
    """A touch waits for the prospect's local working hours, and for the end of a public holiday."""
    window = lifecycle.window_of(ctx.definition)
    tz, country = ctx.prospect.timezone, ctx.prospect.country
    opens = schedule.next_open(ctx.now, window, tz, country)
    if opens <= ctx.now:
        return GO
    local_day = ctx.now.astimezone(schedule.zone(tz)).date()
    holiday = schedule.holiday_name(country, local_day)
    why = f"public holiday in {country}: {holiday}" if holiday else "outside the sending window"
    return defer("window", opens,
                 f"{why}; next window opens {opens.astimezone(schedule.zone(tz)):%a %Y-%m-%d %H:%M} {tz}")


# The guards every touch passes, in order: the list first (a suppressed person is never
# even deferred), then the window.
DEFAULT_GUARDS: tuple[Guard, ...] = (suppression_guard, window_guard)
