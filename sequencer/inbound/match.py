"""Which of our touches an inbound message is about, and the evidence for it.

Our outbound Message-IDs are ours alone (64 random bits each), so In-Reply-To and
References are strong evidence; so is the original Message-ID quoted in a bounce or
complaint, and the touch id carried in a bounce's return path (VERP) once its MAC
verifies with our secret (an unsigned or forged token is no evidence at all). When none
of these is present, the sender's address plus the subject without Re:/Fwd:/AW:/SV:
prefixes is a weak fallback, and is recorded as weak so that a person can tell how sure
the engine was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session, select

from channels import verp
from sequencer.core.models import Touch
from sequencer.inbound.classify import Classification

_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv|vs|tr|rv|antw|odp|r)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


@dataclass(frozen=True)
class Match:
    touch: Touch | None
    method: str = ""  # in-reply-to | references | original-message-id | verp | sender+subject
    evidence: str = ""
    strength: str = ""  # strong | weak

    def to_dict(self) -> dict:
        return {"touch_id": self.touch.id if self.touch else None, "method": self.method,
                "evidence": self.evidence, "strength": self.strength}


def base_subject(subject: str) -> str:
    """The subject without reply/forward prefixes, case-folded and with spaces squeezed."""
    return " ".join(_PREFIX.sub("", subject or "").split()).casefold()


def find(session: Session, result: Classification, secret_key: str) -> Match:
    """The best match for a classified message, strongest evidence first.

    ``secret_key`` verifies the VERP token (``settings.secret_key``, the one the send path signs with).
    """
    by_id = [("in-reply-to", result.in_reply_to)] if result.in_reply_to else []
    by_id += [("references", ref) for ref in reversed(result.references)]
    if result.original_message_id:
        by_id.append(("original-message-id", result.original_message_id))
    for method, message_id in by_id:
        touch = session.exec(select(Touch).where(Touch.message_id == message_id)).first()
        if touch is not None:
            return Match(touch, method, f"{method} <{message_id}>", "strong")
    touch_id = verp.touch_id_of(result.verp_token, secret_key)
    if touch_id is not None:
        touch = session.get(Touch, touch_id)
        if touch is not None:
            return Match(touch, "verp", f"return-path token {result.verp_token}", "strong")
    return _weak(session, result)


def _weak(session: Session, result: Classification) -> Match:
    addresses = list(result.bounced_recipients) or (
        [result.complained_recipient] if result.complained_recipient else []
    )
    if not addresses and result.from_address:
        addresses = [result.from_address]
    wanted = base_subject(result.subject)
    for address in addresses:
        touches = session.exec(
            select(Touch)
            .where(Touch.recipient == address.lower(), Touch.channel == "email", Touch.state == "sent")
            .order_by(Touch.sent_at.desc())
            .limit(20)
        ).all()
        for touch in touches:
            if result.kind == "bounce" or (wanted and base_subject(touch.subject) == wanted):
                return Match(touch, "sender+subject", f"{address} / {wanted or 'bounce for this recipient'!r}",
                             "weak")
    return Match(None)
