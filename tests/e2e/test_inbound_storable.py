"""Inbound mail whose text no database takes as it is: stored safely, and the rest still goes in.

Raw 8-bit header bytes, NUL (PostgreSQL refuses it in text), lone surrogates and charsets
that are unknown or that decode into either: each case is one message, ingested in the
middle of an mbox by ``sequencer inbound ingest`` and posted alone to ``POST /inbound``
on a real uvicorn, on SQLite and on PostgreSQL. Nothing raises, nothing answers 500,
the messages after it are ingested, and what is stored reads back as the sender meant it.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from suppression_fixtures import live_server
from typer.testing import CliRunner

from sequencer.app.api import create_app
from sequencer.app.cli import app as cli
from sequencer.core import api_keys
from sequencer.core.models import InboundMessage

REPLACEMENT = "\ufffd"


def message(name: str, headers: bytes, body: bytes = b"Thanks, let's talk next week.\r\n") -> bytes:
    return (b"From: Dana <dana@northwind.example>\r\nTo: sam@outreach-acme.example\r\n"
            b"Date: Mon, 30 Nov 2026 16:00:00 +0000\r\nMessage-ID: <" + name.encode() + b"@northwind.example>\r\n"
            + headers + b"\r\n" + body)


# name -> (raw message, what is stored: (kind, subject, a text the stored detail must contain))
CASES: dict[str, tuple[bytes, tuple[str, str, str]]] = {
    "latin-1 header bytes": (
        message("latin1", b"Subject: Gr\xfc\xdfe aus K\xf6ln\r\nX-Mailer: J\xf6rg's client\r\n"),
        ("reply", "Grüße aus Köln", "Grüße aus Köln")),
    "utf-8 header bytes": (
        message("utf8", "Subject: Grüße, Zoë\r\n".encode()),
        ("reply", "Grüße, Zoë", "Grüße, Zoë")),
    "NUL in an encoded word": (
        message("nul-word", b"Subject: =?utf-8?b?aGkAdGhlcmU=?=\r\n"),  # "hi\0there"
        ("reply", f"hi{REPLACEMENT}there", f"hi{REPLACEMENT}there")),
    "NUL in the body": (
        message("nul-body", b"Subject: hello\r\n", b"Yes\x00 please, call me.\n").replace(b"\r\n", b"\n"),
        ("reply", "hello", f"Yes{REPLACEMENT} please")),
    "NUL bytes in the header section": (
        message("nul-head", b"Subject: hel\x00lo\r\n"),
        ("quarantined", "", "hel\\0lo")),
    "lone surrogate from UTF-7": (
        message("utf7", b"Subject: =?utf-7?q?caf+2AA-?=\r\nContent-Type: text/plain; charset=utf-7\r\n",
                b"ok +2AA- ok\r\n"),
        ("reply", "caf+2AA-", "ok +2AA- ok")),
    "lone surrogate from an escape codec": (
        message("escape", b"Subject: =?raw-unicode-escape?q?caf\\ud800?=\r\n"
                b"Content-Type: text/plain; charset=unicode_escape\r\n", b"a\\x00b\\udc80c\r\n"),
        ("reply", "caf\\ud800", "a\\x00b\\udc80c")),
    "unknown charsets": (
        message("charset", b"Subject: =?x-no-such-charset?q?caf=E9?=\r\n"
                b"Content-Type: text/plain; charset=x-no-such-charset\r\n", b"K\xf6nnen wir reden?\r\n"),
        ("reply", "café", "Können wir reden?")),
}
GOOD = message("good", b"Subject: plain\r\n")


def stored(session, name: str) -> InboundMessage:
    """The row of message ``name``: by its Message-ID, or (quarantined unread) by its head."""
    session.expire_all()
    key = f"{name}@northwind.example"
    rows = [row for row in session.exec(select(InboundMessage))
            if row.dedupe_key == key or (row.quarantined and f"<{key}>" in row.detail["head"])]
    assert len(rows) == 1, [row.dedupe_key for row in rows]
    return rows[0]


def texts(value: object) -> list[str]:
    """Every string in a stored JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (*texts(key), *texts(item))]
    if isinstance(value, list):
        return [text for item in value for text in texts(item)]
    return []


def assert_stored(session, name: str, expected: tuple[str, str, str]) -> None:
    kind, subject, text = expected
    row = stored(session, name)
    assert (row.kind, row.subject) == (kind, subject)
    assert any(text in value for value in texts(row.detail)), texts(row.detail)
    for value in (row.subject, row.from_address, row.message_id, *texts(row.detail)):
        assert "\x00" not in value
        value.encode("utf-8")  # raises on a lone surrogate


def test_every_case_in_an_mbox_is_stored_and_the_messages_after_it_still_are(session, settings, monkeypatch,
                                                                            tmp_path):
    path = tmp_path / "inbox.mbox"
    box = mailbox.mbox(str(path))
    for raw, _ in CASES.values():
        box.add(raw)
    box.add(GOOD)
    box.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", settings.database_url)

    result = CliRunner().invoke(cli, ["inbound", "ingest", str(path)], env={"COLUMNS": "250"})

    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1, result.output  # the NUL header section was quarantined: cron should notice
    for number, (label, (_, (kind, _, _))) in enumerate(CASES.items(), start=1):
        assert f"inbox.mbox#{number}: {kind} - " in result.output, label
    assert f"inbox.mbox#{len(CASES) + 1}: reply - " in result.output
    for (_, expected), name in zip(CASES.values(), _names(), strict=True):
        assert_stored(session, name, expected)
    assert stored(session, "good").kind == "reply"


@pytest.fixture
def client(engine: Engine, session, settings, clock) -> Iterator[httpx.Client]:
    key = api_keys.create(session, clock.now(), "storable-tests", ["inbound"]).key
    with (live_server(create_app(settings, engine, clock)) as base,
          httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"}) as client):
        yield client


@pytest.mark.parametrize("case", list(CASES))
def test_each_case_posted_to_inbound_is_stored_not_a_500(session, client, case):
    raw, expected = CASES[case]

    as_body = client.post("/inbound", content=raw, headers={"Content-Type": "message/rfc822"})
    as_field = client.post("/inbound", files={"email": ("message.eml", raw, "message/rfc822")})

    assert as_body.status_code == 200, as_body.text
    assert as_body.json()["kind"] == expected[0] and as_body.json()["duplicate"] is False
    assert as_field.status_code == 200 and as_field.json()["duplicate"] is True
    assert_stored(session, _names()[list(CASES).index(case)], expected)
    after = client.post("/inbound", content=GOOD, headers={"Content-Type": "message/rfc822"})
    assert after.status_code == 200 and after.json()["kind"] == "reply"


def _names() -> list[str]:
    return [raw.split(b"Message-ID: <", 1)[1].split(b"@", 1)[0].decode() for raw, _ in CASES.values()]


def test_a_message_id_too_long_for_the_key_column_is_stored_once_under_its_hash(session, client):
    long_id = "a" * 600
    raw = message(long_id, b"Subject: a very long id\r\n")

    first = client.post("/inbound", content=raw, headers={"Content-Type": "message/rfc822"})
    again = client.post("/inbound", content=raw, headers={"Content-Type": "message/rfc822"})

    assert first.status_code == 200 and first.json()["kind"] == "reply", first.text
    assert again.status_code == 200 and again.json()["duplicate"] is True
    session.expire_all()
    row = session.exec(select(InboundMessage)).one()
    assert long_id in row.message_id and row.dedupe_key.startswith("sha256-id:")


def test_a_message_whose_ingest_raises_is_quarantined_and_the_rest_of_the_mbox_still_goes_in(
        session, settings, monkeypatch, tmp_path):
    from sequencer.app.cli import inbound as inbound_cli

    real = inbound_cli.ingest_raw

    def ingest_raw(session, now, settings, raw, rules=None):
        if b"poison" in raw:
            raise RuntimeError("the rules crashed")
        return real(session, now, settings, raw, rules)

    monkeypatch.setattr(inbound_cli, "ingest_raw", ingest_raw)
    path = tmp_path / "inbox.mbox"
    box = mailbox.mbox(str(path))
    for raw in (message("before", b"Subject: one\r\n"), message("poison", b"Subject: poison\r\n"), GOOD):
        box.add(raw)
    box.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", settings.database_url)

    result = CliRunner().invoke(cli, ["inbound", "ingest", str(path)], env={"COLUMNS": "250"})

    assert result.exit_code == 1, result.output
    assert "inbox.mbox#2: quarantined - quarantined: ingest failed: RuntimeError: the rules crashed" in result.output
    assert stored(session, "before").kind == stored(session, "good").kind == "reply"
    poisoned = stored(session, "poison")
    assert poisoned.quarantined and "RuntimeError: the rules crashed" in poisoned.detail["reason"]
