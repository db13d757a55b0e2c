"""Hard / soft / block decisions, for SMTP-time refusals and bounce texts alike."""

from __future__ import annotations

import pytest

from sequencer.inbound import classify_smtp_response
from sequencer.inbound.bounces import classify_status


@pytest.mark.parametrize(
    ("code", "message", "bounce_type", "status"),
    [
        (550, "5.1.1 <x@example.com>: Recipient address rejected: User unknown", "hard", "5.1.1"),
        (550, "Requested action not taken: mailbox unavailable", "hard", "550"),
        (550, "No such user here", "hard", "550"),
        (553, "sorry, that domain isn't in my list of allowed rcpthosts", "block", "553"),  # relay_denied
        (452, "4.2.2 The email account that you tried to reach is over quota", "soft", "4.2.2"),
        (552, "5.2.2 Mailbox full", "soft", "5.2.2"),
        (552, "Requested mail action aborted", "soft", "552"),
        (421, "Service not available, closing transmission channel", "soft", "421"),
        (451, "4.7.1 Greylisted, please try again later", "soft", "4.7.1"),
        (
            554,
            "5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org",
            "block",
            "5.7.1",
        ),
        (
            550,
            "5.7.26 Unauthenticated email is not accepted due to domain's DMARC policy",
            "block",
            "5.7.26",
        ),
        (550, "Message rejected because of poor sender reputation", "block", "550"),
        (554, "Transaction failed", "block", "554"),
        (550, "5.0.0 User unknown", "hard", "5.0.0"),
        (550, "5.0.0 Your IP is blacklisted", "block", "5.0.0"),
        (550, "5.1.8 Sender address rejected: Domain not found", "block", "5.1.8"),
        (550, "5.2.1 The email account that you tried to reach is disabled", "soft", "5.2.1"),  # suspended
        (550, "5.4.1 Recipient address rejected: Access denied", "hard", "5.4.1"),
    ],
)
def test_smtp_response(code: int, message: str, bounce_type: str, status: str) -> None:
    verdict = classify_smtp_response(code, message)
    assert (verdict.bounce_type, verdict.status_code) == (bounce_type, status)
    assert verdict.reason


def test_ip_address_is_not_read_as_a_status_code() -> None:
    verdict = classify_smtp_response(550, "Client host [192.5.1.1] said: no such user")
    assert verdict.status_code == "550"
    assert verdict.bounce_type == "hard"


def test_success_codes_are_not_refusals() -> None:
    with pytest.raises(ValueError, match="250"):
        classify_smtp_response(250, "2.0.0 OK")


def test_specific_code_wins_over_misleading_text() -> None:
    assert classify_status("5.1.1", "blocked by policy").bounce_type == "hard"


def test_a_failure_nothing_explains_never_suppresses() -> None:
    """Suppression is forever: a permanent failure with no reason is ``unknown`` and soft, not hard."""
    for permanent in (True, False):
        verdict = classify_status(None, "it went wrong", permanent=permanent)
        assert (verdict.bounce_type, verdict.bounce_reason) == ("soft", "unknown")


def test_a_temporary_failure_is_never_hard() -> None:
    assert classify_status("4.1.1", "user unknown").bounce_type == "soft"
    assert classify_smtp_response(450, "Host unknown").bounce_reason == "network_error"
