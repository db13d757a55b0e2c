"""The real ``sequencer`` command line on a tmp SQLite file and a tmp copy of templates/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from typer.testing import CliRunner, Result

from channels.tasks import Task
from sequencer.app.cli import app
from sequencer.app.wiring import build as build_runtime
from sequencer.core.clock import SimulatedClock
from sequencer.core.config import REPO_TEMPLATES, Settings
from sequencer.core.db import make_engine
from sequencer.core.db import session as new_session
from sequencer.core.models import Enrollment, Mailbox, Prospect, SequenceVersion, Signal
from sequencer.engine.tick import tick


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A tmp directory with templates/ copied in and the CLI pointed at a fresh database."""
    shutil.copytree(REPO_TEMPLATES, tmp_path / "templates")
    monkeypatch.chdir(tmp_path)  # no stray sequencer.toml is picked up
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SEQUENCER_TEMPLATES", str(tmp_path / "templates"))
    monkeypatch.setenv("COLUMNS", "400")  # rich must not fold long paths
    yield tmp_path


@pytest.fixture
def db(workspace: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{workspace / 'cli.db'}")
    yield engine
    engine.dispose()


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result.output


def rows(engine: Engine, model: type) -> list:
    with new_session(engine) as session:
        return list(session.exec(select(model)))


def demo_setup() -> None:
    ok("sequences", "load")
    ok("prospects", "import", "templates/demo/prospects.csv")


# --- sequences ------------------------------------------------------------------------


def test_sequences_check_ok(workspace: Path) -> None:
    output = ok("sequences", "check")

    assert "ok funding-round: 8 steps" in output
    assert "ok inbound-form: 4 steps" in output
    assert "ok job-change: 4 steps" in output


def test_sequences_check_broken_names_file_and_line(workspace: Path) -> None:
    path = workspace / "templates" / "sequences" / "job-change.yaml"
    path.write_text(path.read_text().replace("action: view", "action: stalk"))
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "action: stalk" in text)

    result = cli("sequences", "check")

    assert result.exit_code == 1
    assert f"{path}:{line}: unknown LinkedIn action 'stalk'" in result.output
    assert "1 problem(s) in" in result.output


def test_sequences_check_a_single_file(workspace: Path) -> None:
    output = ok("sequences", "check", "templates/sequences/inbound-form.yaml")

    assert "ok inbound-form" in output and "funding-round" not in output


def test_sequences_load_refuses_a_broken_set_and_stores_nothing(workspace: Path, db: Engine) -> None:
    (workspace / "templates" / "steps" / "funding" / "bump.txt.j2").write_text("Hi {{ prospect.first_name\n")

    result = cli("sequences", "load")

    assert result.exit_code == 1
    assert "bump.txt.j2:1: template syntax error" in result.output
    assert "no sequence was loaded" in result.output
    assert rows(db, SequenceVersion) == []


def test_sequences_load_then_list(workspace: Path) -> None:
    assert "funding-round v1: new version" in ok("sequences", "load")
    assert "funding-round v1: unchanged" in ok("sequences", "load")

    output = ok("sequences", "list")

    assert "job-change" in output and "form_fill" in output


# --- prospects and signals ------------------------------------------------------------


def test_prospects_import_with_a_bad_row_exits_1_but_stores_the_good_rows(workspace: Path, db: Engine) -> None:
    path = workspace / "people.csv"
    path.write_text("email,first_name,timezone\nann@example.com,Ann,Europe/Paris\nbob@,Bob,UTC\n"
                    "cy@example.com,Cy,UTC\n")

    result = cli("prospects", "import", str(path))

    assert result.exit_code == 1
    assert f"{path}:3: email: invalid email 'bob@'" in result.output
    assert "2 prospect(s) stored, 1 row(s) refused" in result.output
    assert sorted(p.email for p in rows(db, Prospect)) == ["ann@example.com", "cy@example.com"]


def test_signal_enrolls_the_matching_people_at_the_account(workspace: Path, db: Engine) -> None:
    demo_setup()

    output = ok("signal", "funding_round", "--domain", "northwind.example", "--data", "round=Series B")

    assert "2 enrolled, 0 woken, 1 not enrolled" in output
    assert "not enrolled: chris.park@northwind.example / funding-round: filters not met: title matches" in output
    [signal] = rows(db, Signal)
    assert (signal.payload, signal.source) == ({"round": "Series B"}, "cli")
    with new_session(db) as session:
        enrolled = session.exec(select(Prospect.email).join(Enrollment, Enrollment.prospect_id == Prospect.id))
        assert sorted(enrolled) == ["dana.reyes@northwind.example", "lee@northwind.example"]


def test_repeated_dedupe_key_is_a_duplicate(workspace: Path, db: Engine) -> None:
    demo_setup()
    args = ("signal", "funding_round", "--domain", "northwind.example", "--dedupe-key", "cb:northwind:b")
    ok(*args)

    output = ok(*args)

    assert "duplicate of signal #1 (dedupe key cb:northwind:b); ignored" in output
    assert len(rows(db, Signal)) == 1
    assert len(rows(db, Enrollment)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rumour", "--email", "a@example.com"), "type: unknown signal type 'rumour'"),
        (("form_fill",), "email or domain: a signal must name a prospect"),
        (("form_fill", "--email", "nobody"), "email: invalid email 'nobody'"),
        (("form_fill", "--email", "a@example.com", "--occurred-at", "soon"), "occurred_at: not an ISO 8601 time"),
        (("form_fill", "--email", "a@example.com", "--data", "oops"), "--data 'oops': expected KEY=VALUE"),
    ],
)
def test_bad_signal_exits_1_naming_the_field(workspace: Path, db: Engine, args: tuple, message: str) -> None:
    result = cli("signal", *args)

    assert result.exit_code == 1
    assert message in result.output
    assert rows(db, Signal) == []


def test_signals_import_reports_bad_lines(workspace: Path, db: Engine) -> None:
    demo_setup()
    path = workspace / "signals.jsonl"
    path.write_text('{"type": "form_fill", "email": "new@lead.example", "form": "demo-request"}\n'
                    '{"type": "gossip", "email": "x@lead.example"}\n')

    result = cli("signals", "import", str(path))

    assert result.exit_code == 1
    assert f"{path}:2: type: unknown signal type 'gossip'" in result.output
    assert "1 signal(s) stored, 0 duplicate(s), 1 refused; 1 enrollment(s) started" in result.output


# --- tasks and explain ----------------------------------------------------------------


def queue_first_task(db: Engine) -> Task:
    """Advance the job-change enrollment in simulated time until its LinkedIn task is queued."""
    with new_session(db) as session:
        enrollment = session.exec(select(Enrollment)).one()
        # At the moment it is due, not a minute after: a signal a minute before the window
        # closes is due inside it, and a minute later the step waits for the next day.
        clock = SimulatedClock(enrollment.next_due_at)
        tick(session, clock, build_runtime(Settings(secret_key="test-secret-0123456789abcdefghij"), None,
                                           check_domains=False))
        return session.exec(select(Task)).one()


def start_job_change() -> None:
    demo_setup()
    ok("signal", "job_change", "--email", "tom.okafor@helio.example", "--data", "previous_company=Northwind",
       "--data", "first_name=Tom", "--data", "timezone=Europe/London", "--data", "country=GB")


def test_tasks_list_and_done(workspace: Path, db: Engine) -> None:
    start_job_change()
    task = queue_first_task(db)

    listed = ok("tasks", "list")
    done = ok("tasks", "done", str(task.id), "--outcome", "no_answer", "--note", "left no message")

    assert "LinkedIn view: Tom" in listed and "tom.okafor@helio.example" in listed
    assert f"task #{task.id} closed (no_answer); enrollment advanced" in done
    assert "tom.okafor" not in ok("tasks", "list")
    [closed] = rows(db, Task)
    assert (closed.state, closed.outcome, closed.note) == ("done", "no_answer", "left no message")


def test_tasks_done_with_unknown_outcome_or_task(workspace: Path, db: Engine) -> None:
    start_job_change()
    task = queue_first_task(db)

    unknown_outcome = cli("tasks", "done", str(task.id), "--outcome", "maybe")
    unknown_task = cli("tasks", "done", "999", "--outcome", "done")

    assert unknown_outcome.exit_code == 1
    assert "unknown outcome 'maybe' (known: connected, voicemail, no_answer" in unknown_outcome.output
    assert unknown_task.exit_code == 1
    assert "no task 999" in unknown_task.output
    assert rows(db, Task)[0].state == "open"


def test_explain_shows_the_enrollment_and_the_decisions(workspace: Path, db: Engine) -> None:
    start_job_change()
    task = queue_first_task(db)
    ok("tasks", "done", str(task.id), "--outcome", "done")

    output = ok("explain", "Tom.Okafor@helio.example")

    assert "tom.okafor@helio.example Tom" in output and "times in Europe/London" in output
    assert "prospect_created: from job_change signal" in output
    assert "job-change v1 - active" in output
    assert "view-profile" in output and "queued" in output
    assert "enrolled: job_change signal" in output
    assert f"queued: linkedin task #{task.id}" in output
    assert f"task_done: linkedin task #{task.id}: done" in output


def test_explain_shows_why_someone_was_not_enrolled(workspace: Path) -> None:
    demo_setup()
    ok("signal", "funding_round", "--domain", "northwind.example")

    output = ok("explain", "chris.park@northwind.example", "--tz", "UTC")

    assert "not_enrolled: filters not met: title matches" in output
    assert "(was 'Software Engineer')" in output
    assert "not enrolled in any sequence" in output


def test_explain_unknown_prospect_or_zone(workspace: Path) -> None:
    demo_setup()

    unknown = cli("explain", "ghost@example.com")
    bad_zone = cli("explain", "chris.park@northwind.example", "--tz", "Moon/Base")

    assert unknown.exit_code == 1 and "no prospect 'ghost@example.com'" in unknown.output
    assert bad_zone.exit_code == 1 and "--tz: unknown time zone 'Moon/Base'" in bad_zone.output


# --- mailboxes ------------------------------------------------------------------------


def test_mailboxes_add_list_pause_resume(workspace: Path, db: Engine) -> None:
    added = ok("mailboxes", "add", "Sam@Outreach-Acme.example", "--display-name", "Sam Rivera",
               "--owner", "sam.sdr@acme.example", "--daily-cap", "40")
    ok("mailboxes", "add", "jo@outreach-acme.example")

    listed = ok("mailboxes", "list")
    paused = ok("mailboxes", "pause", "sam@outreach-acme.example", "--reason", "warming up")
    listed_paused = ok("mailboxes", "list")
    with new_session(db) as session:
        sam = session.exec(select(Mailbox).where(Mailbox.address == "sam@outreach-acme.example")).one()
        assert (sam.paused, sam.pause_reason, sam.daily_cap) == (True, "warming up", 40)
    resumed = ok("mailboxes", "resume", "sam@outreach-acme.example")

    assert "mailbox sam@outreach-acme.example saved (domain outreach-acme.example)" in added
    assert "sam@outreach-acme.example" in listed and "jo@outreach-acme.example" in listed
    assert "paused" not in listed
    assert "sam@outreach-acme.example paused" in paused
    assert "paused: warming up" in listed_paused
    assert "sam@outreach-acme.example resumed" in resumed
    sam = next(m for m in rows(db, Mailbox) if m.address == "sam@outreach-acme.example")
    assert (sam.paused, sam.pause_reason) == (False, "")


def test_mailboxes_refuse_unknown_and_bad_input(workspace: Path, db: Engine) -> None:
    unknown = cli("mailboxes", "pause", "nobody@outreach-acme.example")
    bad_address = cli("mailboxes", "add", "not-an-address")
    bad_security = cli("mailboxes", "add", "x@outreach-acme.example", "--smtp-security", "tls13")

    assert unknown.exit_code == 1
    assert "unknown mailbox 'nobody@outreach-acme.example'" in unknown.output
    assert bad_address.exit_code == 1 and "address: invalid email 'not-an-address'" in bad_address.output
    assert bad_security.exit_code == 1 and "smtp_security must be none, starttls or ssl" in bad_security.output
    assert rows(db, Mailbox) == []

