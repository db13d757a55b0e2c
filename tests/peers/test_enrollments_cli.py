"""Launching and steering by hand: ``sequencer enroll`` and ``sequencer enrollments``, and an
enrollment paused for "needs attention" that goes on once the SDR fixes the data and resumes it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import SEQUENCE, TEMPLATES, add_prospect, enrollment_of, fire, prepare, write_templates
from sqlmodel import select
from test_cli import cli, ok

from channels.email import SmtpSender
from sequencer.app.wiring import build as build_runtime
from sequencer.core.config import REPO_TEMPLATES
from sequencer.core.db import make_engine
from sequencer.core.db import session as new_session
from sequencer.core.models import Decision, Enrollment, Touch
from sequencer.engine.tick import tick
from sequencer.enrollments import steering
from sequencer.intake.prospects import upsert_prospect

DANA = "dana.reyes@northwind.example"  # VP Sales: passes funding-round's filters
CHRIS = "chris.park@northwind.example"  # Software Engineer: does not


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    shutil.copytree(REPO_TEMPLATES, tmp_path / "templates")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SEQUENCER_TEMPLATES", str(tmp_path / "templates"))
    monkeypatch.setenv("COLUMNS", "400")
    ok("sequences", "load")
    ok("prospects", "import", "templates/demo/prospects.csv")
    yield tmp_path


def listed(*args: str) -> list[dict]:
    return json.loads(ok("enrollments", "list", "--json", *args))


def test_enroll_applies_the_trigger_filters(workspace: Path) -> None:
    result = cli("enroll", "funding-round", "--email", DANA, "--email", CHRIS)

    assert result.exit_code == 0, result.output
    assert f"enrolled {DANA} in funding-round v1" in result.output
    assert f"refused {CHRIS}: filters not met: title matches" in result.output
    assert [(e["prospect"], e["sequence"], e["state"]) for e in listed()] == [(DANA, "funding-round", "active")]


def test_force_needs_a_reason_and_records_it(workspace: Path) -> None:
    assert cli("enroll", "funding-round", "--email", CHRIS, "--force").exit_code == 1

    output = ok("enroll", "funding-round", "--email", CHRIS, "--force", "--reason", "asked for a demo at the booth")

    assert "forced past: filters not met" in output
    engine = make_engine(f"sqlite:///{workspace / 'cli.db'}")
    with new_session(engine) as session:
        launched = session.exec(select(Decision).where(Decision.kind == "launched")).one()
    engine.dispose()
    assert launched.detail["why"] == "asked for a demo at the booth" and "forced past" in launched.reason


def test_one_sequence_at_a_time_and_unknown_names(workspace: Path) -> None:
    ok("enroll", "funding-round", "--email", DANA)

    again = cli("enroll", "job-change", "--email", DANA)
    unknown = cli("enroll", "funding-rounds", "--email", DANA)
    nobody = cli("enroll", "funding-round", "--email", "who@nowhere.example")

    assert again.exit_code == 1 and "already in funding-round (one active sequence per prospect" in again.output
    assert unknown.exit_code == 1 and "no sequence 'funding-rounds' (known: " in unknown.output
    assert nobody.exit_code == 1 and "not a prospect" in nobody.output


def test_enroll_from_a_file(workspace: Path) -> None:
    launch = workspace / "launch.csv"
    launch.write_text(f"Name,email\nDana,{DANA}\nMarkus,markus.becker@lumen.example\n")

    output = ok("enroll", "funding-round", "--file", str(launch))

    assert "2 enrolled, 0 refused" in output


def test_pause_resume_stop_by_email_and_id(workspace: Path) -> None:
    ok("enroll", "funding-round", "--email", DANA)
    (enrollment,) = listed()

    assert "paused" in ok("enrollments", "pause", DANA, "--reason", "on holiday")
    assert listed("--state", "paused")[0]["reason"] == "paused by hand: on holiday"
    assert cli("enrollments", "pause", DANA).exit_code == 1  # nothing active left to pause
    assert "active" in ok("enrollments", "resume", str(enrollment["id"]))
    assert "stopped" in ok("enrollments", "stop", f"#{enrollment['id']}", "--reason", "wrong persona")
    assert listed("--sequence", "funding-round")[0]["state"] == "stopped"
    assert "is already stopped" in cli("enrollments", "stop", str(enrollment["id"])).output
    assert "no enrollment #999" in cli("enrollments", "stop", "999").output


# --- needs attention -> fixed -> resumed ------------------------------------------------


def test_a_needs_attention_pause_goes_on_once_the_data_is_fixed(session, clock, settings, smtp, tmp_path) -> None:
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates", SEQUENCE, TEMPLATES))
    add_prospect(session, clock.now(), "sam@northwind.example", first_name="")
    fire(session, clock.now(), "intent_surge", email="sam@northwind.example", score=80)
    sender = SmtpSender(timeout=5)
    runtime = build_runtime(settings, sender, check_domains=False)
    try:
        tick(session, clock, runtime)
        paused = enrollment_of(session, "sam@northwind.example")
        assert paused.state == "paused" and paused.reason.startswith("needs attention: ")
        assert "prospect.first_name" in paused.reason and smtp.messages == []

        upsert_prospect(session, clock.now(), "sam@northwind.example", {"first_name": "Sam"})  # the SDR's fix
        steering.resume(session, clock.now(), paused, "first name added")
        session.commit()
        tick(session, clock, runtime)
    finally:
        sender.close()

    resumed = enrollment_of(session, "sam@northwind.example")
    touch = session.exec(select(Touch).where(Touch.enrollment_id == resumed.id)).one()
    assert (resumed.state, touch.state) == ("active", "sent")
    assert len(smtp.messages) == 1 and b"Subject: Hello Sam" in smtp.messages[0].content
    assert session.exec(select(Enrollment)).one().current_step == 1


def test_rules_explain_dry_runs_on_a_prospect_and_changes_nothing(workspace: Path) -> None:
    ok("enroll", "funding-round", "--email", DANA)

    output = ok("rules", "explain", "reply.negative", "--prospect", DANA)

    assert "reply.negative: rule builtin.reply.negative" in output
    assert "1. stop_prospect: stop every active or paused enrollment of the prospect" in output
    assert "- stopped enrollment #1 (funding-round)" in output and "(nothing was changed)" in output
    assert listed()[0]["state"] == "active"
