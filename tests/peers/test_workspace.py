"""An SDR's own workspace through the real command line: init, their templates folder, custom
signal types, checked template variables, upgrades of running enrollments, and the sandbox.

Each test starts in an empty folder with ``sequencer init`` (no SEQUENCER_* variables), as a
new SDR would, on the SQLite file init's sequencer.toml points at.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select
from typer.testing import CliRunner, Result

from sequencer.app.cli import app
from sequencer.app.wiring import build as build_runtime
from sequencer.core.clock import SimulatedClock
from sequencer.core.config import REPO_TEMPLATES, load_settings
from sequencer.core.db import make_engine
from sequencer.core.db import session as new_session
from sequencer.core.models import Decision, Enrollment, SequenceVersion, Touch
from sequencer.engine.tick import tick
from sequencer.sending import mailboxes
from sequencer.sequences import schedule

SEQUENCE = Path("templates/sequences/webinar-follow-up.yaml")
BUMP = Path("templates/steps/webinar/bump.txt.j2")
THANKS = Path("templates/steps/webinar/thanks.txt.j2")


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> Result:
    result = cli(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return result


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty folder made a workspace by ``sequencer init``."""
    for name in ("SEQUENCER_CONFIG", "SEQUENCER_TEMPLATES", "SEQUENCER_DATABASE_URL", "SEQUENCER_SECRET_KEY",
                 "SEQUENCER_SANDBOX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "400")  # rich must not fold long paths
    monkeypatch.chdir(tmp_path)
    ok("init")
    yield tmp_path


def signal(email: str, first_name: str, kind: str = "webinar_attended") -> Result:
    return cli("signal", kind, "--email", email, "--data", f"first_name={first_name}", "--data", "title=VP Sales",
               "--data", "timezone=America/New_York", "--data", "country=US")


def enrollments(workspace: Path) -> list[tuple[Enrollment, SequenceVersion]]:
    engine = make_engine(f"sqlite:///{workspace / 'sequencer.db'}")
    with new_session(engine) as session:
        found = list(session.exec(select(Enrollment, SequenceVersion).join(
            SequenceVersion, SequenceVersion.id == Enrollment.sequence_version_id).order_by(Enrollment.id)))
    engine.dispose()
    return found


# --- which folder ----------------------------------------------------------------------


def test_init_writes_a_starter_that_checks_and_every_command_says_which_folder_it_read(workspace: Path) -> None:
    result = ok("sequences", "check")

    assert (workspace / "templates" / "signals.yaml").is_file()
    assert f"templates: {workspace / 'templates'} (./templates)" in flat(result.stderr)
    assert "ok webinar-follow-up: 5 steps (email, wait, call, wait, email)" in result.stdout
    assert not (workspace / "sequencer.db").exists()  # a check in a fresh folder creates no database


def test_templates_option_and_setting_come_before_the_local_folder(workspace: Path) -> None:
    by_option = ok("sequences", "check", "--templates", str(REPO_TEMPLATES))
    config = workspace / "sequencer.toml"
    config.write_text(f'templates_dir = "{REPO_TEMPLATES}"\n' + config.read_text())
    by_setting = ok("sequences", "check")

    assert f"templates: {REPO_TEMPLATES} (--templates)" in flat(by_option.stderr)
    assert "ok funding-round" in by_option.stdout and "webinar" not in by_option.stdout
    assert f"templates: {REPO_TEMPLATES} (templates_dir in sequencer.toml)" in flat(by_setting.stderr)


def test_the_shipped_examples_are_read_only_when_no_folder_exists(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQUENCER_TEMPLATES", raising=False)
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = ok("sequences", "check")

    assert f"templates: {REPO_TEMPLATES} (the shipped examples)" in flat(result.stderr)


def test_init_keeps_an_existing_templates_folder_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "mine.txt").write_text("keep me")

    result = ok("init")
    again = cli("init")

    assert f"{tmp_path / 'templates'} already exists; not overwriting it" in flat(result.stderr)
    assert (tmp_path / "sequencer.toml").is_file()
    assert sorted(p.name for p in (tmp_path / "templates").iterdir()) == ["mine.txt"]
    assert again.exit_code == 1
    assert "nothing to write" in flat(again.stderr)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".templates-")]


# --- custom signal types ---------------------------------------------------------------


def test_an_undeclared_signal_type_is_a_file_line_error_listing_the_declared_ones(workspace: Path) -> None:
    (workspace / "templates" / "signals.yaml").write_text("types:\n  - pricing_page\n")
    line = next(n for n, text in enumerate(SEQUENCE.read_text().splitlines(), 1) if "signals:" in text)

    result = cli("sequences", "check")

    assert result.exit_code == 1
    assert (f"{SEQUENCE.resolve()}:{line}: unknown signal type 'webinar_attended' (known: event_attended, "
            in flat(result.stdout))
    assert "; declared: pricing_page;" in flat(result.stdout)


def test_signal_types_declared_in_sequencer_toml_are_known_to_check_and_to_intake(workspace: Path) -> None:
    (workspace / "templates" / "signals.yaml").unlink()
    with (workspace / "sequencer.toml").open("a") as handle:
        handle.write('\n[signals]\ntypes = ["webinar_attended", "pricing_page"]\n')
    (workspace / "signals.jsonl").write_text(
        '{"type": "pricing_page", "email": "ann@northwind.example"}\n'
        '{"type": "pricing_pages", "email": "bob@northwind.example"}\n'
    )
    ok("sequences", "load")

    imported = cli("signals", "import", "signals.jsonl")

    assert imported.exit_code == 1  # one line refused
    assert "1 signal(s) stored" in flat(imported.stdout)
    assert "signals.jsonl:2: type: unknown signal type 'pricing_pages'" in flat(imported.stdout)
    assert "declared: pricing_page, webinar_attended" in flat(imported.stdout)
    assert signal("cy@northwind.example", "Cy").exit_code == 0


def test_a_malformed_signals_file_is_a_file_line_error(workspace: Path) -> None:
    (workspace / "templates" / "signals.yaml").write_text("types:\n  - ok_type\n  - Not A Name\n")

    result = cli("sequences", "check")

    assert result.exit_code == 1
    assert f"{workspace / 'templates' / 'signals.yaml'}:3: bad signal type 'Not A Name'" in flat(result.stdout)


# --- template variables ------------------------------------------------------------------


def test_a_misspelt_variable_is_a_file_line_error_with_the_closest_name(workspace: Path) -> None:
    THANKS.write_text(THANKS.read_text().replace("Hi {{ prospect.first_name }}", "Hi {{ prospect.frist_name }}"))
    BUMP.write_text(BUMP.read_text() + "\n{{ sender.nme }}\n")
    bump_line = len(BUMP.read_text().splitlines())

    result = cli("sequences", "check")
    output = flat(result.stdout)

    assert result.exit_code == 1
    assert (f"{THANKS.resolve()}:1: unknown field prospect.frist_name (did you mean first_name?)") in output
    assert f"{BUMP.resolve()}:{bump_line}: unknown field sender.nme (did you mean name?)" in output
    assert "refusing" not in output and "no sequence was loaded" in flat(cli("sequences", "load").stderr)


def test_custom_fields_are_known_when_declared_or_present_in_imported_data(workspace: Path) -> None:
    BUMP.write_text(BUMP.read_text() + "\nP.S. {{ prospect.tier }} {{ prospect.webinar_count }}\n")
    refused = cli("sequences", "check")
    with (workspace / "sequencer.toml").open("a") as handle:
        handle.write('\n[prospects]\ncustom_fields = ["tier"]\n')
    still = cli("sequences", "check")
    ok("signal", "manual", "--email", "dee@northwind.example", "--data", "webinar_count=2")

    accepted = cli("sequences", "check")

    assert refused.exit_code == 1 and "unknown field prospect.tier" in flat(refused.stdout)
    assert still.exit_code == 1 and "prospect.tier" not in flat(still.stdout)
    assert "unknown field prospect.webinar_count" in flat(still.stdout)
    assert accepted.exit_code == 0, accepted.stdout


# --- upgrades of running enrollments ----------------------------------------------------


def test_load_upgrade_running_moves_enrollments_whose_steps_line_up_and_names_the_others(workspace: Path) -> None:
    ok("sequences", "load")
    assert signal("ann@northwind.example", "Ann").exit_code == 0
    assert signal("bob@brightside.example", "Bob").exit_code == 0
    BUMP.write_text(BUMP.read_text().replace("Just bringing", "Only bringing"))

    kept_by_default = ok("sequences", "load")
    on_v2 = [version.version for _, version in enrollments(workspace)]
    upgraded = ok("sequences", "load", "--upgrade", "running")
    after = enrollments(workspace)
    SEQUENCE.write_text(SEQUENCE.read_text().replace("id: thanks", "id: hello"))
    refused = ok("sequences", "load", "--upgrade", "running")

    assert "webinar-follow-up v2: new version" in kept_by_default.stdout
    assert on_v2 == [1, 1]  # a plain load leaves running enrollments on their version
    assert "webinar-follow-up v2: unchanged" in upgraded.stdout
    assert [version.version for _, version in after] == [2, 2]
    assert "upgraded enrollment" in upgraded.stdout and "ann@northwind.example" in upgraded.stdout
    assert "2 running enrollment(s) upgraded, 0 kept on their version" in flat(upgraded.stdout)
    assert "not moved enrollment" in flat(refused.stdout)
    assert "step 1 is 'thanks' in its version and 'hello' in the new one" in flat(refused.stdout)
    assert "0 running enrollment(s) upgraded, 2 kept on their version" in flat(refused.stdout)
    assert [version.version for _, version in enrollments(workspace)] == [2, 2]
    engine = make_engine(f"sqlite:///{workspace / 'sequencer.db'}")
    with new_session(engine) as session:
        moves = list(session.exec(select(Decision).where(Decision.kind == "upgraded")))
    engine.dispose()
    assert len(moves) == 2 and "at step 1" in moves[0].reason


def test_a_bad_upgrade_choice_is_refused(workspace: Path) -> None:
    result = cli("sequences", "load", "--upgrade", "everything")

    assert result.exit_code == 1
    assert "--upgrade: 'everything' is not one of running" in flat(result.stderr)


# --- the sandbox -----------------------------------------------------------------------


MAILBOX = """
[[mailboxes]]
address = "sam@outreach-acme.example"
display_name = "Sam Rivera"
owner = "sam.sdr@acme.example"
smtp_host = "smtp.invalid"
daily_cap = 40
"""


def test_the_sandbox_delivers_into_a_maildir_and_skips_nothing_else(workspace: Path) -> None:
    config = workspace / "sequencer.toml"
    config.write_text("recipient_domain_daily_cap = 1\n" + config.read_text() + MAILBOX)
    ok("sequences", "load")
    for email, name in (("ann@northwind.example", "Ann"), ("bob@northwind.example", "Bob")):
        assert signal(email, name).exit_code == 0
    settings = load_settings()
    settings.sandbox = True
    engine = make_engine(settings.database_url)
    with new_session(engine) as session:
        first_due = max(e.next_due_at for e in session.exec(select(Enrollment)))
        mailboxes.sync_from_settings(session, settings, first_due.date())
        start = first_due.astimezone(ZoneInfo("America/New_York")).replace(hour=10, minute=0) + timedelta(days=7)
        when = schedule.next_open(start, schedule.Window.parse({"days": "mon-fri", "start": "08:00", "end": "17:00"}),
                                  "America/New_York", "US")
        runtime = build_runtime(settings)  # no domain checks: smtp.invalid and outreach-acme.example have no DNS
        tick(session, SimulatedClock(when), runtime)
        touches = list(session.exec(select(Touch)))
        waiting = session.exec(select(Enrollment).where(Enrollment.current_step == 0)).all()
    engine.dispose()

    box = mailbox.Maildir(workspace / "outbox", create=False)
    messages = list(box)
    assert len(messages) == 1  # the second one waits for the recipient company's cap, as it would for real
    message = messages[0]
    assert message["X-Sequencer-Sandbox"] == "1"
    assert message["Subject"] in ("Our webinar: the slides, Ann", "Our webinar: the slides, Bob")
    assert message["From"] == "Sam Rivera <sam@outreach-acme.example>"
    assert message["List-Unsubscribe"]
    assert [t.state for t in touches] == ["sent"] and touches[0].message_id in message["Message-ID"]
    assert len(waiting) == 1
