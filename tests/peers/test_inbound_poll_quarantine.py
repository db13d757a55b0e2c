"""``sequencer inbound poll`` never skips a message: what cannot be ingested is quarantined first.

Against a real Dovecot, with the real ingest, on SQLite and PostgreSQL: messages whose text
no database takes as it is are stored like the rest; a message whose ingest raises is
stored quarantined (with the reason) before the cursor passes it; and when even that
fails, polling stops at it, so the next poll reads it again instead of losing it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from imapclient import IMAPClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from sequencer.app.cli import app as cli
from sequencer.app.cli import inbound as inbound_cli
from sequencer.core.models import InboundCursor, InboundMessage, Mailbox

if TYPE_CHECKING:
    from imap_server import ImapAccount

pytest_plugins = ["imap_server"]  # the dovecot / imap_server fixtures

ADDRESS = "sdr@outreach.example"


def message(n: int, subject: bytes = b"", body: bytes = b"") -> bytes:
    return (b"From: prospect%d@acme.example\r\nTo: sdr@outreach.example\r\nSubject: " % n
            + (subject or b"Re: hello %d" % n)
            + b"\r\nMessage-ID: <m%d@acme.example>\r\nDate: Mon, 30 Nov 2026 16:00:00 +0000\r\n\r\n" % n
            + (body or b"reply number %d\r\n" % n))


def put(account: ImapAccount, *messages: bytes) -> None:
    with IMAPClient(account.host, port=account.port, ssl=False) as client:
        client.login(account.user, account.password)
        for raw in messages:
            client.append("INBOX", raw)


@pytest.fixture
def poll(tmp_path: Path, session: Session, db_url: str, imap_server: ImapAccount,
         monkeypatch: pytest.MonkeyPatch) -> Callable[[], object]:
    """``sequencer inbound poll`` as a user runs it, on the test's database and Dovecot."""
    config = tmp_path / "sequencer.toml"
    config.write_text(
        f'database_url = "{db_url}"\nsecret_key = "poll-quarantine-test-secret-0123456789"\n'
        f"[[mailboxes]]\naddress = {ADDRESS!r}\nimap_host = {imap_server.host!r}\n"
        f"imap_port = {imap_server.port}\nimap_ssl = false\n"
        f"imap_username = {imap_server.user!r}\nimap_password_env = 'TEST_IMAP_PW'\n"
    )
    monkeypatch.setenv("SEQUENCER_CONFIG", str(config))
    monkeypatch.setenv("TEST_IMAP_PW", imap_server.password)
    monkeypatch.delenv("SEQUENCER_DATABASE_URL", raising=False)
    session.add(Mailbox(address=ADDRESS, sending_domain="outreach.example"))
    session.commit()
    return lambda: CliRunner().invoke(cli, ["inbound", "poll", "--mailbox", ADDRESS], env={"COLUMNS": "250"})


def stored(session: Session) -> dict[str, InboundMessage]:
    session.expire_all()
    return {row.message_id: row for row in session.exec(select(InboundMessage))}


def last_uid(session: Session) -> int:
    session.expire_all()
    return session.exec(select(InboundCursor.last_uid)).one()


def test_messages_no_database_takes_as_they_are_are_stored_like_the_rest(session, imap_server, poll):
    put(imap_server, message(1), message(2, subject=b"Gr\xfc\xdfe aus K\xf6ln"),
        message(3, subject=b"=?utf-8?b?aGkAdGhlcmU=?="), message(4, body=b"caf\xe9 \x00 ok\n"), message(5))

    result = poll()

    assert result.exit_code == 0, result.output
    rows = stored(session)
    assert sorted(rows) == [f"m{n}@acme.example" for n in range(1, 6)]
    assert rows["m2@acme.example"].subject == "Grüße aus Köln"
    assert rows["m3@acme.example"].subject == "hi\ufffdthere"
    assert last_uid(session) == 5


def test_a_message_whose_ingest_raises_is_quarantined_before_the_cursor_passes_it(
        session, imap_server, poll, monkeypatch):
    real = inbound_cli.ingest_raw

    def ingest_raw(session, now, settings, raw, rules=None):
        if b"poison" in raw:
            raise RuntimeError("the rules crashed")
        return real(session, now, settings, raw, rules)

    monkeypatch.setattr(inbound_cli, "ingest_raw", ingest_raw)
    put(imap_server, message(1), message(2, body=b"poison\r\n"), message(3))

    result = poll()

    assert result.exit_code == 1  # something failed: cron notices
    assert f"{ADDRESS}: UID 2: RuntimeError: the rules crashed (quarantined)" in result.output
    rows = stored(session)
    assert sorted(rows) == ["m1@acme.example", "m2@acme.example", "m3@acme.example"]
    quarantined = rows["m2@acme.example"]
    assert quarantined.quarantined and quarantined.kind == "quarantined"
    assert "RuntimeError: the rules crashed" in quarantined.detail["reason"]
    assert "poison" in quarantined.detail["head"]
    assert last_uid(session) == 3
    assert poll().exit_code == 0 and len(stored(session)) == 3  # nothing read twice


def test_a_message_that_cannot_be_quarantined_either_stops_the_poll_at_it_and_is_read_again(
        session, imap_server, poll, monkeypatch):
    real_ingest, real_quarantine = inbound_cli.ingest_raw, inbound_cli.quarantine_raw
    broken = {"yes": True}

    def ingest_raw(session, now, settings, raw, rules=None):
        if b"poison" in raw and broken["yes"]:
            raise RuntimeError("the rules crashed")
        return real_ingest(session, now, settings, raw, rules)

    def quarantine_raw(session, now, raw, reason):
        if broken["yes"]:
            raise OSError("the database went away")
        return real_quarantine(session, now, raw, reason)

    monkeypatch.setattr(inbound_cli, "ingest_raw", ingest_raw)
    monkeypatch.setattr(inbound_cli, "quarantine_raw", quarantine_raw)
    put(imap_server, message(1), message(2, body=b"poison\r\n"), message(3))

    result = poll()

    assert result.exit_code == 1
    assert "UID 2: RuntimeError: the rules crashed; not quarantined (OSError: the database went away)" in result.output
    assert "the next poll reads it again" in result.output
    assert sorted(stored(session)) == ["m1@acme.example"]  # 3 waits behind 2: the cursor never jumps a message
    assert last_uid(session) == 1

    broken["yes"] = False
    again = poll()

    assert again.exit_code == 0, again.output
    assert sorted(stored(session)) == ["m1@acme.example", "m2@acme.example", "m3@acme.example"]
    assert last_uid(session) == 3
