"""``sequencer suppress`` through a throwaway typer app, on a tmp SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy.engine import Engine
from suppression_fixtures import all_entries, database_url, migrated_engine
from typer.testing import CliRunner, Result

from sequencer.app.cli import suppress

root = typer.Typer()
root.add_typer(suppress.app, name="suppress")


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.chdir(tmp_path)  # no stray sequencer.toml is picked up
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", database_url(tmp_path))
    engine = migrated_engine(tmp_path)
    yield engine
    engine.dispose()


def cli(*args: str) -> Result:
    return CliRunner().invoke(root, ["suppress", *args])


def entries(engine: Engine) -> list[tuple]:
    return [(e.kind, e.value, e.reason, e.note, e.added_by) for e in all_entries(engine)]


def test_add_infers_the_kind_and_check_explains(engine: Engine) -> None:
    result = cli("add", "Competitor.io", "--reason", "competitor", "--note", "rival", "--by", "ops")
    assert result.exit_code == 0, result.output
    assert "added domain competitor.io (competitor)" in result.output
    assert entries(engine) == [("domain", "competitor.io", "competitor", "rival", "ops")]

    result = cli("check", "Ann@Mail.Competitor.io")
    assert result.exit_code == 3  # suppressed: a script's `if sequencer suppress check ...` says no
    assert "suppressed: competitor (domain competitor.io), added by ops" in result.output

    result = cli("check", "ann@example.com")
    assert result.exit_code == 0
    assert "not suppressed: ann@example.com" in result.output


def test_add_by_default_records_the_cli_user(engine: Engine) -> None:
    assert cli("add", "ann@example.com").exit_code == 0
    ((_, _, reason, _, added_by),) = entries(engine)
    assert reason == "manual" and added_by.startswith("cli")


def test_add_twice_updates(engine: Engine) -> None:
    cli("add", "ann@example.com", "--note", "one")
    result = cli("add", "ANN@example.com", "--note", "two")
    assert "updated email ann@example.com" in result.output
    assert [e[3] for e in entries(engine)] == ["two"]


def test_add_never_weakens_an_unsubscribe(engine: Engine) -> None:
    cli("add", "ann@example.com", "--reason", "unsubscribed")
    result = cli("add", "ann@example.com", "--reason", "customer")
    assert result.exit_code == 0
    assert "never weakened" in result.output
    assert [e[2] for e in entries(engine)] == ["unsubscribed"]


def test_check_with_account_and_expiry(engine: Engine) -> None:
    cli("add", "12", "--kind", "account", "--reason", "customer", "--expires", "2999-01-01")
    result = cli("check", "ann@example.com", "--account", "12")
    assert "suppressed: customer (account 12)" in result.output
    assert "expires 2999-01-01T00:00:00+00:00" in result.output
    assert "not suppressed" in cli("check", "ann@example.com", "--account", "13").output


def test_expired_entry_does_not_suppress(engine: Engine) -> None:
    cli("add", "ann@example.com", "--expires", "2000-01-01")
    assert "not suppressed" in cli("check", "ann@example.com").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "not-an-address@"], "invalid email 'not-an-address@'"),
        (["add", "x@example.com", "--reason", "bored"], "unknown reason 'bored'"),
        (["add", "x@example.com", "--expires", "soon"], "expires_at 'soon'"),
        (["add", "abc", "--kind", "account"], "invalid account 'abc'"),
        (["remove", "example.com"], "no domain entry for example.com"),
        (["remove", "bad domain"], "invalid domain"),
        (["check", "nobody"], "invalid email 'nobody'"),
    ],
)
def test_bad_input_fails_with_a_clear_message(
    engine: Engine, args: list[str], message: str
) -> None:
    result = cli(*args)
    assert result.exit_code == 1
    assert message in result.output
    assert all_entries(engine) == []


def test_remove(engine: Engine) -> None:
    cli("add", "example.com")
    result = cli("remove", "EXAMPLE.com", "--kind", "Domain")
    assert result.exit_code == 0 and "removed domain example.com" in result.output
    assert all_entries(engine) == []


def test_import_reports_bad_rows_stores_good_ones_and_exits_1(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "value,kind,reason,expires_at,note\n"
        "ann@example.com,,,,\n"
        "broken@,,,,\n"
        "rival.io,,competitor,,\n"
    )
    result = cli("import", str(path), "--reason", "customer", "--by", "ops", "--batch-size", "1")
    assert result.exit_code == 1
    assert f"{path}: line 3: invalid email 'broken@'" in result.output
    assert "2 added, 0 updated, 0 unchanged, 1 bad rows" in result.output
    assert entries(engine) == [
        ("email", "ann@example.com", "customer", "", "ops"),
        ("domain", "rival.io", "competitor", "", "ops"),
    ]
    again = cli("import", str(path), "--reason", "customer")
    assert "0 added, 0 updated, 2 unchanged, 1 bad rows" in again.output
    assert len(all_entries(engine)) == 2


def test_a_clean_import_exits_0(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("value\nann@example.com\n")
    result = cli("import", str(path))
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output


def test_import_with_a_bad_header_names_the_file(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email\nann@example.com\n")
    result = cli("import", str(path))
    assert result.exit_code == 1
    assert "unknown column(s) 'email'" in result.output and "list.csv" in result.output
    assert all_entries(engine) == []


def test_import_refuses_an_unknown_default_reason(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("value\nann@example.com\n")
    result = cli("import", str(path), "--reason", "bored")
    assert result.exit_code == 1 and "unknown reason 'bored'" in result.output
    assert all_entries(engine) == []


def test_export_to_stdout_and_file_round_trips(engine: Engine, tmp_path: Path) -> None:
    cli("add", "ann@example.com", "--reason", "unsubscribed", "--note", "a, b")
    cli("add", "rival.io", "--reason", "competitor", "--expires", "2030-06-01")
    result = cli("export")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "value,kind,reason,expires_at,note",
        'ann@example.com,email,unsubscribed,,"a, b"',
        "rival.io,domain,competitor,2030-06-01T00:00:00+00:00,",
    ]
    out = tmp_path / "out.csv"
    result = cli("export", str(out))
    assert "exported 2 entries" in result.output
    assert out.read_text().splitlines() == result_lines(cli("export"))
    cli("remove", "ann@example.com")
    cli("remove", "rival.io")
    assert cli("import", str(out)).exit_code == 0
    assert [(e[0], e[1], e[2], e[3]) for e in entries(engine)] == [
        ("email", "ann@example.com", "unsubscribed", "a, b"),
        ("domain", "rival.io", "competitor", ""),
    ]


def result_lines(result: Result) -> list[str]:
    return result.output.splitlines()
