"""What no rules file may switch off: the law and the mailbox providers' rules, checked as a whole.

A manager may tune the stop rules, but three events are not theirs to ignore:

- an **unsubscribe request** (CAN-SPAM §5(a)(4): honour an opt-out and stop mailing; GDPR
  art. 21(3): once a person objects, their data is no longer processed for direct marketing;
  RFC 8058 and Gmail's and Yahoo's 2024 bulk-sender rules: one-click unsubscribes are honoured);
- a **spam complaint** (the same providers require senders to stop mailing whoever complained);
- a **hard bounce** (the address does not exist: mailing it again is what gets a sending
  domain listed, and a retry cannot make it exist).

Each must stop the enrollment (``stop``, ``stop_prospect`` or ``stop_account``) and
suppress the address, an unsubscribe or a complaint for good (no ``expires_after_days``), a
hard bounce for at least ``HARD_BOUNCE_MIN_DAYS``, and a hard bounce may not be retried.
The check is made on the rule each event *resolves to* for every scope, so
``defaults: {bounce: [retry, stop]}`` is refused too: hard bounces would fall back to it.

Retries and back-offs are bounded as well (``LIMITS``): a rules file cannot make the engine
hammer a server that refused us, nor park a person for a year.
"""

from __future__ import annotations

from collections.abc import Iterator

from sequencer.rules.book import (
    BOUNCE_REASONS,
    Action,
    Ignore,
    ResolvedRule,
    Retry,
    RuleBook,
    Stop,
    StopAccount,
    StopProspect,
    Suppress,
)

STOPS = (Stop, StopProspect, StopAccount)
HARD_BOUNCE_MIN_DAYS = 180
_HARD = "a hard-bounced address must not be emailed again (mailbox providers' bulk-sender rules)"

# (event to resolve, how it is asked, why it must be honoured); a hard bounce is asked by type and by
# each hard reason, since a reason's rule (bounce.user_unknown) wins over its type's
PROTECTED: tuple[tuple[str, dict[str, str], str], ...] = (
    ("unsubscribe_request", {}, "an unsubscribe request must be honoured (CAN-SPAM, GDPR art. 21, RFC 8058)"),
    ("complaint", {}, "a spam complaint must be honoured (mailbox providers' bulk-sender rules)"),
    *(("bounce", {"bounce_type": "hard", **({"bounce_reason": reason} if reason else {})}, _HARD)
      for reason in ("", *(name for name, kind in BOUNCE_REASONS.items() if kind == "hard"))),
)

# action -> parameter -> (lowest, highest) allowed, beyond the parser's own checks
LIMITS: dict[str, dict[str, tuple[float, float]]] = {
    "retry": {"max_attempts": (1, 5), "backoff_hours": (1, 168)},
    "pause_until_return": {"plus_business_days": (0, 10), "default_days": (1, 30)},
    "pause_mailbox_after": {"blocks": (1, 50)},
}


def violations(book: RuleBook, filename: str, lines: dict[str, int]) -> list[str]:
    """Every way ``book`` would break the rules above, as ``file:line: message``.

    ``lines`` maps a rule's name (``defaults.bounce``) to the line of its key, and
    ``"RULE#ACTION"`` to the line of that action. Built-in rules are lawful (a test says so),
    so a problem always points at a line the manager wrote.
    """
    errors: list[str] = []
    seen: set[str] = set()
    for scope in (None, *book.sequences):
        for event, kwargs, why in PROTECTED:
            rule = book.actions_for(event, scope, **kwargs)
            if rule.name in seen:
                continue
            seen.add(rule.name)
            for problem in _unlawful(event, kwargs, rule):
                asked = f"{event}.{kwargs.get('bounce_reason') or kwargs['bounce_type']}" if kwargs else event
                via = "" if rule.name.endswith(asked) else f" ({asked} falls back to this rule)"
                errors.append(f"{filename}:{lines.get(rule.name, 1)}: {rule.name}{via}: {why}: {problem}")
    for rule in book.rules():
        for action in rule.actions:
            errors.extend(f"{filename}:{lines.get(f'{rule.name}#{action.name}', lines.get(rule.name, 1))}: "
                          f"{rule.name}: {message}" for message in _out_of_bounds(action))
    return errors


def _unlawful(event: str, kwargs: dict[str, str], rule: ResolvedRule) -> Iterator[str]:
    actions = rule.actions
    if any(isinstance(action, Ignore) for action in actions):
        yield "it may not be ignored"
        return
    if not any(isinstance(action, STOPS) for action in actions):
        yield "add stop (or stop_prospect, stop_account)"
    suppress = next((action for action in actions if isinstance(action, Suppress)), None)
    if suppress is None:
        yield "add suppress, so no other sequence mails the address"
    elif kwargs.get("bounce_type") == "hard":
        days = suppress.expires_after_days
        if days is not None and days < HARD_BOUNCE_MIN_DAYS:
            yield f"suppress.expires_after_days must be at least {HARD_BOUNCE_MIN_DAYS} (or left out), got {days}"
    elif suppress.expires_after_days is not None:
        yield f"the suppression must not expire (drop expires_after_days: {suppress.expires_after_days})"
    if kwargs.get("bounce_type") == "hard" and any(isinstance(action, Retry) for action in actions):
        yield "a hard bounce may not be retried (the address does not exist)"


def _out_of_bounds(action: Action) -> Iterator[str]:
    for param, (low, high) in LIMITS.get(action.name, {}).items():
        value = getattr(action, param)
        if not low <= value <= high:
            yield f"{action.name}.{param} must be between {low:g} and {high:g}, got {value:g}"
