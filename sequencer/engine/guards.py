"""Send guards: an ordered list of small checks run before every touch.

Each guard looks at one ``TouchContext`` and returns a ``Verdict``: go, defer until a
time, or block with a reason. The engine runs the list in order and acts on the first
verdict that is not "go"; adding a guard means adding a small function, not a branch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlmodel import Session

from sequencer.core.config import Settings
from sequencer.core.models import Account, Enrollment, Mailbox, Prospect


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
    mailbox: Mailbox | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    cache: dict[Any, Any] = field(default_factory=dict)  # the tick's lookups, read for all its touches


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
