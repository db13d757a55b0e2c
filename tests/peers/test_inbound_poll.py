"""IMAP polling against a real Dovecot on loopback: nothing read twice, nothing skipped."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import typer
from imapclient import IMAPClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from sequencer.app.cli import inbound as inbound_cli
from sequencer.app.cli.inbound import poll_command
from sequencer.core.config import Settings
from sequencer.core.db import make_engine, migrate
from sequencer.core.db import session as new_session
from sequencer.core.models import InboundCursor, InboundMessage, Mailbox
from sequencer.inbound.imap_poll import (
    ImapConfigError,
    ImapSettings,
    PollError,
    imap_connector,
    imap_settings,
    poll_mailbox,
)

if TYPE_CHECKING:
    from imap_server import ImapAccount

pytest_plugins = ["imap_server"]  # the dovecot / imap_server fixtures

ADDRESS = "sdr@outreach.example"


def message(n: int) -> bytes:
    return (
        f"From: prospect{n}@acme.example\r\nTo: {ADDRESS}\r\nSubject: Re: hello {n}\r\n"
        f"Message-ID: <m{n}@acme.example>\r\n\r\nreply number {n}\r\n"
    ).encode()


def message_number(raw: bytes) -> int:
    found = re.search(rb"Message-ID: <m(\d+)@", raw)
    assert found, raw
    return int(found.group(1))


class Recorder:
    """An ingest callback that remembers message numbers and fails on request."""

    def __init__(self, fail_on: set[int] = frozenset(), exc: BaseException | None = None) -> None:
        self.seen: list[int] = []
        self.fail_on = fail_on
        self.exc = exc or ValueError("cannot parse")

    def __call__(self, raw: bytes) -> None:
        number = message_number(raw)
        if number in self.fail_on:
            raise self.exc
        self.seen.append(number)


def login(account: ImapAccount) -> IMAPClient:
    client = IMAPClient(account.host, port=account.port, ssl=False)
    client.login(account.user, account.password)
    return client


def connector(account: ImapAccount) -> Callable[[], IMAPClient]:
    return imap_connector(
        ImapSettings(account.host, account.port, False, account.user, account.password),
        timeout=5,
    )


def put(account: ImapAccount, *numbers: int, folder: str = "INBOX") -> None:
    with login(account) as client:
        for n in numbers:
            client.append(folder, message(n))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'poll.db'}")
    migrate(engine)
    with new_session(engine) as session:
        session.add(Mailbox(address=ADDRESS, sending_domain="outreach.example"))
        session.commit()
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with new_session(engine) as session:
        yield session


def mailbox(session: Session) -> Mailbox:
    return session.exec(select(Mailbox).where(Mailbox.address == ADDRESS)).one()


def poll(session: Session, account: ImapAccount, ingest: Callable[[bytes], object], **kw):
    return poll_mailbox(session, mailbox(session), connector(account), ingest, **kw)


# --- the cursor ---------------------------------------------------------------------------


def test_first_poll_reads_all_then_only_new(session: Session, imap_server: ImapAccount) -> None:
    put(imap_server, 1, 2, 3)
    ingest = Recorder()

    first = poll(session, imap_server, ingest)
    assert (first.fetched, first.ingested, first.failed, first.errors) == (3, 3, 0, [])
    assert ingest.seen == [1, 2, 3]

    second = poll(session, imap_server, ingest)
    assert (second.fetched, second.ingested) == (0, 0)

    put(imap_server, 4)
    third = poll(session, imap_server, ingest)
    assert (third.fetched, third.ingested) == (1, 1)
    assert ingest.seen == [1, 2, 3, 4]
    cursor = session.exec(select(InboundCursor)).one()
    assert (cursor.folder, cursor.last_uid) == ("INBOX", 4)
    assert cursor.uidvalidity > 0


def test_small_batches_still_read_everything_in_order(
    session: Session, imap_server: ImapAccount
) -> None:
    put(imap_server, *range(1, 8))
    ingest = Recorder()
    result = poll(session, imap_server, ingest, batch=3)
    assert result.ingested == 7
    assert ingest.seen == list(range(1, 8))


def test_polling_does_not_mark_messages_read(session: Session, imap_server: ImapAccount) -> None:
    put(imap_server, 1)
    poll(session, imap_server, Recorder())
    with login(imap_server) as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search(["UNSEEN"]) == [1]


def test_a_fresh_process_resumes_from_the_stored_cursor(
    tmp_path: Path, engine: Engine, imap_server: ImapAccount
) -> None:
    put(imap_server, 1, 2)
    with new_session(engine) as first:
        assert poll(first, imap_server, Recorder()).ingested == 2
    engine.dispose()

    put(imap_server, 3)
    restarted = make_engine(f"sqlite:///{tmp_path / 'poll.db'}")
    ingest = Recorder()
    with new_session(restarted) as second:
        result = poll(second, imap_server, ingest)
    restarted.dispose()
    assert ingest.seen == [3]
    assert result.fetched == 1


def test_cursors_are_per_folder(session: Session, imap_server: ImapAccount) -> None:
    with login(imap_server) as client:
        client.create_folder("Bounces")
    put(imap_server, 1)
    put(imap_server, 2, folder="Bounces")
    inbox, bounces = Recorder(), Recorder()
    poll(session, imap_server, inbox)
    poll(session, imap_server, bounces, folder="Bounces")
    assert (inbox.seen, bounces.seen) == ([1], [2])
    assert len(session.exec(select(InboundCursor)).all()) == 2


def test_uidvalidity_change_reads_the_folder_again(
    session: Session, imap_server: ImapAccount
) -> None:
    with login(imap_server) as client:
        client.create_folder("Replies")
    put(imap_server, 1, 2, 3, folder="Replies")
    assert poll(session, imap_server, Recorder(), folder="Replies").ingested == 3
    with login(imap_server) as client:
        before = client.folder_status("Replies", ["UIDVALIDITY"])[b"UIDVALIDITY"]
        client.delete_folder("Replies")
        client.create_folder("Replies")
        assert client.folder_status("Replies", ["UIDVALIDITY"])[b"UIDVALIDITY"] != before
    put(imap_server, 11, 12, 13, 14, folder="Replies")  # UIDs 1..4 again

    ingest = Recorder()
    result = poll(session, imap_server, ingest, folder="Replies")
    assert result.restarted
    assert ingest.seen == [11, 12, 13, 14]
    assert not poll(session, imap_server, Recorder(), folder="Replies").restarted


# --- failures -----------------------------------------------------------------------------


def test_a_failing_message_does_not_stop_the_others(
    session: Session, imap_server: ImapAccount
) -> None:
    put(imap_server, 1, 2, 3)
    ingest = Recorder(fail_on={2})
    quarantined: list[tuple[int, str]] = []
    result = poll(session, imap_server, ingest,
                  quarantine=lambda raw, why: quarantined.append((message_number(raw), why)))
    assert ingest.seen == [1, 3]
    assert (result.fetched, result.ingested, result.failed) == (3, 2, 1)
    assert result.errors == ["UID 2: ValueError: cannot parse (quarantined)"]
    assert quarantined == [(2, "ingest failed while polling (UID 2): ValueError: cannot parse")]
    # quarantined, so the cursor has moved past the failed message
    assert poll(session, imap_server, Recorder(fail_on={2})).fetched == 0


def test_a_failed_ingest_is_rolled_back_not_committed_with_the_cursor(
    session: Session, imap_server: ImapAccount
) -> None:
    put(imap_server, 1, 2, 3)

    def ingest(raw: bytes) -> None:
        number = message_number(raw)
        session.add(InboundMessage(dedupe_key=f"m{number}"))
        if number == 2:
            raise RuntimeError("classifier crashed")

    result = poll(session, imap_server, ingest, quarantine=lambda raw, why: None)
    assert result.failed == 1
    keys = session.exec(select(InboundMessage.dedupe_key)).all()
    assert sorted(keys) == ["m1", "m3"]


def test_a_crash_mid_poll_rereads_only_the_message_in_flight(
    session: Session, imap_server: ImapAccount
) -> None:
    class Crash(BaseException):
        pass

    put(imap_server, 1, 2, 3)
    with pytest.raises(Crash):
        poll(session, imap_server, Recorder(fail_on={2}, exc=Crash()))
    session.rollback()
    ingest = Recorder()
    poll(session, imap_server, ingest)
    assert ingest.seen == [2, 3]


def test_connection_failure_raises_poll_error(session: Session, imap_server: ImapAccount) -> None:
    wrong = imap_server._replace(password="wrong")
    with pytest.raises(PollError, match="cannot connect"):
        poll(session, wrong, Recorder())
    with pytest.raises(PollError, match="cannot connect"):
        poll(session, imap_server._replace(port=1), Recorder())
    assert session.exec(select(InboundCursor)).all() == []


def test_missing_folder_raises_poll_error(session: Session, imap_server: ImapAccount) -> None:
    with pytest.raises(PollError, match=f"{ADDRESS}/Nope: IMAP failed"):
        poll(session, imap_server, Recorder(), folder="Nope")


def test_server_dropping_mid_fetch_keeps_what_was_ingested(
    session: Session, imap_server: ImapAccount
) -> None:
    put(imap_server, 1, 2, 3, 4)
    clients: list[IMAPClient] = []

    def connect() -> IMAPClient:
        clients.append(connector(imap_server)())
        return clients[-1]

    def ingest(raw: bytes) -> None:
        if message_number(raw) == 2:
            clients[-1].shutdown()  # the server connection goes away after message 2

    with pytest.raises(PollError, match="IMAP failed"):
        poll_mailbox(session, mailbox(session), connect, ingest, batch=2)
    ingest_after = Recorder()
    poll(session, imap_server, ingest_after)
    assert ingest_after.seen == [3, 4]


def test_bad_arguments_are_refused(session: Session, imap_server: ImapAccount) -> None:
    with pytest.raises(ValueError, match="batch"):
        poll(session, imap_server, Recorder(), batch=0)
    with pytest.raises(ValueError, match="stored"):
        poll_mailbox(
            session,
            Mailbox(address="x@y.example", sending_domain="y.example"),
            connector(imap_server),
            Recorder(),
        )


# --- settings -----------------------------------------------------------------------------


def settings_with(**entry: object) -> Settings:
    return Settings(mailboxes=[{"address": ADDRESS, **entry}], source="sequencer.toml")


BOX = Mailbox(id=1, address=ADDRESS, sending_domain="outreach.example")


def test_imap_settings_defaults() -> None:
    imap = imap_settings(
        BOX, settings_with(imap_host="imap.example", imap_password_env="PW"), env={"PW": "s3"}
    )
    assert imap == ImapSettings("imap.example", 993, True, ADDRESS, "s3")
    assert "s3" not in repr(imap)
    plain = imap_settings(
        BOX,
        settings_with(imap_host="h", imap_ssl=False, imap_username="u", imap_password_env="PW"),
        env={"PW": "x"},
    )
    assert (plain.port, plain.ssl, plain.username) == (143, False, "u")


def test_imap_settings_match_the_address_case_insensitively() -> None:
    config = Settings(
        mailboxes=[
            {"address": "other@outreach.example", "imap_host": "wrong"},
            {
                "address": ADDRESS.upper(),
                "imap_host": "right",
                "imap_port": 1993,
                "imap_password_env": "PW",
            },
        ]
    )
    imap = imap_settings(BOX, config, env={"PW": "x"})
    assert (imap.host, imap.port) == ("right", 1993)


@pytest.mark.parametrize(
    ("entry", "env", "message"),
    [
        ({}, {}, "no imap_host configured"),
        ({"imap_host": 3, "imap_password_env": "PW"}, {"PW": "x"}, "imap_host must be text"),
        (
            {"imap_host": "h", "imap_ssl": "yes", "imap_password_env": "PW"},
            {"PW": "x"},
            "imap_ssl must be true or false",
        ),
        (
            {"imap_host": "h", "imap_port": "993", "imap_password_env": "PW"},
            {"PW": "x"},
            "imap_port must be a port number",
        ),
        (
            {"imap_host": "h", "imap_port": 70000, "imap_password_env": "PW"},
            {"PW": "x"},
            "imap_port must be a port number",
        ),
        (
            {"imap_host": "h", "imap_username": "", "imap_password_env": "PW"},
            {"PW": "x"},
            "imap_username must be text",
        ),
        ({"imap_host": "h"}, {}, "imap_password_env .* is required"),
        ({"imap_host": "h", "imap_password_env": "PW"}, {}, "environment variable PW is not set"),
    ],
)
def test_imap_settings_errors_name_the_mailbox(entry: dict, env: dict, message: str) -> None:
    with pytest.raises(ImapConfigError, match=f"sequencer.toml: mailbox {ADDRESS}: {message}"):
        imap_settings(BOX, settings_with(**entry), env=env)


def test_imap_settings_for_an_unlisted_mailbox() -> None:
    with pytest.raises(ImapConfigError, match="no imap_host"):
        imap_settings(BOX, Settings(mailboxes=[{"address": "someone@else.example"}]), env={})


# --- CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli(
    tmp_path: Path, engine: Engine, imap_server: ImapAccount, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., object]:
    """Run ``inbound poll`` with a config pointing at the test DB and Dovecot.

    ``sequencer.inbound.ingest`` is replaced by a recorder so the shell is tested alone.
    """
    config = tmp_path / "sequencer.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp_path / "poll.db"}"\n'
        f"[[mailboxes]]\naddress = {ADDRESS!r}\nimap_host = {imap_server.host!r}\n"
        f"imap_port = {imap_server.port}\nimap_ssl = false\n"
        f"imap_username = {imap_server.user!r}\nimap_password_env = 'TEST_IMAP_PW'\n"
        "[[mailboxes]]\naddress = 'nopw@outreach.example'\nimap_host = '127.0.0.1'\n"
        "imap_password_env = 'UNSET_IMAP_PW'\n"
    )
    monkeypatch.setenv("SEQUENCER_CONFIG", str(config))
    monkeypatch.setenv("TEST_IMAP_PW", imap_server.password)
    monkeypatch.delenv("UNSET_IMAP_PW", raising=False)
    monkeypatch.delenv("SEQUENCER_DATABASE_URL", raising=False)
    seen: list[tuple[object, int]] = []

    def ingest_raw(session: Session, now: object, settings: Settings, raw: bytes) -> None:
        if b"poison" in raw:
            raise ValueError("poison message")
        seen.append((now, message_number(raw)))

    monkeypatch.setattr(inbound_cli, "ingest_raw", ingest_raw)  # the poll under test, not the classifier
    root = typer.Typer()
    inbound = typer.Typer()
    inbound.command("poll")(poll_command)
    root.add_typer(inbound, name="inbound")

    def run(*args: str) -> object:
        result = CliRunner().invoke(root, ["inbound", "poll", *args])
        result.seen = seen  # type: ignore[attr-defined]
        return result

    return run


def test_cli_polls_the_configured_mailbox(cli, imap_server: ImapAccount) -> None:
    put(imap_server, 1, 2)
    result = cli("--mailbox", ADDRESS)
    assert result.exit_code == 0, result.output
    assert [number for _, number in result.seen] == [1, 2]
    assert all(now.tzinfo is not None for now, _ in result.seen)
    assert ADDRESS in result.output
    assert cli("--mailbox", ADDRESS).exit_code == 0
    assert len(result.seen) == 2


def test_cli_reports_a_failed_message_and_exits_1(cli, imap_server: ImapAccount) -> None:
    put(imap_server, 1)
    with login(imap_server) as client:
        client.append("INBOX", message(2).replace(b"reply number", b"poison"))
    put(imap_server, 3)
    result = cli("--mailbox", ADDRESS)
    assert result.exit_code == 1
    assert f"{ADDRESS}: UID 2: ValueError: poison message" in result.output
    assert [number for _, number in result.seen] == [1, 3]


def test_cli_polls_only_mailboxes_with_imap_settings(
    cli, engine: Engine, imap_server: ImapAccount
) -> None:
    with new_session(engine) as session:
        session.add(Mailbox(address="noimap@outreach.example", sending_domain="outreach.example"))
        session.add(Mailbox(address="nopw@outreach.example", sending_domain="outreach.example"))
        session.commit()
    put(imap_server, 1)
    result = cli()
    assert result.exit_code == 1  # nopw has no password in the environment
    assert "variable UNSET_IMAP_PW is not set" in result.output
    assert "noimap@" not in result.output
    assert [number for _, number in result.seen] == [1]  # the others still ran


def test_cli_unknown_mailbox_fails(cli) -> None:
    result = cli("--mailbox", "ghost@outreach.example")
    assert result.exit_code == 1
    assert "no mailbox 'ghost@outreach.example'" in result.output


def test_cli_with_nothing_configured_says_so(
    cli, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bare = tmp_path / "bare.toml"
    bare.write_text(f'database_url = "sqlite:///{tmp_path / "poll.db"}"\n')
    monkeypatch.setenv("SEQUENCER_CONFIG", str(bare))
    result = cli()
    assert result.exit_code == 0
    assert "nothing to poll" in result.output


# --- the test server itself ---------------------------------------------------------------


def test_missing_dovecot_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import imap_server as server_module

    monkeypatch.setattr(server_module, "find_dovecot", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y dovecot-imapd"):
        server_module.require_dovecot()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="dovecot is not installed"):
        server_module.require_dovecot()
