"""Hostile input files through the real command line and the engine's tick, on SQLite and
PostgreSQL: CSVs in other encodings and delimiters, rows that cannot be read, signal lines
that are too deep, too big or of the wrong types, numbers as text, pathological patterns.
One bad value refuses only itself, named by its line; nothing is half-written."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from engine_support import add_prospect, fire, prepare, write_templates
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from channels.email import SmtpSender
from sequencer.app.cli import app
from sequencer.app.wiring import build as build_runtime
from sequencer.core.models import Decision, Prospect, Signal, Touch
from sequencer.engine.tick import tick
from sequencer.intake import signals
from suppression.models import SuppressionEntry


@pytest.fixture
def shell(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI pointed at this test's database; returns a folder for the input files."""
    monkeypatch.chdir(tmp_path)  # no stray sequencer.toml is picked up
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", db_url)
    monkeypatch.setenv("SEQUENCER_SECRET_KEY", "test-secret")
    monkeypatch.setenv("COLUMNS", "400")  # rich must not fold long paths
    return tmp_path


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def prospects(session: Session) -> dict[str, Prospect]:
    session.expire_all()
    return {p.email: p for p in session.exec(select(Prospect))}


def entries(session: Session) -> dict[str, SuppressionEntry]:
    session.expire_all()
    return {e.value: e for e in session.exec(select(SuppressionEntry))}


# --- prospects import -------------------------------------------------------------------

PEOPLE = "email,first_name,company\njurgen@northwind.example,Jürgen,Müller GmbH\nann@northwind.example,Ann,Northwind\n"


@pytest.mark.parametrize(
    ("data", "note"),
    [
        (PEOPLE.encode("cp1252"), "not UTF-8 (line 2 is the first that is not); read as Windows-1252"),
        (codecs.BOM_UTF16_LE + PEOPLE.encode("utf-16-le"), None),
        (codecs.BOM_UTF16_BE + PEOPLE.encode("utf-16-be"), None),
        (codecs.BOM_UTF8 + PEOPLE.encode(), None),
        (PEOPLE.replace(",", ";").encode(), None),
        (PEOPLE.replace(",", "\t").encode(), None),
        (PEOPLE.replace("\n", "\r\n").encode("cp1252"), "read as Windows-1252"),
    ],
    ids=["cp1252", "utf16-le-bom", "utf16-be-bom", "utf8-bom", "semicolons", "tabs", "cp1252-crlf"],
)
def test_prospects_in_other_encodings_and_delimiters_are_read(shell, session, data, note) -> None:
    (shell / "people.csv").write_bytes(data)

    result = cli("prospects", "import", "people.csv")

    assert result.exit_code == 0, result.output
    assert "2 prospect(s) stored, 0 row(s) refused" in result.output
    assert (note in result.output) if note else ("note:" not in result.output)
    stored = prospects(session)
    assert stored["jurgen@northwind.example"].first_name == "Jürgen"


def test_utf16_without_a_byte_order_mark_is_refused_naming_the_file(shell, session) -> None:
    (shell / "people.csv").write_bytes(PEOPLE.encode("utf-16-le"))

    result = cli("prospects", "import", "people.csv")

    assert result.exit_code == 1
    assert "people.csv: this looks like UTF-16 or UTF-32 without a byte order mark" in result.output
    assert prospects(session) == {}


def test_a_bad_prospect_row_is_refused_alone_and_named_by_the_line_it_starts_on(shell, session) -> None:
    (shell / "people.csv").write_bytes(
        b'email,first_name,title\n'
        b'"not an email",Ann,"Head of\nRevOps"\n'      # lines 2-3: reported at 2
        b'bob@northwind.example,B\x00b,CEO\n'          # line 4: a NUL
        b'cy@northwind.example,Cy,"VP\nSales"\n'       # lines 5-6: stored
        b'[/red]@northwind.example,Dee,\n'              # line 7: markup in the message
        b'eve@northwind.example,"Eve\n'                # line 8: never closed
    )

    result = cli("prospects", "import", "people.csv")

    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("people.csv:")]
    assert lines == [
        "people.csv:2: email: invalid email 'not an email': no @",
        "people.csv:4: a NUL character in field 2",
        "people.csv:7: email: invalid email '[/red]@northwind.example': character '[' not allowed in the local part",
        "people.csv:8: unreadable CSV: unexpected end of data",
    ], result.output
    assert "1 prospect(s) stored, 4 row(s) refused" in result.output
    assert list(prospects(session)) == ["cy@northwind.example"]
    assert prospects(session)["cy@northwind.example"].title == "VP\nSales"


def test_an_over_long_line_is_one_refused_row(shell, session) -> None:
    long_line = b"x" * (2 * 1024 * 1024)
    (shell / "people.csv").write_bytes(b"email,first_name\n" + long_line + b"\nann@northwind.example,Ann\n")

    result = cli("prospects", "import", "people.csv")

    assert "people.csv:2: line longer than 1048576 bytes" in result.output
    assert list(prospects(session)) == ["ann@northwind.example"]


# --- suppression import and export --------------------------------------------------------


def test_suppression_import_reads_windows_1252_with_semicolons_and_refuses_a_nul_row(shell, session) -> None:
    (shell / "list.csv").write_bytes(
        "value;reason;note\nmüller@example.de;manual;Kündigung\n".encode("cp1252")
        + b"b\x00b@example.com;manual;x\ncompetitor.io;competitor;\n"
    )

    result = cli("suppress", "import", "list.csv")

    assert result.exit_code == 1
    assert "note: list.csv: not UTF-8 (line 2 is the first that is not); read as Windows-1252" in result.output
    assert "list.csv: line 3: a NUL character in field 1" in result.output
    stored = entries(session)
    assert sorted(stored) == ["competitor.io", "müller@example.de"]
    assert stored["müller@example.de"].note == "Kündigung"


FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1 555 0100", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd",
            "'=already quoted", "plain note"]


def test_the_export_escapes_formulas_and_reimports_to_the_same_list(shell, session) -> None:
    for index, note in enumerate(FORMULAS):
        assert cli("suppress", "add", f"p{index}@example.com", "--note", note).exit_code == 0

    result = cli("suppress", "export", "out.csv")
    assert result.exit_code == 0, result.output

    text = (shell / "out.csv").read_text()
    notes = [line.rsplit(",", 1)[-1] for line in text.splitlines()[1:] if "p7@" in line or "p1@" in line]
    assert notes == ["'+1 555 0100", "plain note"]
    for cell in ('"\'=HYPERLINK(""http://evil.example"",""x"")"', "'-2+3", "'@SUM(A1)", "'\tcmd", "''=already quoted"):
        assert cell in text
    before = {value: entry.note for value, entry in entries(session).items()}
    result = cli("suppress", "import", "out.csv")
    assert result.exit_code == 0, result.output
    # The import strips a note's surrounding whitespace (as it always has), so the two that
    # begin with a tab or a CR come back without it; every other note comes back as it was.
    assert "0 added, 2 updated, 6 unchanged, 0 bad rows" in result.output
    after = {value: entry.note for value, entry in entries(session).items()}
    assert after == {**before, "p4@example.com": "cmd", "p5@example.com": "cmd"}
    assert before["p0@example.com"] == FORMULAS[0] and before["p6@example.com"] == "'=already quoted"


# --- signals: JSONL and CSV ------------------------------------------------------------------

GOOD_SIGNAL = {"type": "intent_surge", "domain": "northwind.example", "topic": "crm"}


def test_hostile_signal_lines_are_refused_by_line_and_the_import_goes_on(shell, session) -> None:
    def line(**fields: object) -> str:
        return json.dumps({**GOOD_SIGNAL, **fields})

    deep = "[" * 5000 + "]" * 5000
    lines = [
        line(topic="first"),                                                  # 1 stored
        '{"type": "intent_surge", "domain": "northwind.example", "x": ' + deep + "}",  # 2
        line(payload={"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": [1]}}}}}}}}),  # 3: nine deep
        line(email=["ann@northwind.example"]),                                # 4
        line(payload="score=80"),                                             # 5
        line(occurred_at=20261130),                                           # 6
        line(occurred_at="2026-02-30T10:00:00Z"),                             # 7
        line(occurred_at="0001-01-01T00:00:00+05:00"),                        # 8
        '{"type": "intent_surge", "domain": "northwind.example", "score": NaN}',    # 9
        '{"type": "intent_surge", "domain": "northwind.example", "score": 1e400}',  # 10
        line(blob="x" * 70_000),                                              # 11
        line(note="a\u0000b"),                                                # 12
        '{"type": "intent_surge", "domain": "northwind.example", "note": "\\ud800"}',  # 13
        line(count=10**20),                                                   # 14
        line(type={"name": "intent_surge"}),                                  # 15
        line(topic="last"),                                                   # 16 stored
    ]
    (shell / "signals.jsonl").write_bytes("\n".join(lines).encode() + b"\n" + b'{"type": "\xff"}\n')

    result = cli("signals", "import", "signals.jsonl")

    assert result.exit_code == 1
    errors = [line.removeprefix("signals.jsonl:") for line in result.output.splitlines()
              if line.startswith("signals.jsonl:")]
    assert errors == [
        "2: nested too deeply (a payload may be 8 levels deep)",
        "3: payload.a.b.c.d.e.f.g.h: nested more than 8 levels deep",
        "4: email: must be text, got a list",
        "5: payload: must be an object, got text",
        "6: occurred_at: must be an ISO 8601 time as text, got a number",
        "7: occurred_at: not an ISO 8601 time: '2026-02-30T10:00:00Z' (day is out of range for month)",
        "8: occurred_at: not an ISO 8601 time: '0001-01-01T00:00:00+05:00' (date value out of range)",
        "9: not valid JSON: NaN is not a number JSON allows",
        "10: payload.score: not a finite number (inf)",
        "11: a line of 70083 bytes; a signal may be at most 65536",
        "12: payload.note: a NUL character in the text",
        "13: payload.note: the text is not valid Unicode (a lone surrogate)",
        "14: payload.count: the number is too large (at most 64 bits)",
        "15: type: must be text, got an object",
        "17: not valid UTF-8 (invalid start byte at byte 11)",
    ], result.output
    assert "2 signal(s) stored, 0 duplicate(s), 15 refused" in result.output
    session.expire_all()
    assert [s.payload["topic"] for s in session.exec(select(Signal).order_by(Signal.id))] == ["first", "last"]


def test_a_payload_over_the_size_limit_is_refused_wherever_it_comes_from(shell, session) -> None:
    big = {f"k{i}": "v" * 100 for i in range(700)}  # 75 KB, in keys of their own

    with pytest.raises(ValueError, match=r"^payload: \d+ bytes as JSON; a signal's payload may be at most 65536"):
        signals.store(session, signals.datetime.now(signals.UTC),
                      signals.SignalIn(type="intent_surge", domain="northwind.example", payload=big))
    result = cli("signal", "intent_surge", "--domain", "northwind.example", "--data", "note=" + "\x00")
    assert result.exit_code == 1 and "payload.note: a NUL character in the text" in result.output
    assert session.exec(select(Signal)).all() == []


def test_a_signals_csv_in_windows_1252_with_semicolons_is_read(shell, session) -> None:
    (shell / "signals.csv").write_bytes("type;domain;topic\nintent_surge;northwind.example;Lösungen\n".encode("cp1252"))

    result = cli("signals", "import", "signals.csv")

    assert result.exit_code == 0, result.output
    session.expire_all()
    assert session.exec(select(Signal)).one().payload == {"topic": "Lösungen"}


# --- numbers as text, and patterns, in the engine -------------------------------------------

SCORED = """\
name: scored
owner: sam.sdr@acme.example
trigger:
  signals: [intent_surge]
  filters:
    signal.score: {at_least: 50}
    signal.usage.seats: {between: [1, 100]}
window: {days: mon-fri, start: "08:00", end: "17:00"}
mailboxes: [sam@outreach-acme.example]
steps:
  - id: first
    kind: email
    subject: "Hello {{ prospect.first_name }}"
    template: first.j2
"""


@pytest.fixture
def runtime(settings):
    sender = SmtpSender(timeout=5)
    yield build_runtime(settings, sender, check_domains=False)
    sender.close()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_score_given_as_text_is_stored_as_a_number_and_a_template_can_count_with_it(
        tmp_path, session, clock, settings, smtp, runtime, suffix) -> None:
    path = tmp_path / f"signals{suffix}"
    if suffix == ".csv":  # a CSV row cannot nest: no seats
        sequence = SCORED.replace("    signal.usage.seats: {between: [1, 100]}\n", "")
        template = "You scored {{ signal.score - 50 }} above the bar."
        path.write_text("type,email,score\n"
                        "intent_surge,ann@northwind.example,80\nintent_surge,bob@northwind.example,high\n")
    else:
        sequence = SCORED
        template = "You scored {{ signal.score - 50 }} above the bar, for {{ signal.usage.seats * 2 }} seats."
        path.write_text("\n".join(json.dumps(record) for record in (
            {"type": "intent_surge", "email": "ann@northwind.example", "score": " 80 ", "usage": {"seats": "12"}},
            {"type": "intent_surge", "email": "bob@northwind.example", "score": "high", "usage": {"seats": "12"}},
        )) + "\n")
    prepare(session, clock.now(), settings, write_templates(tmp_path / "templates", sequence, {"first.j2": template}))
    for name in ("ann", "bob"):
        add_prospect(session, clock.now(), f"{name}@northwind.example")

    ids: list[int] = []
    errors = signals.import_file(session, clock.now(), path, on_stored=ids.extend).errors
    stored = [session.get(Signal, i) for i in ids]
    report = tick(session, clock, runtime)

    assert errors == []
    assert stored[0].payload["score"] == 80 and stored[1].payload["score"] == "high"
    assert report.outcomes == {"sent": 1}
    body = smtp.messages[0].content.decode()
    assert "You scored 30 above the bar" in body
    assert suffix == ".csv" or ("for 24 seats" in body and stored[0].payload["usage"] == {"seats": 12})
    assert smtp.messages[0].rcpt_tos == ["ann@northwind.example"]
    reasons = [d.reason for d in session.exec(select(Decision).where(Decision.kind == "not_enrolled"))]
    assert any("signal.score at_least 50 (was 'high': not a number)" in reason for reason in reasons), reasons


PATTERNED = """\
name: patterned
trigger:
  signals: [intent_surge]
  filters:
    title: {matches: "^(a+)+$"}
steps:
  - kind: wait
    hours: 1
"""


def test_a_pathological_pattern_cannot_hang_the_engine(tmp_path, session, clock, settings, runtime) -> None:
    root = write_templates(tmp_path / "templates", PATTERNED, {})
    prepare(session, clock.now(), settings, root)
    add_prospect(session, clock.now(), "ann@northwind.example", title="a" * 5000 + "!")
    add_prospect(session, clock.now(), "bob@northwind.example", title="a" * 5000)
    fire(session, clock.now(), "intent_surge", email="ann@northwind.example")
    fire(session, clock.now(), "intent_surge", email="bob@northwind.example")
    tick(session, clock, runtime)
    reasons = [d.reason for d in session.exec(select(Decision).where(Decision.kind == "not_enrolled"))]
    assert len(reasons) == 1 and "title matches '^(a+)+$'" in reasons[0]
    assert session.exec(select(Touch)).all() == []
