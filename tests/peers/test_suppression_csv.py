"""CSV import and export: bad rows named by line, batches atomic, re-import an upsert."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from suppression_fixtures import NOW, all_entries, database_url, migrated_engine, open_session

from suppression.csv_io import CsvError, export_csv, import_csv, parse_expiry
from suppression.store import unsubscribe

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = migrated_engine(tmp_path)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with open_session(engine) as session:
        yield session


def run_import(session: Session, text: str | bytes, **kwargs: object):
    data = text.encode() if isinstance(text, str) else text
    return import_csv(session, NOW, io.BytesIO(data), name="list.csv", **kwargs)  # type: ignore[arg-type]


def rows(engine: Engine) -> list[tuple]:
    return [(e.kind, e.value, e.reason, e.expires_at, e.note) for e in all_entries(engine)]


GOOD_AND_BAD = """\
value,kind,reason,expires_at,note
Ann@Example.com,,unsubscribed,,asked by phone
competitor.io,domain,competitor,,
not-an-email@,,manual,,
42,account,customer,2027-01-01,big account
bob@example.com,,bored,,
carol@example.com,,manual,next tuesday,
dave@example.com,,,2027-01-01T12:00:00+02:00,"note, with comma"
,,,,
eve@example.com,weird,manual,,
co.uk,,,,
frank@example.com,,manual,,,extra
"""


def test_good_rows_are_stored_and_every_bad_row_named(engine: Engine, session: Session) -> None:
    report = run_import(session, GOOD_AND_BAD, default_reason="do_not_contact", added_by="ops")
    assert [(bad.line, bad.value) for bad in report.bad] == [
        (4, "not-an-email@"),
        (6, "bob@example.com"),
        (7, "carol@example.com"),
        (10, "eve@example.com"),
        (11, "co.uk"),
        (12, "frank@example.com"),
    ]
    problems = [bad.problem for bad in report.bad]
    assert "invalid email 'not-an-email@'" in problems[0]
    assert "unknown reason 'bored'" in problems[1]
    assert "expires_at 'next tuesday' is not an ISO 8601" in problems[2]
    assert "unknown kind 'weird'" in problems[3]
    assert "public suffix" in problems[4]
    assert "6 fields but the header has 5" in problems[5]
    assert str(report.bad[0]).startswith("line 4: invalid email")
    assert (report.added, report.updated, report.unchanged) == (4, 0, 0)
    assert rows(engine) == [
        ("email", "ann@example.com", "unsubscribed", None, "asked by phone"),
        ("domain", "competitor.io", "competitor", None, ""),
        ("account", "42", "customer", datetime(2027, 1, 1, tzinfo=UTC), "big account"),
        (
            "email",
            "dave@example.com",
            "do_not_contact",
            datetime(2027, 1, 1, 10, tzinfo=UTC),
            "note, with comma",
        ),
    ]
    assert {e.added_by for e in all_entries(engine)} == {"ops"}


def test_reimport_updates_and_never_duplicates(engine: Engine, session: Session) -> None:
    first = run_import(session, "value,reason,note\nann@example.com,manual,one\nx.com,customer,\n")
    assert (first.added, first.updated) == (2, 0)
    again = run_import(session, "value,reason,note\nANN@example.com,manual,two\nx.com,customer,\n")
    assert (again.added, again.updated, again.unchanged) == (0, 1, 1)
    assert rows(engine) == [
        ("email", "ann@example.com", "manual", None, "two"),
        ("domain", "x.com", "customer", None, ""),
    ]


def test_duplicates_inside_one_file_keep_the_last(engine: Engine, session: Session) -> None:
    run_import(session, "value,note\nann@example.com,first\nAnn@example.com,last\n")
    assert rows(engine) == [("email", "ann@example.com", "manual", None, "last")]


def test_import_never_weakens_an_unsubscribe(engine: Engine, session: Session) -> None:
    unsubscribe(session, NOW, "ann@example.com", "one-click")
    report = run_import(session, "value,reason,expires_at\nann@example.com,customer,2027-01-01\n")
    assert (report.added, report.updated, report.unchanged) == (0, 0, 1)
    assert rows(engine) == [("email", "ann@example.com", "unsubscribed", None, "")]


def test_columns_may_come_in_any_order_and_case_with_a_bom(
    engine: Engine, session: Session
) -> None:
    data = "\ufeffNote, Value ,KIND\nhi,ann@example.com,email\n".encode()
    report = run_import(session, data)
    assert report.bad == []
    assert rows(engine) == [("email", "ann@example.com", "manual", None, "hi")]


def test_a_quoted_field_spanning_lines_keeps_later_line_numbers_right(session: Session) -> None:
    text = 'value,note\nann@example.com,"two\nlines"\nnope,\n'
    report = run_import(session, text)
    assert [(bad.line, bad.value) for bad in report.bad] == [(4, "nope")]


def test_a_line_that_is_not_utf8_is_one_bad_row(engine: Engine, session: Session) -> None:
    data = "value,note\nann@example.com,café\n".encode() + b"b\xffd@example.com,\ncarol@example.com,\n"
    report = run_import(session, data)
    assert [(bad.line, bad.problem.split(" (")[0]) for bad in report.bad] == [
        (3, "not valid UTF-8")
    ]
    assert [r[1] for r in rows(engine)] == ["ann@example.com", "carol@example.com"]


def test_unreadable_csv_quoting_is_a_bad_row(engine: Engine, session: Session) -> None:
    report = run_import(session, 'value,note\n"ann@example.com"x,\nbob@example.com,\n')
    assert [bad.line for bad in report.bad] == [2]
    assert "unreadable CSV" in report.bad[0].problem
    assert [r[1] for r in rows(engine)] == ["bob@example.com"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "list.csv: empty file"),
        ("\n\n", "list.csv: empty file"),
        ("email,reason\nann@example.com,manual\n", "list.csv: line 1: unknown column(s) 'email'"),
        ("kind,reason\nemail,manual\n", "needs a 'value' column"),
        ("value,value\na@b.com,c@d.com\n", "no repeats"),
    ],
)
def test_an_unusable_header_stops_before_anything_is_stored(
    engine: Engine, session: Session, text: str, message: str
) -> None:
    with pytest.raises(CsvError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_import(session, text)
    assert all_entries(engine) == []


def test_progress_reports_bytes_read_up_to_the_whole_file(session: Session) -> None:
    text = "value\n" + "".join(f"p{i}@example.com\n" for i in range(25))
    seen: list[int] = []
    run_import(session, text, batch_size=10, on_progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == len(text.encode())


def test_parse_expiry() -> None:
    assert parse_expiry("") is None
    assert parse_expiry("2027-01-01") == datetime(2027, 1, 1, tzinfo=UTC)
    assert parse_expiry("2027-01-01T05:00:00Z") == datetime(2027, 1, 1, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="'soon'"):
        parse_expiry("soon")


def test_export_round_trips_through_import(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    run_import(session, GOOD_AND_BAD)
    unsubscribe(session, NOW, "zoe@example.com", "one-click")
    out = io.StringIO()
    assert export_csv(session, out) == 5
    exported = out.getvalue()
    assert exported.splitlines()[0] == "value,kind,reason,expires_at,note"

    (tmp_path / "other").mkdir()
    other = migrated_engine(tmp_path / "other")
    with open_session(other) as target:
        report = run_import(target, exported)
    assert report.bad == [] and report.added == 5
    assert rows(other) == rows(engine)
    other.dispose()


CRASHING_IMPORT = """
import io, os, signal, sys
from datetime import datetime, timezone
from sqlalchemy import event
from sequencer.core.db import make_engine
from sequencer.core.db import session as new_session
from suppression.csv_io import import_csv

engine = make_engine(sys.argv[1])
commits = 0

@event.listens_for(engine, "commit")
def die_on_third_commit(connection):
    global commits
    commits += 1
    if commits == 3:  # rows of the third batch are written but not committed
        os.kill(os.getpid(), signal.SIGKILL)

data = "value,note\\n" + "".join(f"p{i}@example.com,row {i}\\n" for i in range(50))
with new_session(engine) as session:
    import_csv(session, datetime(2026, 3, 2, tzinfo=timezone.utc), io.BytesIO(data.encode()),
               batch_size=10)
"""


def test_a_kill_mid_import_leaves_only_whole_batches_and_reimport_finishes(
    engine: Engine, tmp_path: Path
) -> None:
    """SIGKILL inside the third batch's commit: two whole batches stay, nothing partial."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = textwrap.dedent(CRASHING_IMPORT)
    done = subprocess.run(
        [sys.executable, "-c", script, database_url(tmp_path)], env=env, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGKILL
    stored = rows(engine)
    assert [r[1] for r in stored] == [f"p{i}@example.com" for i in range(20)]
    assert all(r[4] == f"row {i}" and r[2] == "manual" for i, r in enumerate(stored))

    data = "value,note\n" + "".join(f"p{i}@example.com,row {i}\n" for i in range(50))
    with open_session(engine) as session:
        report = run_import(session, data, batch_size=10)
    assert (report.added, report.unchanged) == (30, 20)
    assert len(rows(engine)) == 50


def test_expiry_in_the_export_survives_as_utc(engine: Engine, session: Session) -> None:
    later = NOW + timedelta(days=3)
    run_import(session, f"value,expires_at\nann@example.com,{later.isoformat()}\n")
    out = io.StringIO()
    export_csv(session, out)
    assert later.isoformat() in out.getvalue()
