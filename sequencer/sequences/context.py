"""What trigger filters and step templates see: plain-dict views of the prospect, its
account and the signal that enrolled them, built in one place so both see the same values."""

from __future__ import annotations

from typing import Any

from sequencer.core.config import Settings
from sequencer.core.models import Account, Mailbox, Prospect, Signal
from sequencer.sequences.rendering import present
from suppression.tokens import unsubscribe_url

# What ``sender`` holds (``sender_values``); ``sequences check`` knows these names and no others.
SENDER_FIELDS = ("name", "email", "owner")


def sender_values(mailbox: Mailbox | None, owner: str = "") -> dict[str, Any]:
    """``sender`` for a step: the chosen mailbox, or only its owner for a task no mailbox sends."""
    if mailbox is None:
        return {"owner": owner}
    return dict(zip(SENDER_FIELDS, (mailbox.display_name, mailbox.address, mailbox.owner), strict=True))


def values_of(prospect: Prospect, account: Account | None, signal: Signal | None = None) -> dict[str, Any]:
    """The prospect, account and signal as plain dicts (custom fields included)."""
    prospect_values = {
        "email": prospect.email, "first_name": prospect.first_name, "last_name": prospect.last_name,
        "title": prospect.title, "timezone": prospect.timezone, "country": prospect.country,
        "phone": prospect.phone, "linkedin_url": prospect.linkedin_url, "owner": prospect.owner,
        **(prospect.custom or {}),
    }
    account_values = {}
    if account is not None:
        account_values = {
            "domain": account.domain, "name": account.name, "industry": account.industry,
            "employees": account.employees, "country": account.country, **(account.custom or {}),
        }
    signal_values = {}
    if signal is not None:
        signal_values = {"type": signal.type, "source": signal.source, **(signal.payload or {})}
    return {"prospect": prospect_values, "account": account_values, "signal": signal_values}


def template_context(settings: Settings, prospect: Prospect, account: Account | None, signal: Signal | None,
                     sender: dict[str, Any], sequence: str, step_id: str) -> dict[str, Any]:
    """The names a step template may use (``rendering.CONTEXT_NAMES``); empty values left out."""
    base = values_of(prospect, account, signal)
    return {
        "prospect": present(base["prospect"]), "account": present(base["account"]),
        "signal": present(base["signal"]), "sender": present(sender), "sequence": {"name": sequence},
        "step": {"id": step_id}, "unsubscribe_url": unsubscribe_url(settings, prospect.email),
    }
