"""A workspace for meeting tests: the real CLI on the test database, a sequencer.toml whose
mailboxes send to the loopback SMTP server, and the CLI's clock pinned to the test's clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from engine_support import add_prospect, fire, prepare, write_templates
from loopback_faults import FaultySmtpServer
from sqlalchemy.engine import Engine
from sqlmodel import select
from typer.testing import CliRunner, Result

import sequencer.app.cli.meetings as meetings_cli
import sequencer.app.cli.tasks as tasks_cli
from sequencer.app.cli import app
from sequencer.core.clock import SimulatedClock
from sequencer.core.config import Settings
from sequencer.core.db import session as new_session
from sequencer.core.models import Decision, Meeting

DANA = "dana@northwind.example"
AE = "alex.ae@acme.example"
SDR = "sam.sdr@acme.example"


def toml_value(value: object) -> str:
    if isinstance(value, Path):
        return json.dumps(str(value))
    return json.dumps(value)


def write_config(path: Path, settings: Settings, **extra: object) -> Path:
    lines = [f"{name} = {toml_value(getattr(settings, name))}" for name in
             ("database_url", "templates_dir", "primary_domain", "secret_key", "unsubscribe_url")]
    lines += [f"{name} = {toml_value(value)}" for name, value in extra.items()]
    for box in settings.mailboxes:
        lines.append("\n[[mailboxes]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in box.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Workspace:
    root: Path
    settings: Settings
    engine: Engine
    clock: SimulatedClock
    smtp: FaultySmtpServer
    monkeypatch: pytest.MonkeyPatch

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(app, list(args))

    def ok(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.exit_code == 0, result.output
        return result.output

    def refused(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.exit_code == 1, result.output
        return " ".join(result.output.split())  # rich may wrap the message

    def configure(self, **extra: object) -> None:
        write_config(self.root / "sequencer.toml", self.settings, **extra)

    def meetings(self) -> list[Meeting]:
        with new_session(self.engine) as session:
            return list(session.exec(select(Meeting).order_by(Meeting.id)))

    def meeting(self, meeting_id: int = 1) -> Meeting:
        with new_session(self.engine) as session:
            return session.get(Meeting, meeting_id)

    def decisions(self, kind_prefix: str = "meeting_") -> list[Decision]:
        with new_session(self.engine) as session:
            return [d for d in session.exec(select(Decision).order_by(Decision.id)) if d.kind.startswith(kind_prefix)]

    def enrolled(self, email: str = DANA) -> None:
        """A prospect in the test sequence, enrolled by a signal (an active enrollment)."""
        with new_session(self.engine) as session:
            prepare(session, self.clock.now(), self.settings, self.settings.templates_dir)
            add_prospect(session, self.clock.now(), email, owner=SDR, last_name="Reyes")
            fire(session, self.clock.now(), "intent_surge", email=email, score=80)

    def at(self, delta: timedelta) -> str:
        return (self.clock.now() + delta).isoformat()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: Engine,
              clock: SimulatedClock, smtp: FaultySmtpServer) -> Iterator[Workspace]:
    settings.templates_dir = write_templates(tmp_path / "templates")
    write_config(tmp_path / "sequencer.toml", settings)
    monkeypatch.chdir(tmp_path)
    for name in ("SEQUENCER_DATABASE_URL", "SEQUENCER_TEMPLATES", "SEQUENCER_SECRET_KEY", "SEQUENCER_RULES_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SEQUENCER_CONFIG", str(tmp_path / "sequencer.toml"))
    monkeypatch.setenv("COLUMNS", "400")  # rich must not fold long lines
    monkeypatch.setattr(meetings_cli, "SystemClock", lambda: clock)
    monkeypatch.setattr(tasks_cli, "SystemClock", lambda: clock)
    yield Workspace(tmp_path, settings, engine, clock, smtp, monkeypatch)
