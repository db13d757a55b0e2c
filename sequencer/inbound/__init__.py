"""Inbound mail classification: pure functions from raw bytes to a decision.

No database, no network, no clock: the caller fetches mail (IMAP, webhook,
SMTP sink), calls ``classify`` and applies stop rules to the answer.
"""

from sequencer.inbound.bounces import BounceVerdict, classify_smtp_response
from sequencer.inbound.classify import Classification, classify
from sequencer.inbound.parse import MAX_PARSE_BYTES, ParsedMessage, parse_message

__all__ = [
    "MAX_PARSE_BYTES",
    "BounceVerdict",
    "Classification",
    "ParsedMessage",
    "classify",
    "classify_smtp_response",
    "parse_message",
]
