# ruff: noqa: F811 - the imported db fixture is meant to be shadowed by test arguments
"""The small things a newcomer tripped on (#15): explain's tasks, zone and step numbers;
mailboxes at 80 columns; --json on the list and show commands; possessives in templates."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from test_cli import cli, db, ok  # noqa: F401 - db is a fixture, on this file's workspace

from channels.tasks import Task
from sequencer.app.wiring import build as build_runtime
from sequencer.core.clock import SimulatedClock
from sequencer.core.config import REPO_TEMPLATES, Settings
from sequencer.core.db import session as new_session
from sequencer.core.models import Enrollment
from sequencer.engine.tick import tick

TOM = "tom.okafor@helio.example"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    shutil.copytree(REPO_TEMPLATES, tmp_path / "templates")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SEQUENCER_TEMPLATES", str(tmp_path / "templates"))
    monkeypatch.setenv("COLUMNS", "200")
    yield tmp_path


def work_the_job_change_to_its_end(db: Engine) -> None:
    """Tom's job-change sequence (two LinkedIn tasks, a wait, a manual email), every task done."""
    ok("sequences", "load")
    ok("signal", "job_change", "--email", TOM, "--data", "previous_company=Northwind", "--data", "first_name=Tom",
       "--data", "last_name=Okafor", "--data", "timezone=Europe/London", "--data", "country=GB")
    runtime = build_runtime(Settings(secret_key="test-secret-0123456789abcdefghij"), None, check_domains=False)
    for _ in range(8):
        with new_session(db) as session:
            enrollment = session.exec(select(Enrollment)).one()
            if enrollment.state != "active":
                return
            if enrollment.next_due_at is not None:
                tick(session, SimulatedClock(enrollment.next_due_at), runtime)  # when due: inside the window
            tasks = session.exec(select(Task).where(Task.state == "open")).all()
        for task in tasks:
            ok("tasks", "done", str(task.id), "--outcome", "done")
    raise AssertionError("the sequence did not end")


def test_explain_shows_done_tasks_by_their_title_in_one_zone_and_no_step_past_the_end(
        workspace: Path, db: Engine) -> None:
    work_the_job_change_to_its_end(db)

    output = ok("explain", TOM)

    assert "times in Europe/London (the prospect's)" in output
    rows = {line.split("│")[2].strip(): line for line in output.splitlines() if line.count("│") >= 6}
    assert list(rows) == ["view-profile", "congrats", "step-3", "personal-note"], rows
    for step in ("view-profile", "congrats", "personal-note"):
        assert re.search(r"│ done\s+│ \d{4}-\d\d-\d\d \d\d:\d\d\s+│ task #\d+: ", rows[step]), rows[step]
    assert "Write to Tom Okafor <tom.okafor@helio.example> (done)" in rows["personal-note"]
    assert "Congrats on the move" not in rows["personal-note"]  # the email subject is not the task's text
    assert "LinkedIn view: Tom Okafor (done)" in rows["view-profile"]
    assert not re.search(r"\b(UTC|GMT|BST|CET|EST)\b", output.split("\n", 1)[1])  # one zone, named once
    assert "job-change v1 - finished" in output
    assert not re.search(r"step 5\b", output)  # 4 steps: the end is not a step of its own
    assert re.search(r"\d\d:\d\d {2}\s{8} finished", output), output


def test_explain_as_json(workspace: Path, db: Engine) -> None:
    work_the_job_change_to_its_end(db)

    data = json.loads(ok("explain", TOM, "--json"))

    [enrollment] = data["enrollments"]
    assert enrollment["state"] == "finished"
    assert [step["status"] for step in enrollment["steps"]] == ["done", "done", "done", "done"]
    assert enrollment["steps"][0]["detail"].endswith("LinkedIn view: Tom Okafor (done)")
    assert enrollment["steps"][0]["at"].endswith("+00:00")


def test_mailboxes_list_fits_80_columns(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok("mailboxes", "add", "samantha.rivera-longname@outreach-acme-international.example", "--owner",
       "samantha.rivera@acme-international.example", "--warmup-start", "5", "--warmup-increment", "5")
    ok("mailboxes", "add", "jo@outreach-acme.example", "--owner", "jo.sdr@acme.example")
    ok("mailboxes", "pause", "jo@outreach-acme.example", "--reason",
       "complaint rate 0.50% (2 of 400 sends) reached the pause threshold 0.30% over the last 7 days")
    monkeypatch.setenv("COLUMNS", "80")

    output = ok("mailboxes", "list")

    lines = output.splitlines()
    assert lines and max(len(line) for line in lines) <= 80, output
    assert lines[0].split() == ["address", "owner", "today", "state"]
    assert "jo@outreach-acme." in output and "paused:" in output and "warm-up day" in output
    assert "…" not in output and "days" in output  # long cells fold, never cut


def test_mailboxes_list_as_json(workspace: Path) -> None:
    ok("mailboxes", "add", "sam@outreach-acme.example", "--owner", "sam.sdr@acme.example", "--daily-cap", "40")

    [box] = json.loads(ok("mailboxes", "list", "--json"))

    assert (box["address"], box["owner"], box["sent_today"], box["cap_today"], box["state"]) == (
        "sam@outreach-acme.example", "sam.sdr@acme.example", 0, 40, "active")


def test_sequences_and_api_keys_list_as_json(workspace: Path) -> None:
    ok("sequences", "load")
    ok("api-keys", "create", "--name", "zapier", "--scope", "signals")

    sequences = json.loads(ok("sequences", "list", "--json"))
    keys = json.loads(ok("api-keys", "list", "--json"))

    assert {s["name"]: s["steps"] for s in sequences} == {"funding-round": 8, "inbound-form": 4, "job-change": 4}
    assert [(k["name"], k["scopes"], k["revoked_at"]) for k in keys] == [("zapier", ["signals"], None)]
    assert "key_hash" not in keys[0] and "hash" not in json.dumps(keys)


def test_meetings_show_as_json(workspace: Path) -> None:
    ok("sequences", "load")
    ok("prospects", "import", "templates/demo/prospects.csv")
    ok("meetings", "book", "dana.reyes@northwind.example", "--ae", "alex.ae@acme.example",
       "--start", "2026-12-07T15:00:00Z")
    [meeting] = json.loads(ok("meetings", "list", "--json"))

    shown = json.loads(ok("meetings", "show", str(meeting["id"]), "--json"))

    assert (shown["id"], shown["prospect_email"], shown["ae"]) == (meeting["id"], "dana.reyes@northwind.example",
                                                                   "alex.ae@acme.example")
    assert shown["start_at"].startswith("2026-12-07T15:00") and shown["history"][0]["kind"]
