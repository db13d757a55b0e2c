"""``sequencer api-keys create / list / revoke`` through the real Typer app, on SQLite and PostgreSQL.

Also the migration that adds the table: a database made by 0001 gains it, keeping what it held.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlmodel import select
from typer.testing import CliRunner

from sequencer.app.cli import app as cli
from sequencer.core import api_keys
from sequencer.core.clock import SystemClock
from sequencer.core.db import MIGRATIONS, make_engine, migrate
from sequencer.core.db import session as new_session
from sequencer.core.models import ApiKey


@pytest.fixture
def run(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``sequencer ...`` from an empty folder (no sequencer.toml, no secret), on the test's database."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    monkeypatch.delenv("SEQUENCER_SECRET_KEY", raising=False)

    def invoke(*args: str):
        return CliRunner().invoke(cli, list(args), env={"SEQUENCER_DATABASE_URL": db_url, "COLUMNS": "250"})

    return invoke


def rows(engine) -> list[ApiKey]:
    with new_session(engine) as session:
        return list(session.exec(select(ApiKey).order_by(ApiKey.id)))


def test_create_prints_the_key_once_and_stores_only_its_digest_and_prefix(run, engine):
    result = run("api-keys", "create", "--name", "sendgrid-inbound")

    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("sqk_") and len(key) >= 4 + 43  # 32 random bytes, URL-safe base64
    assert "cannot be shown again" in result.stderr
    (row,) = rows(engine)
    assert (row.name, row.scopes, row.prefix) == ("sendgrid-inbound", ["inbound"], key[:12])
    assert row.key_hash == api_keys.digest(key) and key not in repr(row.model_dump())
    assert row.created_at is not None and row.last_used_at is None and row.revoked_at is None

    listed = run("api-keys", "list")

    assert key not in listed.output and key[:12] in listed.output


def test_two_keys_are_different_and_scopes_can_be_repeated(run, engine):
    first = run("api-keys", "create", "--name", "a", "--scope", "admin", "--scope", "inbound")
    second = run("api-keys", "create", "--name", "b", "--scope", "admin")

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert first.stdout.strip() != second.stdout.strip()
    assert [(r.name, r.scopes) for r in rows(engine)] == [("a", ["inbound", "admin"]), ("b", ["admin"])]


@pytest.mark.parametrize(("args", "message"), [
    (["--name", "x", "--scope", "everything"], "scope 'everything' is not one of inbound, signals, admin"),
    (["--name", "has space"], "name 'has space': use 1-100 letters"),
    (["--name", "42"], "not only digits"),
    (["--name", "-x"], "starting with a letter or digit"),
])
def test_bad_input_is_refused_naming_the_field_and_stores_nothing(run, engine, args, message):
    result = run("api-keys", "create", *args)

    assert result.exit_code == 1
    assert message in " ".join(result.stderr.split())
    assert rows(engine) == []


def test_a_name_is_used_once_even_after_revoking(run, engine):
    run("api-keys", "create", "--name", "parse")
    run("api-keys", "revoke", "parse")

    again = run("api-keys", "create", "--name", "parse")

    assert again.exit_code == 1 and "an API key named 'parse' already exists" in again.stderr
    assert len(rows(engine)) == 1


def test_list_shows_name_prefix_scopes_created_last_used_and_revoked(run, engine):
    key = run("api-keys", "create", "--name", "parse").stdout.strip()
    run("api-keys", "create", "--name", "ops", "--scope", "admin")
    used_at = SystemClock().now() + timedelta(days=1)
    with new_session(engine) as session:
        assert api_keys.authenticate(session, used_at, key).name == "parse"
    run("api-keys", "revoke", "ops")

    result = run("api-keys", "list")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if "prefix" in line)
    assert all(word in header for word in ("name", "prefix", "scopes", "created", "last used", "revoked"))
    parse_line = next(line for line in lines if " parse " in line)
    ops_line = next(line for line in lines if " ops " in line)
    assert key[:12] in parse_line and "inbound" in parse_line
    assert f"{used_at:%Y-%m-%d %H:%M} UTC" in parse_line and parse_line.rstrip(" │").endswith("-")
    assert "admin" in ops_line and ops_line.count("UTC") == 2  # created and revoked, never used


def test_list_with_no_keys_says_how_to_make_one(run):
    result = run("api-keys", "list")

    assert result.exit_code == 0 and "sequencer api-keys create --name NAME" in result.output


def test_revoke_by_name_or_id_and_a_second_time(run, engine):
    run("api-keys", "create", "--name", "first")
    second_key = run("api-keys", "create", "--name", "second").stdout.strip()
    second_id = rows(engine)[1].id

    by_name = run("api-keys", "revoke", "first")
    by_id = run("api-keys", "revoke", str(second_id))
    repeat = run("api-keys", "revoke", "first")

    assert by_name.exit_code == 0 and "revoked API key 'first'" in by_name.output
    assert by_id.exit_code == 0 and "revoked API key 'second'" in by_id.output
    assert repeat.exit_code == 0 and "already revoked" in repeat.output
    assert all(row.revoked_at is not None for row in rows(engine))
    with new_session(engine) as session:
        assert api_keys.authenticate(session, SystemClock().now(), second_key) is None


def test_revoking_an_unknown_key_is_an_error_naming_it(run, engine):
    run("api-keys", "create", "--name", "kept")

    result = run("api-keys", "revoke", "nope")

    assert result.exit_code == 1 and "no API key named or numbered 'nope'" in result.stderr
    assert rows(engine)[0].revoked_at is None


def test_migration_0002_adds_the_table_to_a_database_made_by_0001(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO account (domain, name, industry, country, custom) "
                                "VALUES ('kept.example', '', '', '', '{}')"))
    assert "apikey" not in inspect(engine).get_table_names()

    migrate(engine)

    assert "apikey" in inspect(engine).get_table_names()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT domain FROM account")).scalars().all() == ["kept.example"]
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    assert "apikey" not in inspect(engine).get_table_names()
    engine.dispose()
