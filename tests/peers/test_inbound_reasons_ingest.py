"""Bounce reasons and the other #11 classes end to end: ingest on a real database, the CLI over folders and mbox.

Each test sends a real first email through the engine to a loopback SMTP server and feeds back
mail about *that* message (its Message-ID, its signed return path), on SQLite and PostgreSQL
(the db_url fixture): the ``bounce`` rows a DSN writes, a ``bounce.mailbox_full`` rule taking
effect, ``explain`` showing the reason and status code, a DSN without sender headers acted on
rather than quarantined, and an unsubscribe button's message (Auto-Submitted set) suppressing
only when it is tied to our touch.
"""

from __future__ import annotations

import json
import mailbox
import shutil
from pathlib import Path

import pytest
from engine_support import enrollment_of, prepare, write_templates
from inbound_support import OUR_MAILBOX, count, dsn, send_first_email
from sqlmodel import select
from typer.testing import CliRunner

from channels.email import SmtpSender
from sequencer.app.cli import app as cli
from sequencer.app.wiring import build as build_runtime
from sequencer.core.models import Bounce, InboundMessage
from sequencer.engine.explain import as_data, explain
from sequencer.inbound.ingest import ingest_raw
from suppression.models import SuppressionEntry

DANA = "dana@northwind.example"
CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "inbound" / "corpus"
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def runtime(tmp_path, session, clock, settings):
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates"))
    sender = SmtpSender(timeout=5)
    yield build_runtime(settings, sender, check_domains=False)
    sender.close()


def suppressed(session, email: str) -> list[SuppressionEntry]:
    return list(session.exec(select(SuppressionEntry).where(SuppressionEntry.value == email)))


def test_a_mailbox_full_dsn_writes_its_bounce_row_and_the_reason_rule_takes_effect(
        session, clock, settings, runtime, smtp, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("defaults:\n  bounce.mailbox_full: [stop]\n")
    settings.rules_file = str(rules)
    first, = send_first_email(session, clock, runtime, smtp, DANA)

    result = ingest_raw(session, clock.now(), settings, dsn(first, "5.2.2", "552 5.2.2 Mailbox full, over quota"))

    row, = session.exec(select(Bounce)).all()
    assert (row.source, row.touch_id, row.recipient) == ("dsn", first.touch_id, DANA)
    assert (row.bounce_type, row.bounce_reason, row.status_code) == ("soft", "mailbox_full", "5.2.2")
    assert row.mailbox_id is not None and row.inbound_message_id == result.message.id
    assert result.message.bounce_reason == "mailbox_full" and result.message.status_code == "5.2.2"
    dana = enrollment_of(session, DANA)
    assert dana.state == "stopped" and dana.rule == "defaults.bounce.mailbox_full"
    assert suppressed(session, DANA) == []  # a full mailbox is not a bad address
    step = as_data(explain(session, DANA))["enrollments"][0]["steps"][0]
    assert (step["bounce_type"], step["bounce_reason"], step["status_code"]) == ("soft", "mailbox_full", "5.2.2")


def test_without_a_reason_rule_a_mailbox_full_dsn_is_a_soft_bounce_and_suppresses_nothing(
        session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)

    ingest_raw(session, clock.now(), settings, dsn(first, "4.2.2", "452 4.2.2 Mailbox full", action="failed"))

    assert enrollment_of(session, DANA).rule != "defaults.bounce.mailbox_full"
    assert enrollment_of(session, DANA).state != "stopped"
    assert suppressed(session, DANA) == []
    assert [r.bounce_reason for r in session.exec(select(Bounce))] == ["mailbox_full"]


def test_a_dsn_with_no_sender_headers_is_ingested_as_a_bounce_not_quarantined(session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    raw = dsn(first, "5.1.1", "550 5.1.1 <dana@northwind.example>: Recipient address rejected: User unknown")
    raw = b"".join(line for line in raw.splitlines(keepends=True) if not line.startswith(b"From: MAILER-DAEMON"))
    assert b"\nFrom:" not in raw.split(b"\r\n\r\n", 1)[0] and b"Return-Path" not in raw.split(b"\r\n\r\n", 1)[0]

    result = ingest_raw(session, clock.now(), settings, raw)

    assert not result.message.quarantined
    assert (result.message.kind, result.message.bounce_reason) == ("bounce", "user_unknown")
    assert [(r.bounce_type, r.touch_id) for r in session.exec(select(Bounce))] == [("hard", first.touch_id)]
    assert enrollment_of(session, DANA).state == "stopped"
    assert [e.reason for e in suppressed(session, DANA)] == ["hard_bounce"]


def _opt_out(sender: str, to: str) -> bytes:
    """What an unsubscribe button sends: subject 'unsubscribe', Auto-Submitted, a one-line body."""
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: unsubscribe\r\nDate: Tue, 01 Dec 2026 09:00:00 +0000\r\n"
            f"Message-ID: <optout-{abs(hash((sender, to)))}@mail.example>\r\nAuto-Submitted: auto-generated\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "This unsubscribe request was sent automatically.\r\n").encode()


def test_an_automated_opt_out_to_our_signed_address_suppresses_and_stops(session, clock, settings, runtime, smtp):
    first, = send_first_email(session, clock, runtime, smtp, DANA)

    result = ingest_raw(session, clock.now(), settings, _opt_out(DANA, first.envelope_from))

    assert result.message.kind == "unsubscribe_request"  # Auto-Submitted, yet never an auto-reply
    assert result.message.touch_id == first.touch_id and result.message.match_method == "verp"
    assert enrollment_of(session, DANA).state == "stopped"
    assert [e.reason for e in suppressed(session, DANA)] == ["unsubscribed"]


def test_an_automated_opt_out_that_names_no_touch_of_ours_suppresses_nobody(session, clock, settings, runtime, smtp):
    send_first_email(session, clock, runtime, smtp, DANA)

    result = ingest_raw(session, clock.now(), settings, _opt_out("someone@elsewhere.example", OUR_MAILBOX))

    assert result.message.kind == "unsubscribe_request" and result.message.touch_id is None
    assert "no matching touch" in result.action
    assert enrollment_of(session, DANA).state == "active"
    assert count(session, SuppressionEntry) == 0


def classify_cli(monkeypatch, tmp_path, settings, *args: str):
    monkeypatch.chdir(tmp_path)  # no sequencer.toml here: settings come from the environment
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", settings.database_url)
    return CliRunner().invoke(cli, ["inbound", "classify", *args], env={"COLUMNS": "250"})


@sqlite_only
def test_classify_reads_a_folder_and_an_mbox_one_json_object_per_message(
        session, clock, settings, runtime, smtp, monkeypatch, tmp_path):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    folder = tmp_path / "triage"
    folder.mkdir()
    picked = [CORPUS / "bounce" / "mailbox_full" / "ses_json_mailboxfull.eml",
              CORPUS / "autoreply" / "out_of_office" / "o365_de.eml", CORPUS / "human" / "reply" / "short_yes.eml"]
    for path in picked:
        shutil.copy(path, folder / path.name)
    box = mailbox.mbox(tmp_path / "inbox.mbox")
    box.add(dsn(first, "5.1.1", "550 5.1.1 User unknown"))
    box.add((CORPUS / "unsubscribe" / "gmail_button.eml").read_bytes())
    box.flush()
    box.close()

    result = classify_cli(monkeypatch, tmp_path, settings, str(folder), str(tmp_path / "inbox.mbox"), "--json")

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    kinds = [(line["classification"]["kind"], line["classification"]["bounce_reason"]) for line in lines]
    assert kinds == [("out_of_office", None), ("bounce", "mailbox_full"), ("reply", None),  # folder, by name
                     ("bounce", "user_unknown"), ("unsubscribe_request", None)]  # the mbox, in order
    assert lines[3]["match"]["touch_id"] == first.touch_id and lines[3]["match"]["strength"] == "strong"
    assert count(session, InboundMessage) == 0  # classify changes nothing

    table = classify_cli(monkeypatch, tmp_path, settings, str(folder))
    assert table.exit_code == 0, table.output
    assert "mailbox_full" in table.output and "out_of_office" in table.output


def test_classify_in_a_fresh_folder_reads_the_messages_and_makes_no_database(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", f"sqlite:///{tmp_path / 'sequencer.db'}")

    result = CliRunner().invoke(cli, ["inbound", "classify", "--json", str(CORPUS / "bounce" / "policy_blocked")])

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    assert lines and {line["classification"]["bounce_type"] for line in lines} == {"block"}
    assert all(line["match"] is None for line in lines)  # nothing to match against: said, not guessed
    assert not (tmp_path / "sequencer.db").exists()


@sqlite_only
def test_explain_prints_a_bounced_steps_reason_and_status_code(
        session, clock, settings, runtime, smtp, monkeypatch, tmp_path):
    first, = send_first_email(session, clock, runtime, smtp, DANA)
    ingest_raw(session, clock.now(), settings, dsn(first, "5.7.1", "550 5.7.1 blocked using zen.spamhaus.org"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", settings.database_url)

    result = CliRunner().invoke(cli, ["explain", DANA], env={"COLUMNS": "250"})

    assert result.exit_code == 0, result.output
    assert "step 1 bounced: reason policy_blocked (block), status 5.7.1" in result.output
