"""Reply text extraction, unsubscribe and left-company rules, parsing details."""

from __future__ import annotations

import pytest

from sequencer.inbound import classify, parse_message
from sequencer.inbound.quoting import MAX_REPLY_CHARS, strip_quoted
from sequencer.inbound.replies import sentiment, unsubscribe_phrase


def mail(body: str, *, headers: str = "", subject: str = "Re: Quick question") -> bytes:
    return (
        "From: Pat Lee <pat@prospect.example>\n"
        "To: Sam <sam+t-42@acme-outreach.com>\n"
        f"Subject: {subject}\n"
        "Date: Tue, 01 Dec 2026 10:00:00 +0000\n"
        "Message-ID: <m1@prospect.example>\n"
        f"{headers}"
        "Content-Type: text/plain; charset=utf-8\n\n"
        f"{body}"
    ).encode()


@pytest.mark.parametrize(
    "history",
    [
        "On Mon, Nov 30, 2026 at 9:00 AM Sam Carter <sam@acme-outreach.com> wrote:\n> hi",
        "On Mon, Nov 30, 2026 at 9:00 AM Sam Carter <\nsam@acme-outreach.com> wrote:\n> hi",
        "Am Mo., 30. Nov. 2026 um 09:00 Uhr schrieb Sam <sam@acme-outreach.com>:\n> hi",
        "Le lun. 30 nov. 2026 à 09:00, Sam <sam@acme-outreach.com> a écrit :\n> hi",
        "El lun, 30 nov 2026 a las 9:00, Sam (<sam@acme-outreach.com>) escribió:\n> hi",
        "-----Original Message-----\nFrom: Sam\nSent: Monday\nTo: Pat\nSubject: hi",
        "________________________________\nFrom: Sam\nSent: Monday\nTo: Pat",
        "Von: Sam Carter\nGesendet: Montag, 30. November 2026\nAn: Pat\nBetreff: hi",
        "De : Sam Carter\nEnvoyé : lundi 30 novembre 2026\nÀ : Pat\nObjet : hi",
        "> quoted line one\n> quoted line two",
    ],
)
def test_quoted_history_is_cut(history: str) -> None:
    text = f"Thanks, let's talk.\n\n{history}\n\nUnsubscribe here: https://x.example/u"
    assert strip_quoted(text) == "Thanks, let's talk."


def test_inline_quotes_are_dropped_but_answers_kept() -> None:
    text = "> Are you free Tuesday?\nYes, Tuesday works.\n> What time?\n3pm."
    assert strip_quoted(text) == "Yes, Tuesday works.\n3pm."


def test_reply_text_is_bounded() -> None:
    assert len(strip_quoted("word " * 10_000)) == MAX_REPLY_CHARS


@pytest.mark.parametrize(
    "text",
    [
        "Please unsubscribe me.",
        "Remove me from your list",
        "Stop emailing me.",
        "Bitte austragen.",
        "Merci de me désinscrire.",
        "Por favor, darme de baja.",
        "Graag afmelden.",
        "stop",
    ],
)
def test_unsubscribe_phrases(text: str) -> None:
    assert unsubscribe_phrase(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "Stop by our booth on Thursday.",
        "Interested!\n\nJane | To unsubscribe from our newsletter click https://x.example/u",
        "We can't stop growing, so yes let's talk.",
    ],
)
def test_not_unsubscribe(text: str) -> None:
    assert unsubscribe_phrase(text) is None


def test_unsubscribe_in_quoted_original_does_not_trigger() -> None:
    body = "Sounds good.\n\nOn Mon, Nov 30, 2026 Sam wrote:\n> Reply STOP to unsubscribe"
    result = classify(mail(body))
    assert (result.kind, result.sentiment) == ("reply", "positive")


def test_unsubscribe_reply_is_negative() -> None:
    result = classify(mail("Please remove me from your mailing list."))
    assert (result.kind, result.sentiment) == ("unsubscribe_request", "negative")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Not interested, thanks.", "negative"),
        ("Yes - interested. Can we talk Thursday?", "positive"),
        ("Je suis intéressé, avec plaisir.", "positive"),
        ("No me interesa, gracias.", "negative"),
        ("I'm not sure who owns this internally.", "neutral"),
        ("Who is this?", "neutral"),
    ],
)
def test_sentiment(text: str, expected: str) -> None:
    assert sentiment(text)[0] == expected


@pytest.mark.parametrize(
    "text",
    [
        "Pat has left the company. Please contact lee@prospect.example instead.",
        "Pat ya no trabaja aquí. Escriba a lee@prospect.example.",
        "Pat ne fait plus partie de l'entreprise, contactez lee@prospect.example.",
    ],
)
def test_left_company_keeps_referral(text: str) -> None:
    result = classify(mail(text), our_domains=frozenset({"acme-outreach.com"}))
    assert result.kind == "left_company"
    assert result.new_contacts == ["lee@prospect.example"]


def test_ooo_phrase_inside_human_reply_is_still_a_reply() -> None:
    body = "Yes, interested! I'll be out of the office next week, so let's talk after."
    result = classify(mail(body))
    assert result.kind == "reply"


def test_weak_header_alone_does_not_make_an_auto_reply() -> None:
    result = classify(mail("Sounds good, call me.", headers="X-Auto-Response-Suppress: All\n"))
    assert result.kind == "reply"


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied\n",
        "Precedence: auto_reply\n",
        "X-Autoreply: yes\n",
        "Return-Path: <>\n",
    ],
)
def test_auto_reply_headers(header: str) -> None:
    assert classify(mail("Thanks for your message.", headers=header)).kind == "auto_reply"


def test_auto_submitted_no_is_human() -> None:
    result = classify(mail("Thanks, sounds good.", headers="Auto-Submitted: no\n"))
    assert result.kind == "reply"


@pytest.mark.parametrize(
    "subject",
    ["Abwesenheitsnotiz: Kurze Frage", "Fuera de la oficina", "Risposta automatica: Re: hi"],
)
def test_subject_patterns_without_headers(subject: str) -> None:
    result = classify(mail("Ik ben afwezig tot 7 december.", subject=subject))
    assert result.kind == "out_of_office"


def test_verp_token_only_from_our_domains() -> None:
    ours = frozenset({"acme-outreach.com"})
    assert classify(mail("hi"), our_domains=ours).verp_token == "t-42"
    assert classify(mail("hi"), our_domains=frozenset({"other.example"})).verp_token is None


def test_parse_message_fields() -> None:
    raw = mail(
        "Hello",
        headers=(
            "In-Reply-To: <touch-1@acme-outreach.com>\n"
            "References: <a@x> <touch-1@acme-outreach.com>\n"
            "Return-Path: <pat@prospect.example>\n"
            "Cc: =?utf-8?q?J=C3=B6rg?= <joerg@prospect.example>\n"
        ),
    )
    parsed = parse_message(raw)
    assert parsed.message_id == "m1@prospect.example"
    assert parsed.in_reply_to == "touch-1@acme-outreach.com"
    assert parsed.references == ["a@x", "touch-1@acme-outreach.com"]
    assert parsed.from_address == "pat@prospect.example"
    assert parsed.to_addresses == ["sam+t-42@acme-outreach.com", "joerg@prospect.example"]
    assert parsed.headers["CC"].startswith("Jörg")
    assert parsed.return_path == "pat@prospect.example"
    assert parsed.body_text == "Hello"
    assert parsed.size == len(raw)


def test_html_only_reply_drops_gmail_quote() -> None:
    body = (
        '<div dir="ltr">Not interested.</div><div class="gmail_quote">'
        "On Mon Sam wrote:<blockquote>Interested? Unsubscribe</blockquote></div>"
    )
    raw = mail(body).replace(b"text/plain", b"text/html")
    result = classify(raw)
    assert (result.kind, result.sentiment) == ("reply", "negative")
    assert result.reply_text == "Not interested."


def test_message_without_sender_is_unparseable() -> None:
    result = classify(b"Subject: hello\n\nbody")
    assert result.kind == "unparseable"
    assert "sender" in (result.reason or "")
