"""The suppression send guard: the last look at the list before a touch goes out.

Enrollment checks the list too, but a person can unsubscribe, bounce or become a
customer while a sequence is waiting; only a check immediately before each touch
honours that. The guard applies to every channel: someone on the list must not get a
call or a LinkedIn message either.
"""

from __future__ import annotations

from sequencer.engine.guards import GO, TouchContext, Verdict, block
from suppression.store import find_suppression

GUARD = "suppression"


def suppression_guard(ctx: TouchContext) -> Verdict:
    """Block the touch when the prospect's address, domain or account is suppressed.

    An address that cannot be normalised blocks email touches (there is nowhere safe
    to send them) but still lets other channels through after the account check.
    """
    account_id = ctx.account.id if ctx.account is not None else ctx.prospect.account_id
    email = ctx.prospect.email
    read = ctx.cache.get("suppressed", {})  # the tick read the list for all its touches at once
    try:
        entry = read[(email, account_id)] if (email, account_id) in read else find_suppression(
            ctx.session, ctx.now, email, account_id)
    except ValueError as exc:
        if ctx.channel == "email":
            return block(GUARD, f"unusable address: {exc}")
        entry = find_suppression(ctx.session, ctx.now, None, account_id)
    if entry is None:
        return GO
    return block(GUARD, f"suppressed: {entry.reason} ({entry.kind} {entry.value})")
