"""What the engine needs from outside, as one object: wiring only, no state.

``sequencer.app.wiring.build`` makes the production one from settings; every entry
point (the embedded loop, Celery, the CLI, the tests) gets it from there. Per-tick reads
live in a ``TickState``, never here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from channels.email import DeliveryError
from sequencer.core.config import Settings
from sequencer.core.models import Enrollment, Touch
from sequencer.engine.guards import Guard
from sequencer.rules.book import RuleBook

# Why a sending domain may not send now ("" when it may).
DomainProblem = Callable[[Session, datetime, str], str]
# What a refusal at send time does: (session, now, touch, enrollment, error) -> None;
# production hands it to the stop rules as a bounce.
DeliveryErrorHandler = Callable[[Session, datetime, Touch, Enrollment, DeliveryError], None]


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    sender: Any  # has send_many(list[OutgoingEmail]) -> each one's DeliveryError or None (SmtpSender)
    guards: tuple[Guard, ...]
    domain_problem: DomainProblem
    on_delivery_error: DeliveryErrorHandler
    rules: RuleBook
