"""The production wiring: the engine's ``Runtime`` from settings, with the real SMTP
sender, every guard, the sending-domain check and the managers' stop rules.

Every entry point builds its runtime here (the embedded loop, Celery, the demo, the
tests), so what runs in production is what is tested.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from channels.email import DeliveryError, SmtpSender
from channels.outbox import OutboxSender
from sequencer.core.config import Settings
from sequencer.core.models import Enrollment, Touch
from sequencer.domains.health import paused_problem, sending_problem
from sequencer.engine.guards import DEFAULT_GUARDS
from sequencer.engine.runtime import Runtime
from sequencer.inbound.bounce_log import record_bounce
from sequencer.inbound.bounces import classify_smtp_response
from sequencer.rules.actions import Event, apply, rulebook

DOMAIN_MEMORY = timedelta(minutes=1)


def sender_for(settings: Settings) -> SmtpSender | OutboxSender:
    """What delivers email: SMTP, or in the sandbox (``sandbox = true``, ``run --sandbox``) the local
    Maildir ``sandbox_outbox``, so no message of a trial run ever leaves the machine."""
    if settings.sandbox:
        return OutboxSender(settings.sandbox_outbox)
    return SmtpSender(timeout=settings.smtp_timeout)


def build(settings: Settings, sender: object | None = None, check_domains: bool = True) -> Runtime:
    """The production wiring; ``check_domains=False`` only for a workspace with no DNS at all.

    In the sandbox the sending-domain checks are skipped (its mail never leaves, so a laptop
    without the domain's DNS can try a sequence); everything else runs as for real. Real
    sending always checks them.
    """
    if settings.sandbox:
        sender, check_domains = sender or OutboxSender(settings.sandbox_outbox), False

    remembered: dict[str, tuple[datetime, str]] = {}

    def domain_problem(session: Session, now: datetime, domain: str) -> str:
        """Why ``domain`` may not send ("" when it may), remembered for up to a minute.

        The verdict row is itself cached until its DNS TTL (at least five minutes);
        remembering the answer in the process saves a read per touch, and a re-check made
        elsewhere counts within a minute.
        """
        if domain in remembered and remembered[domain][0] > now:
            return remembered[domain][1]
        # Without DNS checks a domain's pause (deliverability protection) still holds.
        problem = sending_problem(session, now, settings, domain) if check_domains else paused_problem(session, domain)
        remembered[domain] = (now + DOMAIN_MEMORY, problem)
        return problem

    rules = rulebook(settings)

    def delivery_error(session: Session, now: datetime, touch: Touch, enrollment: Enrollment,
                       exc: DeliveryError) -> None:
        """A refusal at send time is a bounce like any other: the same classes, the same rules."""
        verdict = classify_smtp_response(exc.code, exc.message)
        record_bounce(session, now, touch, source="smtp", bounce_type=verdict.bounce_type,
                      bounce_reason=verdict.bounce_reason, status_code=verdict.status_code, diagnostic=exc.message,
                      about_our_message=verdict.about_our_message)
        event = Event(name="bounce", bounce_type=verdict.bounce_type, bounce_reason=verdict.bounce_reason,
                      address=touch.recipient,
                      summary=f"{verdict.bounce_type} refusal at send time ({verdict.bounce_reason}): {exc}",
                      touch=touch, enrollment=enrollment,
                      detail={"matched_by": "smtp", "status": verdict.status_code or "",
                              "reason": verdict.bounce_reason})
        apply(session, now, rules, event)

    return Runtime(
        settings=settings,
        sender=sender or sender_for(settings),
        guards=DEFAULT_GUARDS,
        domain_problem=domain_problem,
        on_delivery_error=delivery_error,
        rules=rules,
    )
