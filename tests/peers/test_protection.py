"""Automatic protection: crossing a pause threshold pauses the mailbox or domain, its touches are
deferred (never dropped) with the reason ``explain`` shows, and ``mailboxes resume`` undoes it and
records who did it. Thresholds come from ``[protection]`` in sequencer.toml."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import report_support
from engine_support import add_prospect, enrollment_of, fire, pooled_sequence, prepare, write_templates
from sqlmodel import Session, select
from typer.testing import CliRunner

from channels.email import SmtpSender
from sequencer.app import housekeeping
from sequencer.app.cli import app
from sequencer.app.wiring import build as build_runtime
from sequencer.core.config import ConfigError, Settings
from sequencer.core.models import Decision, DomainCheck, InboundMessage, Mailbox, SendingDomainPause, Touch
from sequencer.deliverability import protection
from sequencer.deliverability.counts import Counts
from sequencer.domains.health import sending_problem
from sequencer.engine.explain import explain
from sequencer.engine.tick import tick

pytestmark = pytest.mark.peers

SAM = "sam@outreach-acme.example"
JO = "jo@outreach-acme.example"
LIMITS = protection.thresholds(Settings())


def _box(smtp, address: str) -> dict:
    return {"address": address, "display_name": "Sam", "smtp_host": smtp.host, "smtp_port": smtp.port}


@pytest.fixture
def desk(tmp_path, session, clock, smtp, settings):
    configured = replace(settings, mailboxes=[_box(smtp, SAM)], protection={"min_sample": 2})
    prepare(session, clock.now(), configured, write_templates(tmp_path / "templates", pooled_sequence([SAM])))
    sender = SmtpSender(timeout=5)
    yield build_runtime(configured, sender, check_domains=False)
    sender.close()


def _due(session: Session, clock, email: str) -> None:
    add_prospect(session, clock.now(), email)
    fire(session, clock.now(), "intent_surge", email=email, score=80)


def _complain(session: Session, clock, touch: Touch) -> None:
    """A spam complaint about ``touch``, stored as the inbound path stores an ARF report it matched."""
    session.add(InboundMessage(dedupe_key=f"arf-{touch.id}", kind="complaint", touch_id=touch.id,
                               enrollment_id=touch.enrollment_id, received_at=clock.now()))
    session.commit()


def test_judge_follows_the_thresholds_and_the_minimum_sample() -> None:
    assert protection.judge(Counts(sent=99, complaints=50), LIMITS).level == "healthy"  # fewer than 100 sends
    assert protection.judge(Counts(sent=1001, complaints=1), LIMITS).level == "healthy"  # under 0.1 %
    assert protection.judge(Counts(sent=1000, complaints=1), LIMITS).level == "warning"  # 0.1 % reached
    assert protection.judge(Counts(sent=1000, complaints=3), LIMITS) == protection.Status(
        "paused", "complaint rate 0.30% (3 of 1000 sends) reached the pause threshold 0.30%")
    assert protection.judge(Counts(sent=80, refused=20, bounces=5), LIMITS).reason == (
        "bounce rate 5.00% (5 of 100 sends) reached the pause threshold 5.00%")
    assert protection.judge(Counts(sent=100, bounces=2), LIMITS).level == "warning"
    assert protection.judge(Counts(), LIMITS).reason == "0 sends, fewer than the 100 needed to judge"


@pytest.mark.parametrize(("table", "message"), [
    ({"complaint_pause": 1}, "unknown key 'complaint_pause'"),
    ({"bounce_warn_percent": -1}, "bounce_warn_percent must be a number >= 0"),
    ({"bounce_warn_percent": "2"}, "bounce_warn_percent must be a number >= 0"),
    ({"complaint_warn_percent": 0.5}, "complaint_warn_percent must not be above complaint_pause_percent"),
    ({"min_sample": 0}, "min_sample must be a whole number >= 1"),
    ({"window_days": 1.5}, "window_days must be a whole number >= 1"),
    ({"bounce_pause_percent": float("nan")}, "bounce_pause_percent must be a number >= 0"),
])
def test_bad_thresholds_are_named(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=r"sequencer\.toml: \[protection\]: " + message):
        protection.thresholds(Settings(protection=table, source="sequencer.toml"))


def test_a_complaint_spike_pauses_the_mailbox_defers_its_touches_and_resume_undoes_it(
        desk, session, engine, clock, smtp, tmp_path, monkeypatch) -> None:
    for email in ("dana@northwind.example", "li@other.example"):
        _due(session, clock, email)
    assert tick(session, clock, desk).outcomes == {"sent": 2}
    _complain(session, clock, session.exec(select(Touch).order_by(Touch.id)).first())

    assert housekeeping.run(session, clock.now(), desk.settings)[-1] == (
        f"paused mailbox {SAM}: complaint rate 50.00% (1 of 2 sends) reached the pause threshold 0.30%")

    box = session.exec(select(Mailbox).where(Mailbox.address == SAM)).one()
    assert (box.paused, box.paused_by, box.paused_at) == (True, "protection", clock.now())
    _due(session, clock, "kim@third.example")
    assert tick(session, clock, desk).outcomes == {"deferred": 1}
    enrollment = enrollment_of(session, "kim@third.example")
    assert (enrollment.state, enrollment.current_step) == ("active", 0)  # deferred, not dropped
    step = explain(session, "kim@third.example").stories[0].steps[0]
    assert "paused (complaint rate 50.00% (1 of 2 sends) reached the pause threshold 0.30% (protection" in step.detail

    monkeypatch.setenv("SEQUENCER_DATABASE_URL", desk.settings.database_url)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["mailboxes", "resume", SAM, "--by", "alex.manager@acme.example"])
    assert result.exit_code == 0, result.output
    assert f"{SAM} resumed by alex.manager@acme.example" in result.output

    session.expire_all()
    box = session.exec(select(Mailbox).where(Mailbox.address == SAM)).one()
    assert (box.paused, box.resumed_by) == (False, "alex.manager@acme.example")
    resumed = session.exec(select(Decision).where(Decision.kind == "resumed")).one()
    assert resumed.detail["by"] == "alex.manager@acme.example"
    assert protection.evaluate(session, box.resumed_at, desk.settings) == []  # counted afresh from the resume
    clock.advance(timedelta(hours=1))
    assert tick(session, clock, desk).outcomes == {"sent": 1}
    assert [m.rcpt_tos for m in smtp.messages][-1] == ["kim@third.example"]


def test_a_quiet_mailbox_is_not_paused(desk, session, clock) -> None:
    _due(session, clock, "dana@northwind.example")
    assert tick(session, clock, desk).outcomes == {"sent": 1}
    _complain(session, clock, session.exec(select(Touch)).one())

    assert protection.evaluate(session, clock.now(), desk.settings) == []  # one send: fewer than min_sample 2
    assert protection.mailbox_status(session, clock.now(), protection.thresholds(desk.settings),
                                     session.exec(select(Mailbox)).one()).level == "healthy"


def test_bounces_over_two_mailboxes_pause_the_domain(session, clock) -> None:
    version = report_support.sequence(session)
    boxes = [report_support.mailbox(session, address) for address in (SAM, JO)]
    for box in boxes:  # 60 sends each (fewer than 100: neither is judged alone), 4 bounces each
        touches = report_support.sent(session, box, clock.now() - timedelta(hours=1), 60, version=version)
        for touch in touches[:4]:
            report_support.bounce(session, touch, clock.now())
    settings = Settings()

    done = protection.evaluate(session, clock.now(), settings)

    assert done == ["paused domain outreach-acme.example: bounce rate 6.67% (8 of 120 sends) reached the pause "
                    "threshold 5.00%"]
    session.add(DomainCheck(domain="outreach-acme.example", status="pass", checked_at=clock.now(),
                            expires_at=clock.now() + timedelta(hours=1)))
    session.commit()
    assert sending_problem(session, clock.now(), settings, "outreach-acme.example").startswith(
        "sending domain outreach-acme.example paused: bounce rate 6.67%")
    protection.resume_domain(session, clock.now(), "outreach-acme.example", "alex")
    assert session.get(SendingDomainPause, "outreach-acme.example").resumed_by == "alex"
    assert sending_problem(session, clock.now(), settings, "outreach-acme.example") == ""
    assert protection.evaluate(session, clock.now(), settings) == []  # counted afresh from the resume
    with pytest.raises(ValueError, match=r"sending domain 'outreach-acme\.example' is not paused"):
        protection.resume_domain(session, clock.now(), "outreach-acme.example", "alex")


def test_resume_of_an_unknown_mailbox_is_refused(tmp_path: Path, monkeypatch, db_url) -> None:
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["mailboxes", "resume", "nobody@outreach-acme.example"])

    assert result.exit_code == 1
    assert "unknown mailbox 'nobody@outreach-acme.example'" in result.output


def test_a_paused_domain_defers_its_touches_even_without_dns_checks(desk, session, clock, smtp) -> None:
    session.add(SendingDomainPause(domain="outreach-acme.example", paused_by="protection",
                                   reason="bounce rate 6.67% (8 of 120 sends) reached the pause threshold 5.00%"))
    session.commit()
    _due(session, clock, "dana@northwind.example")

    assert tick(session, clock, desk).outcomes == {"deferred": 1}
    step = explain(session, "dana@northwind.example").stories[0].steps[0]
    assert "sending domain outreach-acme.example paused: bounce rate 6.67%" in step.detail
    assert enrollment_of(session, "dana@northwind.example").state == "active"

    protection.resume_domain(session, clock.now(), "outreach-acme.example", "alex")
    clock.advance(timedelta(hours=1))
    assert tick(session, clock, desk).outcomes == {"sent": 1}
    assert [m.rcpt_tos for m in smtp.messages] == [["dana@northwind.example"]]
