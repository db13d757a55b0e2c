"""``sequencer run`` wakes on a new signal: its first email goes out long before the next tick.

The loop runs as its own process with a 600-second tick interval, on a SQLite file, sending
to the loopback SMTP server. Once its first tick is done, a signal stored by another process
(this test, as ``sequencer serve``'s ``POST /signals`` stores one) must be mailed within the
wait below: only the wake between ticks can do that, as no tick comes for ten minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from sequencer.core.db import make_engine, migrate
from sequencer.core.db import session as new_session
from sequencer.core.models import DomainCheck, Signal
from sequencer.intake import signals
from sequencer.loopback.smtp_server import LocalSmtpServer

SEQUENCER = Path(sys.executable).with_name("sequencer")
WAIT = 60.0  # seconds for the email to arrive; the tick interval is ten times that
SEQUENCE = """\
name: inbound
owner: sam.sdr@acme.example
trigger:
  signals: [form_fill]
window: {days: mon-sun, start: "00:00", end: "23:59"}
mailboxes: [sam@outreach-acme.example]
steps:
  - id: thanks
    kind: email
    subject: "Thanks, {{ prospect.first_name }}"
    template: thanks.j2
"""


@pytest.mark.parametrize("how", ["stored", "cli"])
def test_the_loop_mails_a_new_signal_between_ticks(tmp_path: Path, smtp: LocalSmtpServer, how: str) -> None:
    """``stored``: the signal waits unprocessed (as POST /signals leaves it); ``cli``: ``sequencer
    signal`` stores and enrolls by itself, so the loop sees a new enrollment, not a signal."""
    (tmp_path / "templates" / "sequences").mkdir(parents=True)
    (tmp_path / "templates" / "steps").mkdir()
    (tmp_path / "templates" / "sequences" / "inbound.yaml").write_text(SEQUENCE)
    (tmp_path / "templates" / "steps" / "thanks.j2").write_text("Hi {{ prospect.first_name }}, thanks.\n")
    (tmp_path / "sequencer.toml").write_text(
        'secret_key = "test-secret-0123456789abcdefghij"\nprimary_domain = "acme.example"\n'
        f'[[mailboxes]]\naddress = "sam@outreach-acme.example"\nsmtp_host = "{smtp.host}"\n'
        f"smtp_port = {smtp.port}\n")
    url = f"sqlite:///{tmp_path / 'sequencer.db'}"
    engine = make_engine(url)
    migrate(engine)
    now = datetime.now(UTC)
    with new_session(engine) as session:  # the sending domain as `domains check` leaves it when it passes
        session.add(DomainCheck(domain="outreach-acme.example", status="pass", checked_at=now, report={},
                                expires_at=now + timedelta(days=1), last_good_status="pass", last_good_at=now))
        session.commit()
    env = {**os.environ, "SEQUENCER_CONFIG": str(tmp_path / "sequencer.toml"), "SEQUENCER_DATABASE_URL": url,
           "SEQUENCER_TEMPLATES": str(tmp_path / "templates")}
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        loop = subprocess.Popen([str(SEQUENCER), "run", "--interval", "600"], env=env, cwd=tmp_path, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT
        while "outreach-acme.example: pass" not in log.read_text():  # housekeeping, just before the first tick
            if loop.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"sequencer run did not start its first tick:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        time.sleep(1.0)  # past the first tick: from here only the wake can act before ten minutes

        if how == "stored":
            with new_session(engine) as session:
                stored = signals.store_many(session, datetime.now(UTC), [signals.SignalIn(
                    "form_fill", email="priya@brightside.example", payload={"first_name": "Priya"})])
            assert stored[0].duplicate is False
        else:
            done = subprocess.run([str(SEQUENCER), "signal", "form_fill", "--email", "priya@brightside.example",
                                   "--data", "first_name=Priya"], env=env, cwd=tmp_path, capture_output=True,
                                  text=True)
            assert done.returncode == 0, done.stdout + done.stderr
        deadline = time.monotonic() + WAIT
        while not smtp.messages and time.monotonic() < deadline and loop.poll() is None:
            time.sleep(0.1)
    finally:
        loop.terminate()
        loop.wait(timeout=30)
    assert [message.rcpt_tos for message in smtp.messages] == [["priya@brightside.example"]], log.read_text()
    assert b"Subject: Thanks, Priya" in smtp.messages[0].content
    with new_session(engine) as session:
        assert all(signal.processed_at is not None for signal in session.exec(select(Signal)))
    engine.dispose()
