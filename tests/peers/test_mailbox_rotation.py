"""Mailbox rotation, stickiness and pause; the ``mailboxes`` CLI and config section.

A sequence sends from a pool: a first email takes the mailbox with the most room, a
thread stays on its mailbox, and when no mailbox can send the touch is deferred with
every mailbox's reason. Pausing defers, resuming lets the touch go; nothing is dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from engine_support import (
    add_prospect,
    enrollment_of,
    fire,
    pooled_sequence,
    prepare,
    write_templates,
)
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from channels.email import SmtpSender
from sequencer.app.cli import app
from sequencer.app.wiring import build as build_runtime
from sequencer.core.config import Settings, load_settings
from sequencer.core.db import make_engine, migrate
from sequencer.core.db import session as new_session
from sequencer.core.models import Decision, Mailbox
from sequencer.engine.runtime import Runtime
from sequencer.engine.tick import tick
from sequencer.sending import caps, mailboxes

SAM = "sam@outreach-acme.example"
JO = "jo@outreach-acme.example"
MAX = "max@outreach-beta.example"


def _box(smtp, address: str, **fields: object) -> dict:
    return {"address": address, "display_name": address.split("@")[0].title(), "smtp_host": smtp.host,
            "smtp_port": smtp.port, **fields}


def _mailbox(session: Session, address: str) -> Mailbox:
    return session.exec(select(Mailbox).where(Mailbox.address == address)).one()


def _fill(session: Session, settings: Settings, mailbox: Mailbox, now: datetime, sends: int) -> None:
    """Count ``sends`` emails against the mailbox today, as if they had gone to other companies."""
    for i in range(sends):
        assert caps.reserve(session, caps.caps_for(settings, mailbox, f"elsewhere{i}.example", now)) is None
    session.commit()


def _deferrals(session: Session) -> list[Decision]:
    session.expire_all()
    return list(session.exec(select(Decision).where(Decision.kind == "deferred").order_by(Decision.id)))


def _senders(smtp) -> list[str]:
    return [message_from_bytes(m.content, policy=policy.default)["From"].addresses[0].addr_spec
            for m in smtp.messages]


# --- choose: the pick itself (plain queries, so SQLite only) --------------------------------------


@pytest.fixture
def lite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def lite(lite_engine: Engine) -> Iterator[Session]:
    with new_session(lite_engine) as session:
        yield session


@pytest.fixture
def pool(lite: Session, clock) -> list[Mailbox]:
    boxes = [mailboxes.upsert(lite, {"address": a, "daily_cap": 40}, clock.now().date()) for a in (SAM, JO)]
    lite.commit()
    return boxes


def _choose(session: Session, clock, candidates: list[Mailbox], problem: str = "") -> tuple[Mailbox | None, list[str]]:
    choice = mailboxes.choose(session, clock.now(), Settings(), candidates, "northwind.example", lambda _: problem)
    return choice.mailbox, choice.reasons


def test_choose_takes_the_mailbox_with_the_most_room_not_the_fewest_sends(lite, clock, pool):
    sam, jo = pool
    jo.warmup_start, jo.warmup_increment, jo.warmup_started_on = 5, 5, clock.now().date()  # 5/day today
    lite.commit()
    _fill(lite, Settings(), sam, clock.now(), 3)  # 37 left of 40
    _fill(lite, Settings(), jo, clock.now(), 2)  # 3 left of 5

    chosen, reasons = _choose(lite, clock, [sam, jo])

    assert (chosen, reasons) == (sam, [])


def test_choose_counts_sends_made_since_it_last_looked(lite, clock, pool):
    sam, jo = pool
    _fill(lite, Settings(), sam, clock.now(), 1)
    _fill(lite, Settings(), jo, clock.now(), 1)
    assert _choose(lite, clock, [sam, jo])[0] == sam

    _fill(lite, Settings(), sam, clock.now(), 2)  # sam has sent 3, jo 1

    assert _choose(lite, clock, [sam, jo])[0] == jo


def test_choose_sees_a_pause_made_from_another_connection(lite, lite_engine, clock, pool):
    sam = pool[0]
    assert _choose(lite, clock, [sam])[0] == sam

    with new_session(lite_engine) as cli_session:  # what `sequencer mailboxes pause` does
        mailboxes.set_paused(cli_session, SAM, True, "spam complaints")
    chosen, reasons = _choose(lite, clock, [sam])

    assert (chosen, reasons) == (None, [f"{SAM}: paused (spam complaints)"])


def test_choose_gives_every_mailboxs_reason_when_none_can_send(lite, clock, pool):
    sam, jo = pool
    sam.daily_cap = 1
    lite.commit()
    _fill(lite, Settings(), sam, clock.now(), 1)
    mailboxes.set_paused(lite, JO, True)

    chosen, reasons = _choose(lite, clock, [sam, jo])

    assert chosen is None
    assert sorted(reasons) == [f"{JO}: paused (by hand)", f"{SAM}: mailbox {SAM} daily cap (1/day) reached"]
    assert _choose(lite, clock, [])[1] == [
        "no mailbox configured for this sequence (add one with `sequencer mailboxes add`)"
    ]


# --- the engine: rotation over a pool, stickiness, pause -----------------------------------------


@pytest.fixture
def desk(tmp_path, session, clock, smtp, settings):
    """Set up the two-email sequence sending from ``pool``; returns the engine's Runtime."""
    senders = []

    def start(pool: list[str], boxes: list[dict], domain_problem=None) -> Runtime:
        configured = replace(settings, mailboxes=boxes)
        root = write_templates(tmp_path / "templates", pooled_sequence(pool, follow_up=True))
        prepare(session, clock.now(), configured, root)
        senders.append(SmtpSender(timeout=5))
        runtime = build_runtime(configured, senders[-1], check_domains=False)
        if domain_problem:
            runtime = dataclasses.replace(runtime, domain_problem=domain_problem)
        return runtime

    yield start
    for sender in senders:
        sender.close()


def _due(session: Session, clock, emails: list[str]) -> None:
    for email in emails:
        add_prospect(session, clock.now(), email)
        fire(session, clock.now(), "intent_surge", email=email, score=80)


WEDNESDAY = timedelta(days=2)  # two business days after the first emails: the follow-ups are due


def test_first_emails_rotate_over_the_pool(desk, session, clock, smtp):
    runtime = desk([SAM, JO], [_box(smtp, SAM), _box(smtp, JO)])
    _due(session, clock, [f"p{i}@company{i}.example" for i in range(6)])

    assert tick(session, clock, runtime).outcomes == {"sent": 6}

    assert sorted(_senders(smtp)) == [JO] * 3 + [SAM] * 3


def test_the_minimum_gap_lets_one_email_of_a_batch_go_and_defers_the_next_by_the_gap(desk, session, clock, smtp):
    runtime = desk([SAM], [_box(smtp, SAM, min_gap_seconds=120)])
    _mailbox(session, SAM).last_sent_at = clock.now() - timedelta(days=1)  # its last send, yesterday
    session.commit()
    _due(session, clock, ["p0@company0.example", "p1@company1.example"])

    assert tick(session, clock, runtime).outcomes == {"sent": 1, "deferred": 1}

    deferral = _deferrals(session)[-1]
    assert deferral.reason == f"mailbox {SAM}: minimum gap 120s between sends"
    assert deferral.detail["until"] == (clock.now() + timedelta(seconds=120)).isoformat()
    clock.advance(timedelta(seconds=120))
    assert tick(session, clock, runtime).outcomes == {"sent": 1}


def test_a_follow_up_stays_on_the_threads_mailbox_even_when_another_has_more_room(
    desk, session, clock, smtp, settings
):
    runtime = desk([SAM, JO], [_box(smtp, SAM, daily_cap=10), _box(smtp, JO, daily_cap=10)])
    _due(session, clock, ["dana@northwind.example", "li@other.example"])
    tick(session, clock, runtime)
    first = {m.rcpt_tos[0]: message_from_bytes(m.content, policy=policy.default) for m in smtp.messages}
    assert first["dana@northwind.example"]["From"].addresses[0].addr_spec == SAM
    smtp.messages.clear()

    clock.advance(WEDNESDAY)
    _fill(session, runtime.settings, _mailbox(session, SAM), clock.now(), 6)  # sam: 4 left, jo: 10
    assert tick(session, clock, runtime).outcomes == {"waited": 2, "sent": 2}

    follow_ups = {m.rcpt_tos[0]: message_from_bytes(m.content, policy=policy.default) for m in smtp.messages}
    dana = follow_ups["dana@northwind.example"]
    assert dana["From"].addresses[0].addr_spec == SAM
    assert dana["In-Reply-To"] == first["dana@northwind.example"]["Message-ID"]
    assert follow_ups["li@other.example"]["From"].addresses[0].addr_spec == JO
    assert enrollment_of(session, "dana@northwind.example").mailbox_id == _mailbox(session, SAM).id


def test_a_follow_up_waits_for_its_full_mailbox_rather_than_moving_to_another(desk, session, clock, smtp):
    runtime = desk([SAM, JO], [_box(smtp, SAM, daily_cap=10), _box(smtp, JO, daily_cap=10)])
    _due(session, clock, ["dana@northwind.example"])
    tick(session, clock, runtime)

    clock.advance(WEDNESDAY)
    _fill(session, runtime.settings, _mailbox(session, SAM), clock.now(), 10)
    assert tick(session, clock, runtime).outcomes == {"waited": 1, "deferred": 1}

    assert _deferrals(session)[-1].reason == f"no mailbox can send: {SAM}: mailbox {SAM} daily cap (10/day) reached"
    assert len(smtp.messages) == 1
    clock.advance(timedelta(days=1))
    assert tick(session, clock, runtime).outcomes == {"sent": 1}
    assert _senders(smtp) == [SAM, SAM]


def test_when_no_mailbox_has_room_the_deferral_lists_every_mailboxs_reason(desk, session, clock, smtp):
    def domain_problem(_session, _now, domain: str) -> str:
        return f"sending domain {domain} health failing: no DMARC record" if domain == "outreach-beta.example" else ""

    runtime = desk([SAM, JO, MAX], [_box(smtp, SAM, daily_cap=1), _box(smtp, JO), _box(smtp, MAX)],
                   domain_problem)
    mailboxes.set_paused(session, JO, True, "warming down")
    _due(session, clock, ["dana@northwind.example", "li@other.example"])

    assert tick(session, clock, runtime).outcomes == {"sent": 1, "deferred": 1}

    decision = _deferrals(session)[0]
    assert decision.reason.startswith("no mailbox can send: ")
    assert sorted(decision.reason.removeprefix("no mailbox can send: ").split("; ")) == [
        f"{JO}: paused (warming down)",
        f"{MAX}: sending domain outreach-beta.example health failing: no DMARC record",
        f"{SAM}: mailbox {SAM} daily cap (1/day) reached",
    ]
    assert decision.detail["guard"] == "mailbox"
    enrollment = enrollment_of(session, "li@other.example")
    assert (enrollment.state, enrollment.next_due_at) == ("active", clock.now() + timedelta(hours=1))


def test_a_paused_mailbox_defers_its_touches_and_resume_lets_them_go(desk, session, engine, clock, smtp):
    runtime = desk([SAM], [_box(smtp, SAM)])
    _due(session, clock, ["dana@northwind.example"])
    assert tick(session, clock, runtime).outcomes == {"sent": 1}  # the engine has seen sam, unpaused

    with new_session(engine) as cli_session:  # `sequencer mailboxes pause` from another process
        mailboxes.set_paused(cli_session, SAM, True, "bounce spike")
    _due(session, clock, ["li@other.example"])
    assert tick(session, clock, runtime).outcomes == {"deferred": 1}

    assert _deferrals(session)[0].reason == f"no mailbox can send: {SAM}: paused (bounce spike)"
    enrollment = enrollment_of(session, "li@other.example")
    assert (enrollment.state, enrollment.current_step) == ("active", 0)
    clock.advance(timedelta(hours=1))
    assert tick(session, clock, runtime).outcomes == {"deferred": 1}  # still paused: deferred again

    with new_session(engine) as cli_session:
        mailboxes.set_paused(cli_session, SAM, False)
    clock.advance(timedelta(hours=1))
    assert tick(session, clock, runtime).outcomes == {"sent": 1}
    assert [m.rcpt_tos for m in smtp.messages] == [["dana@northwind.example"], ["li@other.example"]]


# --- the CLI and the config file ---------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run ``sequencer ...`` against a fresh SQLite file, from an empty working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    def run(*args: str, **env: str):
        env = {"SEQUENCER_DATABASE_URL": url, "COLUMNS": "200", **env}  # a table row on one line
        return CliRunner().invoke(app, list(args), env=env)

    run.url = url
    return run


def _stored(url: str) -> dict[str, Mailbox]:
    engine = make_engine(url)
    migrate(engine)
    with new_session(engine) as session:
        boxes = {m.address: m for m in session.exec(select(Mailbox))}
    engine.dispose()
    return boxes


def test_cli_adds_lists_pauses_and_resumes_a_mailbox(cli):
    added = cli("mailboxes", "add", "Alex@Outreach.example", "--display-name", "Alex",
                "--owner", "alex.sdr@acme.example", "--daily-cap", "40", "--warmup-start", "5",
                "--warmup-increment", "5", "--min-gap-seconds", "60")
    assert added.exit_code == 0, added.output
    assert "mailbox alex@outreach.example saved (domain outreach.example)" in added.output
    stored = _stored(cli.url)["alex@outreach.example"]
    assert (stored.daily_cap, stored.warmup_start, stored.warmup_started_on) == (40, 5, date.today())

    listed = cli("mailboxes", "list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if "alex@outreach.example" in line)
    assert "warm-up day 1: 5/day of 40" in row and "active" in row

    paused = cli("mailboxes", "pause", "alex@outreach.example", "--reason", "spam complaints")
    assert paused.exit_code == 0, paused.output
    assert _stored(cli.url)["alex@outreach.example"].paused
    assert "paused: spam complaints" in cli("mailboxes", "list").output

    resumed = cli("mailboxes", "resume", "alex@outreach.example")
    assert resumed.exit_code == 0, resumed.output
    stored = _stored(cli.url)["alex@outreach.example"]
    assert (stored.paused, stored.pause_reason) == (False, "")


def test_cli_update_changes_only_the_options_given(cli):
    cli("mailboxes", "add", "alex@outreach.example", "--smtp-host", "smtp.example.net", "--smtp-port", "587",
        "--smtp-security", "starttls")

    updated = cli("mailboxes", "add", "alex@outreach.example", "--daily-cap", "60")

    assert updated.exit_code == 0, updated.output
    stored = _stored(cli.url)["alex@outreach.example"]
    assert (stored.smtp_host, stored.smtp_port, stored.smtp_security, stored.daily_cap) == (
        "smtp.example.net", 587, "starttls", 60)


def test_cli_refuses_an_unknown_mailbox_and_a_bad_field(cli):
    unknown = cli("mailboxes", "pause", "nobody@outreach.example")
    bad = cli("mailboxes", "add", "alex@outreach.example", "--smtp-security", "tls")

    assert unknown.exit_code == 1 and "unknown mailbox 'nobody@outreach.example'" in unknown.stderr
    assert bad.exit_code == 1
    assert "alex@outreach.example: smtp_security must be none, starttls or ssl" in bad.stderr
    assert _stored(cli.url) == {}


def _config(tmp_path: Path, second_mailbox: str) -> Path:
    path = tmp_path / "sequencer.toml"
    path.write_text(
        'domain_daily_cap = 200\n\n'
        '[[mailboxes]]\naddress = "sam@outreach-acme.example"\ndaily_cap = 30\n'
        'warmup_start = 5\nwarmup_increment = 5\nwarmup_started_on = 2026-11-20\n\n'
        f'[[mailboxes]]\naddress = "jo@outreach-acme.example"\n{second_mailbox}\n'
    )
    return path


def test_the_config_mailboxes_section_creates_and_updates_mailboxes(tmp_path, lite, clock):
    settings = load_settings(_config(tmp_path, "daily_cap = 12\nowner = 'jo.sdr@acme.example'"), env={})

    mailboxes.sync_from_settings(lite, settings, clock.now().date())
    settings.mailboxes[1]["daily_cap"] = 15
    mailboxes.sync_from_settings(lite, settings, clock.now().date())

    sam, jo = _mailbox(lite, SAM), _mailbox(lite, JO)
    assert (sam.daily_cap, sam.warmup_started_on) == (30, date(2026, 11, 20))
    assert caps.mailbox_daily_limit(sam, clock.now().date()) == (30, "30/day")  # day 11 of the ramp
    assert (jo.daily_cap, jo.owner, jo.sending_domain) == (15, "jo.sdr@acme.example", "outreach-acme.example")
    assert len(lite.exec(select(Mailbox)).all()) == 2


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ('daily_cap = "lots"', "daily_cap must be int"),
        ("daily_cap = -1", "daily_cap must not be negative"),
        ('smtp_hots = "127.0.0.1"', "unknown field 'smtp_hots'"),
        ('warmup_started_on = "last tuesday"', "warmup_started_on must be a date"),
        ('display_name = "Jo\\r\\nBcc: all@else.example"', "display_name must be one line of text"),
    ],
)
def test_a_bad_mailbox_in_the_config_names_the_file_and_field_and_stores_nothing(
    tmp_path, lite, clock, field, message
):
    path = _config(tmp_path, field)
    settings = load_settings(path, env={})

    with pytest.raises(mailboxes.MailboxError) as error:
        mailboxes.sync_from_settings(lite, settings, clock.now().date())
    lite.rollback()

    assert str(error.value).startswith(f"{path}: mailboxes[1]: mailbox {JO}: ")
    assert message in str(error.value)
    assert lite.exec(select(Mailbox)).all() == []


def test_a_refused_update_leaves_the_mailbox_as_it_was(lite, clock):
    mailboxes.upsert(lite, {"address": SAM, "daily_cap": 30, "smtp_port": 2525}, clock.now().date())
    lite.commit()

    with pytest.raises(mailboxes.MailboxError, match="daily_cap must not be negative"):
        mailboxes.upsert(lite, {"address": SAM, "smtp_port": 587, "daily_cap": -1}, clock.now().date())
    lite.commit()  # the caller carries on with other work in the same session

    lite.expire_all()
    sam = _mailbox(lite, SAM)
    assert (sam.daily_cap, sam.smtp_port) == (30, 2525)


def test_sequencer_run_refuses_a_config_with_a_bad_mailbox_and_stores_none(cli, tmp_path):
    path = _config(tmp_path, 'daily_cap = "lots"')

    result = cli("run", "--once", SEQUENCER_CONFIG=str(path), SEQUENCER_SECRET_KEY="test-secret-0123456789abcdefghij")

    assert result.exit_code == 1
    assert f"{path}: mailboxes[1]: mailbox {JO}: daily_cap must be int" in " ".join(result.stderr.split())
    assert _stored(cli.url) == {}
