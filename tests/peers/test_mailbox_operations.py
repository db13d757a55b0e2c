"""Operations on mailboxes: IMAP settings stored with the mailbox (the password only by the
name of its variable), polled by the same chore the embedded loop and beat run, against a
real Dovecot; ``mailboxes sync`` and ``sequences load`` bring in the config's [[mailboxes]]."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from sequencer.app.celery_app import INBOUND_POLL_TASK
from sequencer.app.celery_app import app as celery
from sequencer.app.cli import app
from sequencer.core.clock import SystemClock
from sequencer.core.config import REPO_TEMPLATES, Settings
from sequencer.core.db import make_engine
from sequencer.core.db import session as new_session
from sequencer.core.models import InboundMessage, Mailbox
from sequencer.inbound import mailbox_poll
from sequencer.inbound.imap_poll import ImapConfigError
from sequencer.sending import mailboxes

pytest_plugins = ["imap_server"]  # the dovecot / imap_server fixtures

ADDRESS = "sam@outreach-acme.example"
REPLY = (b"From: dana@northwind.example\r\nTo: sam@outreach-acme.example\r\nSubject: Re: hello\r\n"
         b"Message-ID: <reply-1@northwind.example>\r\n\r\nSounds good, call me.\r\n")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(REPO_TEMPLATES, tmp_path / "templates")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", f"sqlite:///{tmp_path / 'ops.db'}")
    monkeypatch.setenv("SEQUENCER_TEMPLATES", str(tmp_path / "templates"))
    monkeypatch.setenv("COLUMNS", "400")
    return tmp_path


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def _mailbox(workspace: Path) -> Mailbox:
    engine = make_engine(f"sqlite:///{workspace / 'ops.db'}")
    with new_session(engine) as session:
        box = session.exec(select(Mailbox).where(Mailbox.address == ADDRESS)).one()
    engine.dispose()
    return box


def test_mailboxes_add_stores_imap_settings_and_the_poll_chore_reads_the_folder(workspace, imap_server, monkeypatch):
    host, port, user, password = imap_server
    monkeypatch.setenv("SAM_IMAP_PASSWORD", password)
    result = _cli("mailboxes", "add", ADDRESS, "--imap-host", host, "--imap-port", str(port), "--no-imap-ssl",
                  "--imap-username", user, "--imap-password-env", "SAM_IMAP_PASSWORD")
    assert result.exit_code == 0, result.output
    box = _mailbox(workspace)
    assert (box.imap_host, box.imap_port, box.imap_ssl, box.imap_username, box.imap_password_env) == (
        host, port, False, user, "SAM_IMAP_PASSWORD")
    assert password not in repr(box.model_dump())  # the secret itself is nowhere in the row

    from imapclient import IMAPClient

    with IMAPClient(host, port=port, ssl=False) as client:
        client.login(user, password)
        client.append("INBOX", REPLY)
    engine = make_engine(f"sqlite:///{workspace / 'ops.db'}")
    with new_session(engine) as session:
        settings = Settings(database_url=f"sqlite:///{workspace / 'ops.db'}")
        lines = mailbox_poll.poll_all(session, SystemClock().now, settings)
        again = mailbox_poll.poll_all(session, SystemClock().now, settings)
        stored = session.exec(select(InboundMessage)).all()
    engine.dispose()
    assert lines == [f"inbound poll {ADDRESS}: 1 fetched, 1 ingested, 0 failed"], lines
    assert again == []  # the cursor moved: nothing read twice
    assert [m.message_id for m in stored] == ["reply-1@northwind.example"]


def test_a_missing_password_variable_is_a_line_for_that_mailbox_not_a_stopped_poll(workspace, monkeypatch):
    monkeypatch.delenv("NOPE_PASSWORD", raising=False)
    assert _cli("mailboxes", "add", ADDRESS, "--imap-host", "127.0.0.1", "--imap-password-env",
                "NOPE_PASSWORD").exit_code == 0
    assert _cli("mailboxes", "add", "jo@outreach-acme.example", "--imap-host", "127.0.0.1").exit_code == 0
    engine = make_engine(f"sqlite:///{workspace / 'ops.db'}")
    with new_session(engine) as session:
        lines = mailbox_poll.poll_all(session, SystemClock().now, Settings())
        with pytest.raises(ImapConfigError, match="NOPE_PASSWORD is not set"):
            mailbox_poll.imap_of(session.exec(select(Mailbox).where(Mailbox.address == ADDRESS)).one(), Settings())
    engine.dispose()
    assert lines == [
        "inbound poll jo@outreach-acme.example: mailbox jo@outreach-acme.example: imap_password_env "
        "(the variable holding the password) is required",
        f"inbound poll {ADDRESS}: mailbox {ADDRESS}: environment variable NOPE_PASSWORD is not set",
    ]


def test_a_password_in_clear_is_refused_naming_the_field_to_use(session, clock):
    with pytest.raises(mailboxes.MailboxError, match=r"imap_password: passwords are not stored.*imap_password_env"):
        mailboxes.upsert(session, {"address": ADDRESS, "imap_host": "imap.example", "imap_password": "hunter2"})
    with pytest.raises(mailboxes.MailboxError, match="imap_ssl must be true or false"):
        mailboxes.upsert(session, {"address": ADDRESS, "imap_ssl": "false"})
    assert session.exec(select(Mailbox)).all() == []


def _config(workspace: Path, address: str) -> None:
    (workspace / "sequencer.toml").write_text(
        f'[[mailboxes]]\naddress = "{address}"\nsmtp_host = "smtp.example.net"\ndaily_cap = 33\n'
        'imap_host = "imap.example.net"\nimap_password_env = "SAM_IMAP_PASSWORD"\n')


def test_mailboxes_sync_and_sequences_load_bring_in_the_config_mailboxes(workspace):
    _config(workspace, ADDRESS)
    result = _cli("mailboxes", "sync")
    assert result.exit_code == 0, result.output
    box = _mailbox(workspace)
    assert (box.smtp_host, box.daily_cap, box.imap_host, box.imap_password_env) == (
        "smtp.example.net", 33, "imap.example.net", "SAM_IMAP_PASSWORD")

    _config(workspace, "jo@outreach-acme.example")
    result = _cli("sequences", "load")
    assert result.exit_code == 0, result.output
    assert "jo@outreach-acme.example" in _cli("mailboxes", "list").output


def test_a_bad_mailbox_in_the_config_fails_sync_naming_it(workspace):
    (workspace / "sequencer.toml").write_text(f'[[mailboxes]]\naddress = "{ADDRESS}"\nimap_port = 70000\n')
    result = _cli("mailboxes", "sync")
    assert result.exit_code == 1
    assert "mailboxes[0]: mailbox sam@outreach-acme.example: imap_port must be a port number" in result.output


def test_beat_polls_the_mailboxes():
    entry = celery.conf.beat_schedule["inbound-poll"]
    assert entry["task"] == INBOUND_POLL_TASK and entry["schedule"] == Settings().imap_poll_seconds
    assert INBOUND_POLL_TASK in celery.tasks
