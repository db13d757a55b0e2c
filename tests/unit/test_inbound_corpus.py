"""Table-driven checks of the classifier over a corpus of realistic messages.

Each fixture under tests/fixtures/inbound/ is a hand-written copy of what a real
MTA or client sends (Exchange, Gmail, Postfix, qmail, Exim, Yahoo ARF...). The
table says what the engine must conclude from it; every fixture must be listed.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from sequencer.inbound import MAX_PARSE_BYTES, classify

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inbound"
OURS = frozenset({"acme-outreach.com"})

EXPECTED: dict[str, dict[str, object]] = {
    "ooo_outlook_en.eml": {
        "kind": "out_of_office",
        "return_date": date(2026, 12, 8),
        "in_reply_to": "touch-1001.7f3a@acme-outreach.com",
    },
    "ooo_gmail_en.eml": {
        "kind": "out_of_office",
        "return_date": date(2026, 11, 27),  # "back tomorrow", sent 26 Nov in -0800
        "verp_token": "t-1002",
    },
    "ooo_exchange_de.eml": {"kind": "out_of_office", "return_date": date(2027, 1, 5)},
    "ooo_fr.eml": {"kind": "out_of_office", "return_date": date(2027, 1, 4)},
    "ooo_es.eml": {"kind": "out_of_office", "return_date": date(2027, 1, 7)},
    "ooo_nl.eml": {"kind": "out_of_office", "return_date": date(2027, 3, 12)},
    "ooo_us_numeric.eml": {"kind": "out_of_office", "return_date": date(2026, 12, 3)},
    "ooo_uk_numeric.eml": {"kind": "out_of_office", "return_date": date(2027, 3, 12)},
    "ooo_no_date.eml": {"kind": "out_of_office", "return_date": None},
    "ooo_no_headers_sv.eml": {"kind": "out_of_office", "return_date": date(2026, 8, 3)},
    "auto_reply_ticket.eml": {"kind": "auto_reply", "sentiment": None},
    "auto_left_company.eml": {
        "kind": "left_company",
        "new_contacts": ["mark.smith@contoso.com", "partnerships@contoso.com"],
    },
    "left_company_human_de.eml": {
        "kind": "left_company",
        "new_contacts": ["anna.weber@firma-beispiel.de"],
    },
    "dsn_postfix_hard.eml": {
        "kind": "bounce",
        "bounce_type": "hard",
        "status_code": "5.1.1",
        "bounced_recipients": ["old.contact@widgetco.example"],
        "original_message_id": "touch-2001.8f3a2c@acme-outreach.com",
        "verp_token": "t-8f3a2c",
    },
    "ndr_exchange_hard.eml": {
        "kind": "bounce",
        "bounce_type": "hard",
        "status_code": "5.1.10",
        "bounced_recipients": ["j.nobody@fabrikam.com"],
        "original_message_id": "touch-2002.9b41@acme-outreach.com",
    },
    "bounce_gmail_hard.eml": {
        "kind": "bounce",
        "bounce_type": "hard",
        "status_code": "5.1.1",
        "bounced_recipients": ["not.a.real.person.2026@gmail.com"],
        "original_message_id": "touch-2003.3c77@acme-outreach.com",
    },
    "bounce_qmail.eml": {
        "kind": "bounce",
        "bounce_type": "hard",
        "status_code": "5.1.1",
        "bounced_recipients": ["r.jones@oldhost.example"],
        "original_message_id": "touch-2004.5e12@acme-outreach.com",
        "verp_token": "t-5e12",
    },
    "bounce_mailbox_full.eml": {
        "kind": "bounce",
        "bounce_type": "soft",
        "status_code": "5.2.2",
        "original_message_id": "touch-2005.6f01@acme-outreach.com",
    },
    "bounce_block_571.eml": {
        "kind": "bounce",
        "bounce_type": "block",
        "status_code": "5.7.1",
        "bounced_recipients": ["cfo@strictcorp.example"],
    },
    "bounce_exim_dmarc.eml": {
        "kind": "bounce",
        "bounce_type": "block",
        "status_code": "5.7.26",
        "bounced_recipients": ["ops@securebank.example"],
        "original_message_id": "touch-2007.8b33@acme-outreach.com",
    },
    "bounce_delayed.eml": {"kind": "bounce", "bounce_type": "soft", "status_code": "4.4.1"},
    "dsn_delivered_receipt.eml": {"kind": "auto_reply", "bounce_type": None},
    "complaint_yahoo_arf.eml": {
        "kind": "complaint",
        "feedback_type": "abuse",
        "complained_recipient": "annoyed.user@yahoo.com",
        "original_message_id": "touch-3001.1e66@acme-outreach.com",
    },
    "complaint_redacted_headers.eml": {
        "kind": "complaint",
        "complained_recipient": "someone.redacted@outlook.com",
        "original_message_id": "touch-3002.2f77@acme-outreach.com",
    },
    "reply_positive_en.eml": {"kind": "reply", "sentiment": "positive"},
    "reply_negative_en_outlook.eml": {"kind": "reply", "sentiment": "negative"},
    "reply_neutral_en.eml": {"kind": "reply", "sentiment": "neutral"},
    "reply_positive_de.eml": {"kind": "reply", "sentiment": "positive"},
    "reply_negative_de.eml": {"kind": "reply", "sentiment": "negative"},
    "reply_mentions_stop_by.eml": {"kind": "reply", "sentiment": "positive"},
    "unsubscribe_en.eml": {
        "kind": "unsubscribe_request",
        "verp_token": "t-4006",
        "references": ["touch-4005.ee55@acme-outreach.com", "touch-4006.ff66@acme-outreach.com"],
    },
    "unsubscribe_de.eml": {"kind": "unsubscribe_request"},
    "unsubscribe_stop.eml": {"kind": "unsubscribe_request"},
    "truncated_reply.eml": {"kind": "reply", "sentiment": "positive", "truncated": False},
    "misencoded_latin1.eml": {"kind": "reply", "sentiment": "negative"},
    "binary_garbage.eml": {"kind": "unparseable"},
}


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_every_fixture_has_an_expectation() -> None:
    on_disk = {p.name for p in FIXTURES.glob("*.eml")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_corpus(name: str, expected: dict[str, object]) -> None:
    result = classify(load(name), our_domains=OURS)
    got = {key: getattr(result, key) for key in expected}
    assert got == expected, result.evidence
    assert result.evidence, "every decision must say why"
    json.dumps(result.to_dict())


def test_human_reply_ignores_unsubscribe_in_quoted_original() -> None:
    result = classify(load("reply_positive_en.eml"), our_domains=OURS)
    assert "unsubscribe" not in (result.reply_text or "").lower()
    assert result.reply_text is not None and result.reply_text.startswith("Hi Sam")


def test_misdeclared_charset_falls_back_to_latin1() -> None:
    result = classify(load("misencoded_latin1.eml"))
    assert "José García" in (result.reply_text or "")


def test_truncated_mime_is_reported_in_evidence() -> None:
    result = classify(load("truncated_reply.eml"))
    assert "CloseBoundaryNotFoundDefect" in result.defects


def test_unparseable_has_reason() -> None:
    result = classify(load("binary_garbage.eml"))
    assert result.reason and "header" in result.reason


def test_left_company_excludes_our_domains_and_sender() -> None:
    result = classify(load("left_company_human_de.eml"), our_domains=OURS)
    assert "sam@acme-outreach.com" not in result.new_contacts
    assert "empfang@firma-beispiel.de" not in result.new_contacts


def test_oversized_message_is_classified_from_its_head() -> None:
    head = load("reply_positive_en.eml").replace(
        b'Content-Type: multipart/alternative; boundary="00000000000077aa"',
        b'Content-Type: multipart/mixed; boundary="00000000000077aa"',
    )
    head = head.replace(b"--00000000000077aa--", b"")
    attachment = (
        b"--00000000000077aa\nContent-Type: application/octet-stream\n"
        b"Content-Transfer-Encoding: base64\nContent-Disposition: attachment\n\n"
        + b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n"
        * (11 * 1024 * 1024 // 37)
    )
    raw = head + attachment + b"--00000000000077aa--\n"
    assert len(raw) > 11 * 1024 * 1024 > MAX_PARSE_BYTES
    result = classify(raw, our_domains=OURS)
    assert result.truncated
    assert result.kind == "reply"
    assert result.sentiment == "positive"
    assert any("classified from the first" in e for e in result.evidence)


def test_date_is_aware_utc() -> None:
    result = classify(load("reply_positive_de.eml"))
    assert result.date is not None
    assert result.date.utcoffset() is not None
    assert result.date.utcoffset().total_seconds() == 0
    assert result.date.hour == 7  # 08:45 +0100
