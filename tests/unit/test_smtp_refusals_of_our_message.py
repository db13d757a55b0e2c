"""A refusal about the message we sent (too big, a line too long, bad syntax, its content) is ours
to fix; one about the recipient or about us as a sender keeps its hard / soft / block verdict."""

from __future__ import annotations

import pytest

from sequencer.inbound import classify_smtp_response

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("code", "message", "status"),
    [
        (552, "5.3.4 Message size exceeds fixed maximum message size", "5.3.4"),
        (552, "5.2.3 Your message exceeded Google's message size limits", "5.2.3"),
        (500, "Line too long (see RFC5321 4.5.3.1.6)", "500"),  # aiosmtpd, no enhanced code
        (500, "5.5.0 Line too long", "5.5.0"),
        (555, "5.5.2 Syntax error", "5.5.2"),
        (501, "Syntax error in parameters or arguments", "501"),
        (554, "5.6.0 Mail message is malformed. Not accepted.", "5.6.0"),
        (550, "5.6.11 SMTPSEND.BareLinefeedsAreIllegal; message contains bare linefeeds", "5.6.11"),
        (552, "Error: message size exceeds fixed maximum message size", "552"),
        (554, "Transaction failed: message too big", "554"),
        (550, "5.0.0 Header line too long", "5.0.0"),
    ],
)
def test_a_refusal_of_our_message_is_ours_to_fix(code: int, message: str, status: str) -> None:
    verdict = classify_smtp_response(code, message)
    assert verdict.about_our_message, verdict
    assert verdict.status_code == status and verdict.reason.startswith("our message was refused")
    assert verdict.bounce_type == "soft"  # a reader that ignores the flag suppresses nothing


@pytest.mark.parametrize(
    ("code", "message", "bounce_type"),
    [
        (550, "5.1.1 user unknown", "hard"),
        (550, "5.5.0 Requested action not taken: mailbox unavailable", "hard"),
        (501, "5.1.3 Bad recipient address syntax", "hard"),
        (554, "5.6.0 Message rejected as spam", "block"),
        (552, "5.2.2 Mailbox full", "soft"),
        (552, "Requested mail action aborted", "soft"),
        (452, "4.3.4 Message size exceeds fixed limit for now", "soft"),  # temporary: retried, not ours to fix
        (554, "Transaction failed", "block"),
    ],
)
def test_a_refusal_of_the_recipient_or_of_us_keeps_its_verdict(code: int, message: str, bounce_type: str) -> None:
    verdict = classify_smtp_response(code, message)
    assert not verdict.about_our_message and verdict.bounce_type == bounce_type, verdict
