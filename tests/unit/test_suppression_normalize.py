"""Address and domain normalisation: one spelling, or a clear refusal naming the input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suppression.normalize import (
    normalize_domain,
    normalize_email,
    parent_domains,
    registrable_domain,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ann.Lee@Example.COM \n", "ann.lee@example.com"),
        ("ann+tag@example.com", "ann+tag@example.com"),
        ("a.n.n@gmail.com", "a.n.n@gmail.com"),  # no provider-specific dot folding
        ("ann@example.com.", "ann@example.com"),
        ("ann@Bücher.DE", "ann@xn--bcher-kva.de"),
        ("josé@example.com", "josé@example.com"),
        ("o'brien@sub.example.co.uk", "o'brien@sub.example.co.uk"),
    ],
)
def test_normalize_email_folds_case_whitespace_and_idna(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ann.example.com", "no @"),
        ("ann@@example.com", "more than one @"),
        ("a@b@example.com", "more than one @"),
        ("@example.com", "empty local part"),
        ("ann@", "empty"),
        ("ann lee@example.com", "not allowed"),
        ("ann@exa mple.com", "not letters"),
        ("ann\u200b@example.com", "invisible"),
        (".ann@example.com", "dot"),
        ("ann.@example.com", "dot"),
        ("an..n@example.com", "dot"),
        ('"ann"@example.com', "not allowed"),
        ("Ann <ann@example.com>", "not allowed"),
        ("ann@localhost", "two labels"),
        ("ann@[127.0.0.1]", "IP literal"),
        ("ann@1.2.3.4", "numeric"),
        ("ann@-example.com", "not letters"),
        ("ann@example..com", "empty label"),
        ("ann@exam_ple.com", "not letters"),
        ("a" * 65 + "@example.com", "local part longer"),
        ("ann@" + "a" * 64 + ".com", "label longer"),
        ("a@" + ".".join(["a" * 60] * 5) + ".com", "longer than 253"),
        ("x" * 321, "longer than 320"),
    ],
)
def test_normalize_email_refuses_garbage_naming_the_value(raw: str, problem: str) -> None:
    with pytest.raises(ValueError, match="invalid email") as caught:
        normalize_email(raw)
    assert problem in str(caught.value)
    assert repr(raw[:40]) in str(caught.value) or repr(raw) in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.COM.", "example.com"),
        (" mail.example.com ", "mail.example.com"),
        ("AcmeMail.COM.", "acmemail.com"),  # a sending domain, as `domains check` takes it
        (" mail.acme.co.uk ", "mail.acme.co.uk"),
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("xn--mnchen-3ya.de", "xn--mnchen-3ya.de"),
    ],
)
def test_normalize_domain(raw: str, expected: str) -> None:
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", ".", "com", "a..com", "exa mple.com", "a-.com", "☃☃.-x.com", "localhost", "bob@acme.com", "acme .com"],
)
def test_normalize_domain_refuses_garbage(raw: str) -> None:
    with pytest.raises(ValueError, match="invalid domain"):
        normalize_domain(raw)


def test_parent_domains_stop_at_the_registrable_domain() -> None:
    assert parent_domains("a.b.example.co.uk") == [
        "a.b.example.co.uk",
        "b.example.co.uk",
        "example.co.uk",
    ]
    assert parent_domains("example.com") == ["example.com"]
    assert registrable_domain("x.corp.internal") == "corp.internal"
    assert registrable_domain("mail.acme.co.uk") == "acme.co.uk"


emails = st.emails()


@given(emails)
def test_normalize_email_is_idempotent(raw: str) -> None:
    once = normalize_email(raw)
    assert normalize_email(once) == once


@given(emails, st.sampled_from(["", " ", "\t", "\n "]), st.booleans())
def test_case_and_outer_whitespace_never_change_the_result(raw: str, pad: str, upper: bool) -> None:
    variant = pad + (raw.upper() if upper else raw) + pad
    assert normalize_email(variant) == normalize_email(raw)


@given(emails)
def test_normalized_email_is_lowercase_ascii_domain(raw: str) -> None:
    address = normalize_email(raw)
    local, _, domain = address.partition("@")
    assert address == address.strip()
    assert domain.isascii() and domain == domain.lower()
    assert local == local.lower()


@given(st.text(alphabet=st.characters(exclude_characters="@"), max_size=40))
def test_text_without_at_is_always_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="invalid email"):
        normalize_email(raw)


@given(st.text(max_size=60))
def test_arbitrary_text_is_normalised_or_refused_with_valueerror(raw: str) -> None:
    try:
        address = normalize_email(raw)
    except ValueError as exc:
        assert "invalid email" in str(exc)
    else:
        assert normalize_email(address) == address
