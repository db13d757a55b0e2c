"""Manager-owned stop rules: what the engine does when a reply, bounce or other event arrives.

Managers own these rules, not SDRs, so they live in one YAML file (``rules_file`` in the
settings) that is validated as a whole: a file with any mistake is refused with *every*
mistake listed as ``file:line: message``, and the engine keeps nothing half-loaded.

The file has two optional top-level keys::

    defaults:                       # applies to every sequence
      reply: [stop]
      reply.positive: [stop_account]
      out_of_office:
        - pause_until_return: {plus_business_days: 1, default_days: 5}
      bounce.hard: [stop, suppress]
    sequences:                      # per-sequence overrides, keyed by sequence name
      funding-round:
        reply.negative: [stop, {suppress: {expires_after_days: 180, reason: manual}}]

A key is an event (``reply``, ``out_of_office``, ``auto_reply``, ``bounce``, ``complaint``,
``unsubscribe_request``, ``left_company``, ``meeting_booked``, ``meeting_declined``,
``meeting_no_show``, ``task``), optionally narrowed by a qualifier: ``reply.positive|negative|neutral``
(the reply's sentiment),
``bounce.hard|soft|block`` (the bounce type), ``meeting_no_show.prospect|ae|sdr|unknown``
(whose fault it was; e.g. ``meeting_no_show.prospect: [{enroll: {sequence: re-engage}}]``) or
``task.connected|not_interested|wrong_number|...`` (the outcome an SDR closed a task with).
Its value is a list of actions applied in order; an action is a bare name (``stop``) or a
one-key mapping with parameters (``{suppress: {expires_after_days: 30}}``):

=====================  ===================================================================
``stop``               stop this enrollment
``stop_prospect``      stop every active enrollment of this prospect, in every sequence
``stop_account``       stop every enrollment at the sender's account (registrable domain);
                       for a free-mail address, every enrollment of the prospect
``pause_until_return`` pause until the out-of-office return date + ``plus_business_days``
                       (default 1), or ``default_days`` (default 5) when no date is known
``suppress``           suppress the sender; ``expires_after_days`` (omitted = forever),
                       ``reason`` (default: hard_bounce / complaint / unsubscribed / manual)
``pause_mailbox_after`` pause the sending mailbox once it has had ``blocks`` block bounces
``retry``              send the step at most ``max_attempts`` times in all (the first send
                       included), ``backoff_hours`` apart; the actions after it apply only
                       once the attempts are used up
``enroll``             enroll the new contacts (e.g. a referral) into ``sequence``
``ignore``             do nothing (must be the only action)
=====================  ===================================================================

Resolution, most specific first: sequence + qualifier, sequence, defaults + qualifier,
defaults, then the built-in defaults (``BUILTIN_RULES``, also shipped as
``templates/rules.yaml``) in the same order. Built-ins fill gaps so that forgetting a
``complaint`` line never means mailing someone who complained; to switch a built-in off,
write ``[ignore]`` explicitly (``sequencer.rules.law`` refuses the switches that would break
the law: honouring unsubscribes, complaints and hard bounces is not optional). Every rule is named for explanations:
``defaults.reply``, ``sequences.funding-round.reply.negative``, ``builtin.bounce.hard``.

This module is pure: it says what the rules are and answers questions; ``parse`` reads a
file into a ``RuleBook``, and ``actions`` carries the actions out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

from channels.tasks import OUTCOMES

# The bounce reasons of ``sequencer.inbound.reasons`` and the bounce type each one is; a rule key may name
# either (``bounce.mailbox_full``, ``bounce.soft``), and a reason's rule wins over its type's.
BOUNCE_REASONS: dict[str, str] = {
    "user_unknown": "hard", "host_unknown": "hard", "moved": "hard", "not_accepting": "hard",
    "suspended": "soft", "mailbox_full": "soft", "message_too_big": "soft", "syntax_error": "soft",
    "content_filtered": "block", "spam_detected": "block", "virus": "block", "policy_blocked": "block",
    "auth_failure": "block", "rate_limited": "block", "relay_denied": "block",
    "expired": "soft", "delayed": "soft", "network_error": "soft", "system_error": "soft", "unknown": "soft",
}

EVENTS: dict[str, tuple[str, ...]] = {
    "reply": ("positive", "negative", "neutral"),
    "out_of_office": (),
    "auto_reply": (),
    "bounce": ("hard", "soft", "block", *BOUNCE_REASONS),
    "complaint": (),
    "unsubscribe_request": (),
    "left_company": (),
    "meeting_booked": (),
    "meeting_declined": (),
    "meeting_no_show": ("prospect", "ae", "sdr", "unknown"),
    # A task the SDR closed, qualified by its outcome (a meeting booked is ``meeting_booked``).
    "task": tuple(outcome for outcome in OUTCOMES if outcome != "meeting_booked"),
}


class RulesError(ValueError):
    """The rules file cannot be used; ``errors`` lists every problem as ``file:line: ...``."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Action:
    """One thing the engine must do; subclasses carry the parameters."""

    name = ""

    def __str__(self) -> str:
        values = ((f.name, getattr(self, f.name)) for f in fields(self))
        params = ", ".join(f"{name}={value}" for name, value in values if value is not None)
        return f"{self.name}({params})" if params else self.name


@dataclass(frozen=True)
class Stop(Action):
    name = "stop"


@dataclass(frozen=True)
class StopProspect(Action):
    name = "stop_prospect"


@dataclass(frozen=True)
class StopAccount(Action):
    name = "stop_account"


@dataclass(frozen=True)
class PauseUntilReturn(Action):
    name = "pause_until_return"
    plus_business_days: int = 1
    default_days: int = 5


@dataclass(frozen=True)
class Suppress(Action):
    name = "suppress"
    expires_after_days: int | None = None
    reason: str = "manual"


@dataclass(frozen=True)
class PauseMailboxAfter(Action):
    name = "pause_mailbox_after"
    blocks: int = 5


@dataclass(frozen=True)
class Retry(Action):
    name = "retry"
    max_attempts: int = 3
    backoff_hours: float = 24


@dataclass(frozen=True)
class Enroll(Action):
    name = "enroll"
    sequence: str = ""


@dataclass(frozen=True)
class Ignore(Action):
    name = "ignore"


ACTIONS: dict[str, type[Action]] = {
    cls.name: cls
    for cls in (
        Stop,
        StopProspect,
        StopAccount,
        PauseUntilReturn,
        Suppress,
        PauseMailboxAfter,
        Retry,
        Enroll,
        Ignore,
    )
}


@dataclass(frozen=True)
class ResolvedRule:
    """The rule that applies to one event: its name (for explanations) and its actions."""

    name: str
    actions: list[Action]


BUILTIN_RULES: dict[str, tuple[Action, ...]] = {
    "reply": (Stop(),),
    "reply.positive": (StopAccount(),),
    "reply.negative": (StopProspect(),),  # "not interested": no other sequence goes on mailing them
    "out_of_office": (PauseUntilReturn(plus_business_days=1, default_days=5),),
    "auto_reply": (Ignore(),),
    "bounce": (Stop(),),
    "bounce.hard": (Stop(), Suppress(reason="hard_bounce")),
    "bounce.soft": (Retry(max_attempts=3, backoff_hours=24), Stop()),
    "bounce.block": (PauseMailboxAfter(blocks=5), Retry(max_attempts=3, backoff_hours=24), Stop()),
    # a suspended account may come back: stopped, not suppressed (a rule may add a suppress with an expiry)
    "bounce.suspended": (Stop(),),
    "bounce.delayed": (Ignore(),),  # the sending server is still trying: a resend could arrive twice
    "complaint": (Stop(), Suppress(reason="complaint")),
    "unsubscribe_request": (Stop(), Suppress(reason="unsubscribed")),
    "left_company": (Stop(),),
    "meeting_booked": (StopProspect(),),  # every sequence they are in, not only the one that booked
    "meeting_no_show": (Ignore(),),  # a team that re-engages a prospect who did not show says so in its rules
    "meeting_declined": (Ignore(),),  # recorded on the timeline; a team that re-engages says so in its rules
    "task": (Ignore(),),  # the sequence moves on to its next step
    "task.not_interested": (StopProspect(),),
}


class RuleBook:
    """Validated rules; answers "what happens on this event in this sequence?"."""

    def __init__(
        self,
        defaults: dict[str, tuple[Action, ...]],
        sequences: dict[str, dict[str, tuple[Action, ...]]],
        source: str = "built-in defaults",
    ) -> None:
        self.source = source
        self._scopes: list[tuple[str, dict[str, tuple[Action, ...]]]] = [
            ("defaults", defaults),
            ("builtin", BUILTIN_RULES),
        ]
        self._sequences = sequences

    def actions_for(
        self,
        event: str,
        sequence_name: str | None,
        *,
        sentiment: str | None = None,
        bounce_type: str | None = None,
        bounce_reason: str | None = None,
    ) -> ResolvedRule:
        """The most specific rule for ``event``; always returns one (built-ins cover all).

        ``event`` may carry its qualifier (``meeting_no_show.prospect``), as the events
        whose qualifier is neither a sentiment nor a bounce type do. Raises ``ValueError``
        for an unknown event or qualifier: that is a caller bug, not a rules-file problem.
        """
        event, _, named = event.partition(".")
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}")
        if named and event in ("reply", "bounce"):
            raise ValueError(f"{event}: give its qualifier as sentiment or bounce_type, not {named!r}")
        qualifier = sentiment if event == "reply" else bounce_type if event == "bounce" else (named or None)
        stray = (
            bounce_type
            if event == "reply"
            else sentiment
            if event == "bounce"
            else (sentiment or bounce_type)
        )
        if stray is not None:
            raise ValueError(f"{event} does not take that qualifier: {stray!r}")
        if qualifier is not None and qualifier not in EVENTS[event]:
            raise ValueError(f"unknown {event} qualifier {qualifier!r}")
        keys = [f"{event}.{qualifier}", event] if qualifier else [event]
        if event == "bounce" and bounce_reason is not None:  # the reason's rule first: bounce.mailbox_full
            if bounce_reason not in BOUNCE_REASONS:
                raise ValueError(f"unknown bounce reason {bounce_reason!r}")
            keys.insert(0, f"bounce.{bounce_reason}")
        scopes = list(self._scopes)
        if sequence_name is not None and sequence_name in self._sequences:
            scopes.insert(0, (f"sequences.{sequence_name}", self._sequences[sequence_name]))
        for scope, rules in scopes:
            for key in keys:
                if key in rules:
                    return ResolvedRule(f"{scope}.{key}", list(rules[key]))
        raise AssertionError(f"built-in rules do not cover {event}")  # BUILTIN_RULES is total

    @property
    def sequences(self) -> tuple[str, ...]:
        """The sequences the file has overrides for."""
        return tuple(self._sequences)

    def rules(self) -> Iterator[ResolvedRule]:
        """Every rule written in the file (not the built-ins it leaves in force), in order."""
        scoped = [("defaults", self._scopes[0][1])]
        scoped += [(f"sequences.{name}", rules) for name, rules in self._sequences.items()]
        for scope, rules in scoped:
            for key, actions in rules.items():
                yield ResolvedRule(f"{scope}.{key}", list(actions))

    def effective_defaults(self) -> Iterator[ResolvedRule]:
        """For every event key, the rule a sequence without overrides would get."""
        for event, qualifiers in EVENTS.items():
            for qualifier in (None, *qualifiers):
                key = f"{event}.{qualifier}" if qualifier else event
                for scope, rules in self._scopes:
                    if key in rules:
                        yield ResolvedRule(f"{scope}.{key}", list(rules[key]))
                        break
