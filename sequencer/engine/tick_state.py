"""What one tick has read, handed to every step and guard of that tick.

The tick reads in bulk (the due enrollments, their prospects, accounts, versions and
touches, the suppression verdicts, the recipient domains' cap counters) so a step does
not query per touch. This object carries those reads explicitly; it lives for one tick
(``advance`` makes a fresh one) and is never stored on the ``Runtime``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from sequencer.core.models import Touch
from sequencer.sending import caps, mailboxes
from suppression.models import SuppressionEntry


@dataclass
class TickState:
    session: Session
    # Rows read this tick, kept referenced: the session's identity map holds rows weakly,
    # and a row it still holds is answered by ``session.get`` without a query.
    rows: list[Any] = field(default_factory=list)
    # The touches the due enrollments already have, by (enrollment id, step index);
    # None when they were not read in bulk (a lone ``advance``): then a step asks.
    touches: dict[tuple[int, int], Touch] | None = None
    # Suppression verdicts by (email, account id), read for all the tick's prospects at once.
    suppressed: dict[tuple[str, int | None], SuppressionEntry | None] = field(default_factory=dict)
    # Rotation pools by (pool, owner), read fresh once a tick: a mailbox paused now counts next tick.
    rosters: dict[tuple, mailboxes.Roster] = field(default_factory=dict)
    tally: caps.Tally = field(init=False)

    _by_enrollment: dict[int, list[Touch]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.tally = caps.Tally(self.session)

    def touches_of(self, enrollment_id: int) -> list[Touch] | None:
        """The touches read in bulk for one enrollment (indexed once a tick); None when not read in bulk."""
        if self.touches is None:
            return None
        if self._by_enrollment is None:
            self._by_enrollment = {}
            for (owner, _), touch in self.touches.items():
                self._by_enrollment.setdefault(owner, []).append(touch)
        return self._by_enrollment.get(enrollment_id, [])
