"""Unsubscribe tokens: round trip, and every kind of tampering refused."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from suppression_fixtures import SECRET

from sequencer.core.config import Settings
from suppression.tokens import (
    InvalidToken,
    make_token,
    read_token,
    unsubscribe_headers,
    unsubscribe_url,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_round_trip_returns_the_normalised_address() -> None:
    token = make_token(SECRET, " Ann@Example.COM ")
    assert read_token(SECRET, token) == "ann@example.com"


def test_token_is_url_safe_and_stable() -> None:
    token = make_token(SECRET, "ann+x@example.com")
    assert token == make_token(SECRET, "ANN+x@example.com")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


@given(st.emails())
def test_round_trip_for_any_address(address: str) -> None:
    token = make_token(SECRET, address)
    assert read_token(SECRET, token) == address.lower()


def test_another_secret_is_refused() -> None:
    token = make_token("other-secret", "ann@example.com")
    with pytest.raises(InvalidToken, match="signature"):
        read_token(SECRET, token)


def test_swapping_the_address_is_refused() -> None:
    signature = make_token(SECRET, "ann@example.com").split(".")[1]
    forged = f"{b64(b'boss@example.com')}.{signature}"
    with pytest.raises(InvalidToken, match="signature"):
        read_token(SECRET, forged)


@pytest.mark.parametrize("position", [0, 5, -1, -3])
def test_any_altered_character_is_refused(position: int) -> None:
    token = make_token(SECRET, "ann@example.com")
    index = position % len(token)
    replacement = "A" if token[index] != "A" else "B"
    altered = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(InvalidToken):
        read_token(SECRET, altered)


@pytest.mark.parametrize("cut", [1, 2, 10])
def test_truncated_tokens_are_refused(cut: int) -> None:
    token = make_token(SECRET, "ann@example.com")
    with pytest.raises(InvalidToken):
        read_token(SECRET, token[:-cut])


@pytest.mark.parametrize(
    "token",
    ["", ".", "abc", "abc.", ".abc", "!!!.???", "YW5u.é", "A.AAAA", "YW5u.AAAA.AAAA", "YW5=.AAAA"],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        read_token(SECRET, token)


def test_non_utf8_payload_is_refused() -> None:
    payload = b64(bytes([0xFF, 0xFE]))
    with pytest.raises(InvalidToken, match="malformed"):
        read_token(SECRET, f"{payload}.{b64(b'x' * 16)}")


def test_empty_secret_is_refused_both_ways() -> None:
    with pytest.raises(ValueError, match="secret_key is empty"):
        make_token("", "ann@example.com")
    with pytest.raises(ValueError, match="secret_key is empty"):
        read_token("", make_token(SECRET, "ann@example.com"))


def test_garbage_address_gets_no_token() -> None:
    with pytest.raises(ValueError, match="invalid email"):
        make_token(SECRET, "not an address")


def test_headers_without_mailto() -> None:
    settings = Settings(secret_key=SECRET, unsubscribe_url="https://unsub.example.net/u/")
    headers = unsubscribe_headers(settings, "ann@example.com")
    token = make_token(SECRET, "ann@example.com")
    assert headers == {
        "List-Unsubscribe": f"<https://unsub.example.net/u/{token}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert unsubscribe_url(settings, "ann@example.com") == f"https://unsub.example.net/u/{token}"


@pytest.mark.parametrize("mailto", ["unsub@example.net", "mailto:unsub@example.net"])
def test_headers_with_mailto(mailto: str) -> None:
    settings = Settings(
        secret_key=SECRET, unsubscribe_url="https://unsub.example.net/u", unsubscribe_mailto=mailto
    )
    value = unsubscribe_headers(settings, "ann@example.com")["List-Unsubscribe"]
    https, mail = value.split(", ")
    assert https.startswith("<https://unsub.example.net/u/") and https.endswith(">")
    assert read_token(SECRET, https[1:-1].rsplit("/", 1)[1]) == "ann@example.com"
    assert mail == "<mailto:unsub@example.net?subject=unsubscribe>"
