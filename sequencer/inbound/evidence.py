"""What an inbound message may act on: mail is evidence, not a command.

Anyone can send us a message that looks like a bounce, a complaint or an unsubscribe
request, with any From header and any recipient in it. So a message acts only on what
it provably concerns, and what it proves is the touch it is matched to:

* strong evidence (``sequencer.inbound.match``): one of our own Message-IDs (64 random
  bits, known only to us and to the recipient of that touch) in In-Reply-To, References
  or the returned headers of a DSN, or a VERP token whose MAC verifies with our secret;
* weak evidence: the sender's address and subject equal those of a touch we sent, both
  of which a stranger can write.

A bounce or a complaint acts only on strong evidence: it suppresses an address, stops
an enrollment, retries, and counts against a mailbox. A message that names no touch of
ours acts on nothing. An unsubscribe request by reply acts when it comes from the
address the touch was sent to, or is tied strongly to that touch. A message held back
here is still stored and its decision recorded, so a person sees it in ``explain``.
"""

from __future__ import annotations

from sequencer.inbound.classify import Classification
from sequencer.inbound.match import Match
from suppression.normalize import normalize_email

STRONG_ONLY = frozenset({"bounce", "complaint"})


def withheld(result: Classification, match: Match) -> str | None:
    """Why this message's rule must not run (it is only stored and shown), or None when it may."""
    if match.touch is None:
        return "no matching touch"
    if result.kind in STRONG_ONLY and match.strength != "strong":
        return (f"a {result.kind.replace('_', ' ')} must name our mail by its Message-ID or a signed return path; "
                f"this one matches only weakly ({match.evidence})")
    if result.kind == "unsubscribe_request" and match.strength != "strong" \
            and _address(result.from_address) != match.touch.recipient:
        return (f"it comes from {result.from_address or 'no address'}, not from {match.touch.recipient}, "
                "and is not tied to the touch by its Message-ID")
    return None


def _address(raw: str | None) -> str:
    try:
        return normalize_email(raw or "")
    except ValueError:
        return ""
