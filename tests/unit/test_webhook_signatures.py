"""Booking tools' webhook signatures (sequencer.meetings.webhooks): Cal.com's and Calendly's, as they sign."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from sequencer.meetings.webhooks import (
    CALENDLY_TOLERANCE,
    MAX_BODY,
    WebhookError,
    check_size,
    sign_calcom,
    sign_calendly,
    verify_calcom,
    verify_calendly,
)

SECRET = "whsec-calcom-7f3a9c2e41b8d6"
KEY = "calendly-signing-key-0b5e8d2c"
BODY = b'{"triggerEvent":"BOOKING_CREATED","createdAt":"2026-12-01T09:00:00.412Z","payload":{"uid":"x"}}'
NOW = datetime(2026, 12, 1, 9, 0, 5, tzinfo=UTC)


def refused(call, *args) -> WebhookError:
    with pytest.raises(WebhookError) as caught:
        call(*args)
    return caught.value


def test_calcom_signature_is_the_hex_hmac_of_the_raw_body() -> None:
    # Computed independently of the module, the way Cal.com's sendPayload does (createHmac sha256, hex).
    header = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert sign_calcom(SECRET, BODY) == header
    verify_calcom(SECRET, BODY, header)
    verify_calcom(SECRET, BODY, header.upper())  # hex is hex, whatever its case


@pytest.mark.parametrize("header, says", [
    (None, "X-Cal-Signature-256: missing"),
    ("", "X-Cal-Signature-256: missing"),
    ("no-secret-provided", "has no secret"),
    ("0" * 64, "does not match"),
    ("not hex at all \u00e9", "does not match"),
])
def test_calcom_bad_or_missing_signatures_are_401(header, says) -> None:
    error = refused(verify_calcom, SECRET, BODY, header)
    assert error.status == 401
    assert says in str(error)


def test_calcom_a_changed_body_or_another_secret_does_not_verify() -> None:
    header = sign_calcom(SECRET, BODY)
    assert refused(verify_calcom, SECRET, BODY.replace(b"x", b"y"), header).status == 401
    assert refused(verify_calcom, "another-secret", BODY, header).status == 401


@pytest.mark.parametrize("verify, args", [
    (verify_calcom, ("", BODY, "abc")),
    (verify_calendly, ("", BODY, "t=1,v1=abc", NOW)),
])
def test_no_secret_configured_is_503_even_for_a_signed_delivery(verify, args) -> None:
    error = refused(verify, *args)
    assert error.status == 503
    assert "is not configured" in str(error)


def test_calendly_signature_covers_the_timestamp_and_the_body() -> None:
    stamp = str(int(NOW.timestamp()) - 2)
    digest = hmac.new(KEY.encode(), f"{stamp}.".encode() + BODY, hashlib.sha256).hexdigest()
    verify_calendly(KEY, BODY, f"t={stamp},v1={digest}", NOW)
    verify_calendly(KEY, BODY, f"t={stamp}, v1=deadbeef, v1={digest}", NOW)  # any v1 may match
    assert sign_calendly(KEY, BODY, NOW) == (
        f"t={int(NOW.timestamp())},"
        f"v1={hmac.new(KEY.encode(), f'{int(NOW.timestamp())}.'.encode() + BODY, hashlib.sha256).hexdigest()}")
    # The body alone, without "t.", is not what Calendly signs.
    body_only = hmac.new(KEY.encode(), BODY, hashlib.sha256).hexdigest()
    assert refused(verify_calendly, KEY, BODY, f"t={stamp},v1={body_only}", NOW).status == 401


@pytest.mark.parametrize("header, says", [
    (None, "missing"),
    ("v1=abc", "expected t=<unix seconds>,v1=<hex signature>"),
    ("t=abc,v1=abc", "expected t="),
    ("t=1796115605", "expected t="),
    ("t=1796115605,v1=" + "0" * 64, "does not match"),
])
def test_calendly_malformed_or_wrong_headers_are_401(header, says) -> None:
    error = refused(verify_calendly, KEY, BODY, header, NOW)
    assert error.status == 401
    assert says in str(error)


def test_calendly_tolerance_is_three_minutes() -> None:
    assert timedelta(minutes=3) == CALENDLY_TOLERANCE
    verify_calendly(KEY, BODY, sign_calendly(KEY, BODY, NOW - timedelta(seconds=180)), NOW)


@pytest.mark.parametrize("offset, says", [(timedelta(seconds=-181), "old"), (timedelta(hours=-6), "old"),
                                          (timedelta(seconds=181), "in the future")])
def test_calendly_stale_or_future_timestamps_are_refused_even_when_signed(offset, says) -> None:
    header = sign_calendly(KEY, BODY, NOW + offset)
    error = refused(verify_calendly, KEY, BODY, header, NOW)
    assert error.status == 401
    assert says in str(error)
    assert "tolerance" in str(error)


def test_bodies_over_the_limit_are_413() -> None:
    check_size(b"x" * MAX_BODY)
    error = refused(check_size, b"x" * (MAX_BODY + 1))
    assert error.status == 413
    assert str(MAX_BODY) in str(error)


def test_the_secrets_are_settings_from_the_file_or_the_environment(tmp_path) -> None:
    from sequencer.core.config import load_settings

    config = tmp_path / "sequencer.toml"
    config.write_text('calcom_webhook_secret = "from-the-file"\ncalendly_signing_key = "key-from-the-file"\n'
                      'webhook_unknown_attendee = "park"\n')
    settings = load_settings(config, env={})
    assert (settings.calcom_webhook_secret, settings.calendly_signing_key, settings.webhook_unknown_attendee) == (
        "from-the-file", "key-from-the-file", "park")
    settings = load_settings(config, env={"SEQUENCER_CALCOM_WEBHOOK_SECRET": "from-env",
                                          "SEQUENCER_CALENDLY_SIGNING_KEY": "key-from-env"})
    assert (settings.calcom_webhook_secret, settings.calendly_signing_key) == ("from-env", "key-from-env")
    from sequencer.core.config import Settings

    assert (Settings().calcom_webhook_secret, Settings().calendly_signing_key) == ("", "")  # refused until set
    assert Settings().webhook_unknown_attendee == "create"
