"""The ways mail comes in besides IMAP: ``sequencer inbound classify / ingest`` and ``POST /inbound``.

The CLI runs in-process through the real Typer app on the test's database; the HTTP
endpoint runs on a real uvicorn on loopback. Both answer a touch the engine really sent.
"""

from __future__ import annotations

import json
import mailbox
from collections.abc import Iterator

import httpx
import pytest
from engine_support import enrollment_of, prepare, write_templates
from inbound_support import GARBAGE, count, dsn, reply, send_first_email
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select
from suppression_fixtures import live_server
from typer.testing import CliRunner

from channels.email import SmtpSender
from sequencer.app.api import create_app
from sequencer.app.cli import app as cli
from sequencer.app.wiring import build as build_runtime
from sequencer.core import api_keys
from sequencer.core.models import InboundMessage
from suppression.models import SuppressionEntry

DANA = "dana@northwind.example"
LEE = "lee@other.example"
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def touches(tmp_path, session, clock, settings, smtp):
    """Two prospects who each got the first email: Dana and Lee."""
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates"))
    sender = SmtpSender(timeout=5)
    try:
        yield send_first_email(session, clock, build_runtime(settings, sender, check_domains=False), smtp, DANA, LEE)
    finally:
        sender.close()


@pytest.fixture
def run(monkeypatch, tmp_path, settings):
    """``sequencer ...`` as a user runs it, pointed at the test's database."""
    monkeypatch.chdir(tmp_path)  # no sequencer.toml here: settings come from the environment
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", settings.database_url)

    def invoke(*args: str):
        return CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"})

    return invoke


def row_counts(session) -> dict[str, int]:
    session.expire_all()
    return {table.name: count(session, table) for table in SQLModel.metadata.sorted_tables}


# --- CLI -----------------------------------------------------------------------------------

def test_classify_json_prints_kind_match_and_evidence_and_changes_nothing(session, touches, run, tmp_path):
    dana, _ = touches
    path = tmp_path / "bounce.eml"
    path.write_bytes(dsn(dana, "5.1.1", f"550 5.1.1 <{DANA}>: user unknown"))
    before = row_counts(session)

    result = run("inbound", "classify", str(path), "--json")

    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    classification, match = answer["classification"], answer["match"]
    assert classification["kind"] == "bounce" and classification["bounce_type"] == "hard"
    assert classification["status_code"] == "5.1.1" and classification["bounced_recipients"] == [DANA]
    assert match == {"touch_id": dana.touch_id, "method": "original-message-id", "strength": "strong",
                     "evidence": f"original-message-id {dana.message_id}"}
    assert answer["enrollment_id"] == enrollment_of(session, DANA).id
    assert row_counts(session) == before
    assert enrollment_of(session, DANA).state == "active"


def test_classify_shows_an_ooo_return_date_for_people(session, touches, run, tmp_path):
    from inbound_support import out_of_office

    _, lee = touches
    path = tmp_path / "ooo.eml"
    path.write_bytes(out_of_office(lee, "I am out of the office until January 12, 2027."))

    result = run("inbound", "classify", str(path))

    assert result.exit_code == 0, result.output
    assert "out_of_office" in result.output and "2027-01-12" in result.output
    assert f"#{lee.touch_id}" in result.output and "by in-reply-to, strong" in result.output


def test_ingest_takes_eml_and_mbox_files_and_exits_1_when_something_was_quarantined(session, touches, run, tmp_path):
    dana, lee = touches
    eml = tmp_path / "a.eml"
    eml.write_bytes(reply(dana, "Not interested, thanks."))
    box = mailbox.mbox(str(tmp_path / "b.mbox"))
    for raw in (dsn(lee, "5.1.1", f"550 5.1.1 <{LEE}>: user unknown"),
                b"From: nobody\r\nX-Garbage: \x00\x00\x00\r\n\r\n" + GARBAGE,
                reply(lee, "Thanks, but no.", sender="stranger@elsewhere.example", in_reply_to=False)):
        box.add(raw)
    box.close()

    result = run("inbound", "ingest", str(eml), str(tmp_path / "b.mbox"))

    assert result.exit_code == 1, result.output
    assert f"{eml}: reply - builtin.reply.negative: stopped" in result.output
    assert "b.mbox#1: bounce - builtin.bounce.hard:" in result.output
    assert "b.mbox#2: quarantined - quarantined: unreadable message:" in result.output
    assert "b.mbox#3: reply - builtin.reply: no matching touch" in result.output
    session.expire_all()
    assert enrollment_of(session, DANA).state == "stopped" and enrollment_of(session, LEE).state == "stopped"
    assert session.exec(select(SuppressionEntry.value)).all() == [LEE]

    again = run("inbound", "ingest", str(eml))

    assert again.exit_code == 0 and "duplicate: already processed" in again.output


# --- HTTP ----------------------------------------------------------------------------------

@pytest.fixture
def client(engine: Engine, session, settings, clock) -> Iterator[httpx.Client]:
    """A client carrying an inbound key made the way ``sequencer api-keys create`` makes one."""
    key = api_keys.create(session, clock.now(), "inbound-tests", ["inbound"]).key
    auth = {"Authorization": f"Bearer {key}"}
    with (live_server(create_app(settings, engine, clock)) as base,
          httpx.Client(base_url=base, timeout=30, headers=auth) as client):
        yield client


def test_post_a_raw_message_as_the_body(session, touches, client):
    dana, _ = touches

    response = client.post("/inbound", content=reply(dana, "Not interested."),
                           headers={"Content-Type": "message/rfc822"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "reply" and body["touch_id"] == dana.touch_id
    assert body["duplicate"] is False and body["quarantined"] is False
    assert body["action"].startswith("builtin.reply.negative: stopped")
    assert enrollment_of(session, DANA).state == "stopped"


def test_post_a_raw_message_as_the_email_form_field_then_again_as_a_duplicate(session, touches, client):
    _, lee = touches
    raw = dsn(lee, "5.1.1", f"550 5.1.1 <{LEE}>: user unknown")

    first = client.post("/inbound", files={"email": ("message.eml", raw, "message/rfc822")})
    again = client.post("/inbound", data={"email": raw.decode()})

    assert first.status_code == 200, first.text
    assert first.json()["kind"] == "bounce" and first.json()["duplicate"] is False
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["id"] == first.json()["id"]
    session.expire_all()
    assert session.exec(select(SuppressionEntry.reason)).all() == ["hard_bounce"]
    assert count(session, InboundMessage) == 1


def test_post_garbage_is_quarantined_and_empty_input_is_refused(session, touches, client):
    garbage = client.post("/inbound", content=GARBAGE, headers={"Content-Type": "application/octet-stream"})
    empty = client.post("/inbound", content=b"", headers={"Content-Type": "message/rfc822"})
    no_field = client.post("/inbound", data={"other": "x"})

    assert garbage.status_code == 200 and garbage.json()["quarantined"] is True
    assert empty.status_code == 400 and "empty message" in empty.text
    assert no_field.status_code == 400 and "'email'" in no_field.text
    assert count(session, InboundMessage) == 1
