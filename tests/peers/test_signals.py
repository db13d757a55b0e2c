"""Signals in (validate, dedupe, import) and acting on them (who gets enrolled and why not)."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from sequencer.core.clock import SimulatedClock
from sequencer.core.models import Account, Decision, Enrollment, Prospect, Signal
from sequencer.intake import enrolling, prospects, signals
from sequencer.intake.signals import SignalIn
from sequencer.sequences import triggers, versions
from suppression.store import add_entry, make_spec

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "message"),
    [
        (SignalIn(type="rumour", email="a@b.com"), "type: unknown signal type 'rumour' (known: "),
        (SignalIn(type="", email="a@b.com"), "type: unknown signal type ''"),
        (SignalIn(type="form_fill"), "email or domain: a signal must name a prospect"),
        (SignalIn(type="form_fill", email="not-an-email"), "email: invalid email 'not-an-email': no @"),
        (SignalIn(type="form_fill", email="a@@b.com"), "email: invalid email 'a@@b.com'"),
        (SignalIn(type="funding_round", domain="localhost"), "domain: invalid domain 'localhost'"),
        (SignalIn(type="form_fill", email="a@b.com", occurred_at=NOW + timedelta(minutes=5)),
         "occurred_at: 2026-11-30T15:05:00+00:00 is in the future"),
    ],
)
def test_validation_errors_name_the_field(signal: SignalIn, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        signals.validate(signal, NOW)

    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("raw", ["yesterday", "2026-13-01T00:00:00Z", "30/11/2026"])
def test_bad_iso_time_names_occurred_at(raw: str) -> None:
    with pytest.raises(ValueError, match=r"^occurred_at: not an ISO 8601 time"):
        SignalIn.from_mapping({"type": "form_fill", "email": "a@b.com", "occurred_at": raw}, "test")


def test_times_without_offset_are_utc() -> None:
    assert signals.parse_time("2026-11-30T10:00:00") == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert signals.parse_time("2026-11-30T10:00:00Z") == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert signals.parse_time("2026-11-30T10:00:00-05:00") == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def test_validate_normalises_and_derives_a_key() -> None:
    clean = signals.validate(SignalIn(type="form_fill", email=" Ann@Example.COM "), NOW)

    assert clean.email == "ann@example.com"
    assert clean.occurred_at == NOW
    assert clean.dedupe_key.startswith("auto:")


def test_from_mapping_puts_extra_fields_into_the_payload() -> None:
    signal = SignalIn.from_mapping(
        {"type": "intent_surge", "domain": "x.example", "topic": "sep", "score": 80, "empty": "",
         "payload": {"vendor": "bombora"}, "source": "bombora"}, source="import")

    assert signal.payload == {"vendor": "bombora", "topic": "sep", "score": 80}
    assert signal.source == "bombora"


# --- storing and dedupe ---------------------------------------------------------------


def all_signals(session: Session) -> list[Signal]:
    return list(session.exec(select(Signal).order_by(Signal.id)))


def test_same_dedupe_key_is_stored_once(session: Session, clock: SimulatedClock) -> None:
    first = signals.store(session, clock.now(), SignalIn("funding_round", domain="Northwind.example",
                                                         payload={"round": "B"}, dedupe_key="cb:nw"))
    again = signals.store(session, clock.now(), SignalIn("funding_round", domain="northwind.example",
                                                         payload={"round": "B (news)"}, dedupe_key="cb:nw"))

    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.signal.id == first.signal.id
    [row] = all_signals(session)
    assert (row.domain, row.payload, row.received_at) == ("northwind.example", {"round": "B"}, clock.now())


def test_identical_signals_share_a_derived_key(session: Session, clock: SimulatedClock) -> None:
    at = clock.now() - timedelta(hours=1)

    def send(payload: dict) -> signals.Stored:
        return signals.store(session, clock.now(), SignalIn("form_fill", email="ann@example.com",
                                                            payload=payload, occurred_at=at))

    first, same, different = send({"form": "demo"}), send({"form": "demo"}), send({"form": "contact"})

    assert (first.duplicate, same.duplicate, different.duplicate) == (False, True, False)
    assert len(all_signals(session)) == 2
    assert first.signal.domain == "example.com"


# --- importing files ------------------------------------------------------------------


def test_import_jsonl_reports_bad_lines_and_stores_good_ones(
    session: Session, clock: SimulatedClock, tmp_path: Path
) -> None:
    path = tmp_path / "signals.jsonl"
    path.write_text("\n".join([
        json.dumps({"type": "form_fill", "email": "ann@example.com", "form": "demo-request"}),
        "{not json",
        "",
        json.dumps(["a", "list"]),
        json.dumps({"type": "rumour", "email": "bob@example.com"}),
        json.dumps({"type": "intent_surge", "domain": "example.com", "dedupe_key": "k1"}),
        json.dumps({"type": "intent_surge", "domain": "example.com", "dedupe_key": "k1"}),
        json.dumps({"type": "form_fill", "email": "garbage"}),
        json.dumps({"type": "form_fill", "email": "c@example.com", "occurred_at": "2027-01-01T00:00:00Z"}),
        json.dumps({"type": "form_fill", "email": "d@example.com", "occurred_at": "noon"}),
    ]) + "\n")

    ids: list[int] = []
    report = signals.import_file(session, clock.now(), path, on_stored=ids.extend)
    stored, duplicates, errors = [session.get(Signal, i) for i in ids], report.duplicates, report.errors

    assert [s.email or s.domain for s in stored] == ["ann@example.com", "example.com"]
    assert duplicates == 1
    assert [e.split(": ", 1)[0] for e in errors] == [f"{path}:{n}" for n in (2, 4, 5, 8, 9, 10)]
    assert errors[0].startswith(f"{path}:2: not valid JSON: ")
    assert errors[1] == f"{path}:4: each line must be a JSON object"
    assert errors[2].startswith(f"{path}:5: type: unknown signal type 'rumour'")
    assert errors[3].startswith(f"{path}:8: email: invalid email 'garbage'")
    assert errors[4].startswith(f"{path}:9: occurred_at: 2027-01-01T00:00:00+00:00 is in the future")
    assert errors[5].startswith(f"{path}:10: occurred_at: not an ISO 8601 time: 'noon'")
    assert len(all_signals(session)) == 2
    assert stored[0].source == "import:signals.jsonl"
    assert stored[0].payload == {"form": "demo-request"}


def test_import_csv_reports_bad_lines_and_stores_good_ones(
    session: Session, clock: SimulatedClock, tmp_path: Path
) -> None:
    path = tmp_path / "signals.csv"
    path.write_text(textwrap.dedent("""\
        type,email,domain,occurred_at,topic,score
        intent_surge,,northwind.example,2026-11-30T09:00:00Z,sales engagement,87
        intent_surge,,northwind.example,2026-11-30T09:00:00Z,sales engagement,87,extra
        form_fill,not an email,,,,
        "form_fill","ann@example.com",,,"multi
        line topic",
        job_change,,,,,
    """))

    ids: list[int] = []
    report = signals.import_file(session, clock.now(), path, on_stored=ids.extend)
    stored, duplicates, errors = [session.get(Signal, i) for i in ids], report.duplicates, report.errors

    assert [(s.type, s.email or s.domain) for s in stored] == [
        ("intent_surge", "northwind.example"), ("form_fill", "ann@example.com")]
    assert stored[0].payload == {"topic": "sales engagement", "score": "87"}
    assert duplicates == 0
    assert errors == [
        f"{path}:3: more fields than the header has",
        f"{path}:4: email: invalid email 'not an email': no @",
        f"{path}:7: email or domain: a signal must name a prospect (email) or an account (domain)",
    ]


def test_csv_without_type_column(tmp_path: Path) -> None:
    path = tmp_path / "signals.csv"
    path.write_text("kind,email\nform_fill,a@example.com\n")

    [(line, problem)] = list(signals.read_file(path))

    assert (line, str(problem)) == (1, "CSV header must include a 'type' column")


def test_unknown_file_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "signals.xml"
    path.write_text("<signals/>")

    with pytest.raises(ValueError, match=r"unknown signal file type '\.xml'"):
        list(signals.read_file(path))


# --- acting on signals ----------------------------------------------------------------

SEQUENCE = """\
name: {name}
trigger:
  signals: [{signal}]
  account_scope: {scope}
  cooldown_days: {cooldown}
  filters: {filters}
steps:
  - kind: wait
    hours: 1
  - id: call
    kind: call
"""


def write_sequence(root: Path, name: str, signal: str, scope: str = "all", cooldown: int = 90,
                   filters: str = "{}") -> None:
    folder = root / "sequences"
    folder.mkdir(parents=True, exist_ok=True)
    (root / "steps").mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(SEQUENCE.format(name=name, signal=signal, scope=scope,
                                                         cooldown=cooldown, filters=filters))


def add_prospect(session: Session, now: datetime, email: str, **values: str) -> Prospect:
    prospect = prospects.upsert_prospect(session, now, email, values)
    session.commit()
    return prospect


@pytest.fixture
def northwind(session: Session, clock: SimulatedClock) -> list[Prospect]:
    """Three people at one account, in id order."""
    people = [
        add_prospect(session, clock.now(), "dana@northwind.example", title="VP Sales", company="Northwind",
                     employees="250"),
        add_prospect(session, clock.now(), "lee@northwind.example", title="Head of RevOps"),
        add_prospect(session, clock.now(), "chris@northwind.example", title="Software Engineer"),
    ]
    return people


def fire(session: Session, now: datetime, type_: str, **fields: object) -> enrolling.SignalOutcome:
    payload = fields.pop("payload", {})
    stored = signals.store(session, now, SignalIn(type_, payload=payload, **fields))
    assert not stored.duplicate
    return enrolling.process(session, now, stored.signal)


def enrolled_emails(session: Session, sequence: str) -> list[str]:
    rows = session.exec(
        select(Prospect.email).join(Enrollment, Enrollment.prospect_id == Prospect.id)
        .where(Enrollment.sequence_name == sequence).order_by(Enrollment.id)
    )
    return list(rows)


def not_enrolled(session: Session) -> list[tuple[str, str]]:
    rows = session.exec(
        select(Prospect.email, Decision.reason).join(Prospect, Prospect.id == Decision.prospect_id)
        .where(Decision.kind == "not_enrolled").order_by(Decision.id)
    )
    return [tuple(row) for row in rows]


def test_email_signal_creates_an_unknown_prospect_from_the_payload(
    session: Session, clock: SimulatedClock, tmp_path: Path
) -> None:
    write_sequence(tmp_path, "inbound", "form_fill")
    versions.sync(session, clock.now(), tmp_path)

    outcome = fire(session, clock.now(), "form_fill", email="Priya.Nair@Brightside.example", payload={
        "first_name": "Priya", "title": "Head of Sales", "company": "Brightside Health",
        "timezone": "America/Los_Angeles", "country": "us", "form": "demo-request"})

    prospect = session.exec(select(Prospect)).one()
    account = session.get(Account, prospect.account_id)
    assert (prospect.email, prospect.first_name, prospect.title, prospect.timezone, prospect.country) == (
        "priya.nair@brightside.example", "Priya", "Head of Sales", "America/Los_Angeles", "US")
    assert prospect.custom == {"form": "demo-request"}
    assert (account.domain, account.name) == ("brightside.example", "Brightside Health")
    assert len(outcome.enrolled) == 1
    assert enrolled_emails(session, "inbound") == ["priya.nair@brightside.example"]
    signal = session.exec(select(Signal)).one()
    assert (signal.prospect_id, signal.account_id, signal.processed_at) == (prospect.id, account.id, clock.now())
    kinds = [d.kind for d in session.exec(select(Decision).order_by(Decision.id))]
    assert kinds[:2] == ["prospect_created", "enrolled"]


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("all", ["dana@northwind.example", "lee@northwind.example", "chris@northwind.example"]),
        ("first", ["dana@northwind.example"]),
        ("none", []),
    ],
)
def test_account_signal_reaches_prospects_by_account_scope(
    session: Session, clock: SimulatedClock, tmp_path: Path, northwind: list[Prospect], scope: str,
    expected: list[str],
) -> None:
    write_sequence(tmp_path, "funding", "funding_round", scope=scope)
    write_sequence(tmp_path, "other", "hiring")
    versions.sync(session, clock.now(), tmp_path)

    outcome = fire(session, clock.now(), "funding_round", domain="NORTHWIND.example")

    assert enrolled_emails(session, "funding") == expected
    assert enrolled_emails(session, "other") == []
    assert len(outcome.enrolled) == len(expected)


def test_first_scope_skips_prospects_that_fail_the_filters(
    session: Session, clock: SimulatedClock, tmp_path: Path, northwind: list[Prospect]
) -> None:
    write_sequence(tmp_path, "funding", "funding_round", scope="first",
                   filters="{title: {matches: '(?i)revops|engineer'}}")
    versions.sync(session, clock.now(), tmp_path)

    fire(session, clock.now(), "funding_round", domain="northwind.example")

    assert enrolled_emails(session, "funding") == ["lee@northwind.example"]


def test_account_signal_for_an_unknown_account_enrolls_nobody(
    session: Session, clock: SimulatedClock, tmp_path: Path, northwind: list[Prospect]
) -> None:
    write_sequence(tmp_path, "funding", "funding_round")
    versions.sync(session, clock.now(), tmp_path)

    outcome = fire(session, clock.now(), "funding_round", domain="elsewhere.example")

    assert outcome.enrolled == []
    assert session.exec(select(Signal)).one().processed_at == clock.now()


@pytest.mark.parametrize(
    ("field", "spec", "context", "passes"),
    [
        ("title", {"matches": r"(?i)\bvp\b"}, {"prospect": {"title": "VP Sales"}}, True),
        ("title", {"matches": r"(?i)\bvp\b"}, {"prospect": {"title": "Head of RevOps"}}, False),
        ("account.employees", {"between": [20, 2000]}, {"account": {"employees": 20}}, True),
        ("account.employees", {"between": [20, 2000]}, {"account": {"employees": 2001}}, False),
        ("account.employees", {"between": [20, 2000]}, {"account": {}}, False),
        ("signal.form", {"in": ["demo-request"]}, {"signal": {"form": "Demo-Request"}}, True),
        ("signal.form", {"in": ["demo-request"]}, {"signal": {"form": "newsletter"}}, False),
        ("signal.score", {"at_least": 80}, {"signal": {"score": "80"}}, True),
        ("signal.score", {"at_least": 80}, {"signal": {"score": 79.5}}, False),
        ("signal.score", {"at_least": 80}, {"signal": {"score": "high"}}, False),
        ("signal.score", {"at_most": 80}, {"signal": {"score": 12}}, True),
        ("signal.previous_company", {"exists": True}, {"signal": {"previous_company": "Acme"}}, True),
        ("signal.previous_company", {"exists": True}, {"signal": {"previous_company": ""}}, False),
        ("signal.previous_company", {"exists": False}, {"signal": {}}, True),
        ("account.industry", {"equals": "Software"}, {"account": {"industry": "software"}}, True),
    ],
)
def test_filter_operators(field: str, spec: dict, context: dict, passes: bool) -> None:
    assert triggers.validate_filter(field, spec) == []

    failed = triggers.failed_filters({field: spec}, context)

    assert (failed == []) is passes


FILTERS = """{
    title: {matches: '(?i)\\bvp\\b'},
    account.employees: {between: [100, 500]},
    signal.form: {in: [demo-request, contact-sales]},
    signal.score: {at_least: 80},
    signal.previous_company: {exists: true}}"""


def test_failed_filters_are_recorded_as_the_not_enrolled_reason(
    session: Session, clock: SimulatedClock, tmp_path: Path, northwind: list[Prospect]
) -> None:
    write_sequence(tmp_path, "funding", "funding_round", filters=FILTERS)
    versions.sync(session, clock.now(), tmp_path)

    outcome = fire(session, clock.now(), "funding_round", domain="northwind.example",
                   payload={"form": "newsletter", "score": 79})

    assert outcome.enrolled == []
    refused = dict(not_enrolled(session))
    assert refused["dana@northwind.example"] == (
        "filters not met: signal.form in ['demo-request', 'contact-sales'] (was 'newsletter'); "
        "signal.score at_least 80 (was 79); signal.previous_company exists True (was None)"
    )
    assert refused["lee@northwind.example"].startswith(
        "filters not met: title matches '(?i)\\\\bvp\\\\b' (was 'Head of RevOps'); signal.form in")
    assert len(refused) == 3 == len(outcome.skipped)
    decision = session.exec(select(Decision).where(Decision.kind == "not_enrolled")).first()
    assert (decision.detail, decision.signal_id) == ({"sequence": "funding"}, outcome.signal_id)


def test_signal_that_meets_every_filter_enrolls(
    session: Session, clock: SimulatedClock, tmp_path: Path, northwind: list[Prospect]
) -> None:
    write_sequence(tmp_path, "funding", "funding_round", filters=FILTERS)
    versions.sync(session, clock.now(), tmp_path)

    fire(session, clock.now(), "funding_round", domain="northwind.example",
         payload={"form": "Contact-Sales", "score": "91", "previous_company": "Acme"})

    assert enrolled_emails(session, "funding") == ["dana@northwind.example"]
    assert [email for email, _ in not_enrolled(session)] == ["lee@northwind.example", "chris@northwind.example"]


def test_cooldown_prevents_re_enrollment(
    session: Session, clock: SimulatedClock, tmp_path: Path
) -> None:
    write_sequence(tmp_path, "inbound", "form_fill", cooldown=30)
    versions.sync(session, clock.now(), tmp_path)
    fire(session, clock.now(), "form_fill", email="ann@example.com", payload={"n": 1})

    # while the first enrollment runs
    clock.advance(timedelta(days=1))
    fire(session, clock.now(), "form_fill", email="ann@example.com", payload={"n": 2})
    # after it stopped, but inside the cool-down
    enrollment = session.exec(select(Enrollment)).one()
    enrollment.state, enrollment.reason = "stopped", "replied"
    session.add(enrollment)
    session.commit()
    clock.advance(timedelta(days=10))
    fire(session, clock.now(), "form_fill", email="ann@example.com", payload={"n": 3})
    # after the cool-down
    clock.advance(timedelta(days=20))
    outcome = fire(session, clock.now(), "form_fill", email="ann@example.com", payload={"n": 4})

    assert [r for _, r in not_enrolled(session)] == [
        "already in inbound",
        "re-enrollment cool-down: last enrolled 2026-11-30, cool-down 30 days",
    ]
    assert len(outcome.enrolled) == 1
    assert len(enrolled_emails(session, "inbound")) == 2


def test_suppressed_prospect_is_not_enrolled(session: Session, clock: SimulatedClock, tmp_path: Path) -> None:
    write_sequence(tmp_path, "inbound", "form_fill")
    versions.sync(session, clock.now(), tmp_path)
    add_entry(session, clock.now(), make_spec("x@y.com", reason="manual"))

    outcome = fire(session, clock.now(), "form_fill", email="X@Y.com")

    assert outcome.enrolled == []
    assert not_enrolled(session) == [("x@y.com", "suppressed: manual (email x@y.com)")]
    assert enrolled_emails(session, "inbound") == []


def test_suppressed_domain_blocks_everyone_at_the_account(
    session: Session, clock: SimulatedClock, tmp_path: Path, northwind: list[Prospect]
) -> None:
    write_sequence(tmp_path, "funding", "funding_round")
    versions.sync(session, clock.now(), tmp_path)
    add_entry(session, clock.now(), make_spec("northwind.example", reason="customer"))

    fire(session, clock.now(), "funding_round", domain="northwind.example")

    assert enrolled_emails(session, "funding") == []
    assert {r for _, r in not_enrolled(session)} == {"suppressed: customer (domain northwind.example)"}


def _load_nurture(session: Session, clock: SimulatedClock, root: Path) -> None:
    """A form fill enrolls into a step waiting up to 5 business days for an intent surge."""
    (root / "sequences").mkdir()
    (root / "sequences" / "nurture.yaml").write_text(textwrap.dedent("""\
        name: nurture
        trigger: {signals: [form_fill]}
        steps:
          - kind: wait_for_signal
            signal: intent_surge
            timeout: {business_days: 5}
          - kind: call
    """))
    versions.sync(session, clock.now(), root)


def test_signal_wakes_a_waiting_step(session: Session, clock: SimulatedClock, tmp_path: Path) -> None:
    _load_nurture(session, clock, tmp_path)
    fire(session, clock.now(), "form_fill", email="ann@example.com")
    enrollment = session.exec(select(Enrollment)).one()
    assert enrollment.waiting_for == "intent_surge"
    assert enrollment.next_due_at > clock.now() + timedelta(days=5)

    clock.advance(timedelta(hours=2))
    outcome = fire(session, clock.now(), "intent_surge", domain="example.com")

    session.refresh(enrollment)
    assert outcome.woken == [enrollment.id]
    assert (enrollment.waiting_for, enrollment.next_due_at) == ("", clock.now())


def test_a_signal_whose_payload_cannot_make_a_prospect_is_refused_not_stuck(
    session: Session, clock: SimulatedClock
) -> None:
    stored = signals.store(
        session, clock.now(), SignalIn("form_fill", email="a@b.example", payload={"timezone": "Mars/Olympus"})
    )

    outcome = enrolling.process(session, clock.now(), stored.signal)

    assert outcome.enrolled == [] and "unknown time zone" in outcome.skipped[0]
    assert signals.unprocessed(session) == []
    assert session.exec(select(Prospect)).all() == []
    refused = session.exec(select(Decision).where(Decision.kind == "signal_refused")).one()
    assert "Mars/Olympus" in refused.reason


def test_racing_processes_enroll_a_prospect_once(session: Session, clock: SimulatedClock, tmp_path: Path,
                                                 db_url: str) -> None:
    import threading

    from sequencer.core.db import make_engine
    from sequencer.core.db import session as new_session

    write_sequence(tmp_path, "racing", "intent_surge")
    versions.sync(session, clock.now(), tmp_path)
    add_prospect(session, clock.now(), "dana@northwind.example")
    stored = [signals.store(session, clock.now(), SignalIn("intent_surge", email="dana@northwind.example",
                                                            payload={"n": i})).signal.id for i in range(3)]
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def worker(signal_id: int) -> None:
        engine = make_engine(db_url)
        try:
            with new_session(engine) as own:
                signal = own.get(Signal, signal_id)
                barrier.wait()
                enrolling.process(own, clock.now(), signal)
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker, args=(signal_id,)) for signal_id in stored * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    session.expire_all()
    assert enrolled_emails(session, "racing") == ["dana@northwind.example"]
    assert signals.unprocessed(session) == []


def test_a_batch_processes_its_signals_in_order_in_one_go(session: Session, clock: SimulatedClock,
                                                          tmp_path: Path) -> None:
    write_sequence(tmp_path, "batch", "intent_surge")
    versions.sync(session, clock.now(), tmp_path)
    for name in ("ann", "bob"):
        add_prospect(session, clock.now(), f"{name}@northwind.example")
    emails = ["ann@northwind.example", "bob@northwind.example", "ann@northwind.example", "cy@else.example"]
    batch = [signals.store(session, clock.now(), SignalIn("intent_surge", email=email, payload={"n": i})).signal
             for i, email in enumerate(emails)]

    outcomes = enrolling.process_batch(session, clock.now(), batch)

    assert [len(o.enrolled) for o in outcomes] == [1, 1, 0, 1]
    assert outcomes[2].skipped == ["ann@northwind.example / batch: already in batch"]  # the first one counts
    assert enrolled_emails(session, "batch") == ["ann@northwind.example", "bob@northwind.example",
                                                 "cy@else.example"]
    assert signals.unprocessed(session) == []


def test_a_later_signal_in_a_batch_wakes_a_step_an_earlier_one_enrolled_into(
    session: Session, clock: SimulatedClock, tmp_path: Path
) -> None:
    _load_nurture(session, clock, tmp_path)
    batch = [signals.store(session, clock.now(), SignalIn(kind, email="ann@example.com")).signal
             for kind in ("form_fill", "intent_surge")]

    outcomes = enrolling.process_batch(session, clock.now(), batch)

    enrollment = session.exec(select(Enrollment)).one()
    assert outcomes[0].enrolled == [enrollment.id] and outcomes[1].woken == [enrollment.id]
    assert (enrollment.waiting_for, enrollment.next_due_at, enrollment.version) == ("", clock.now(), 1)


def test_a_batch_with_a_signal_processed_elsewhere_is_redone_one_by_one(
    session: Session, clock: SimulatedClock, tmp_path: Path, db_url: str
) -> None:
    from sequencer.core.db import make_engine
    from sequencer.core.db import session as new_session

    write_sequence(tmp_path, "batch", "intent_surge")
    versions.sync(session, clock.now(), tmp_path)
    for name in ("ann", "bob"):
        add_prospect(session, clock.now(), f"{name}@northwind.example")
    batch = [signals.store(session, clock.now(), SignalIn("intent_surge", email=f"{name}@northwind.example")).signal
             for name in ("ann", "bob")]
    other = make_engine(db_url)  # another worker takes bob's signal after this batch read it
    with new_session(other) as elsewhere:
        enrolling.process(elsewhere, clock.now(), elsewhere.get(Signal, batch[1].id))
    other.dispose()

    outcomes = enrolling.process_batch(session, clock.now(), batch)

    assert outcomes[0].enrolled and outcomes[1].skipped == ["already processed"]
    session.expire_all()
    assert sorted(enrolled_emails(session, "batch")) == ["ann@northwind.example", "bob@northwind.example"]
    assert len(session.exec(select(Enrollment)).all()) == 2  # bob once, by the other worker


def test_an_enrollment_created_in_a_rolled_back_transaction_leaves_nothing_behind(
    session: Session, clock: SimulatedClock, tmp_path: Path
) -> None:
    from sequencer.enrollments import lifecycle

    write_sequence(tmp_path, "solo", "intent_surge")
    versions.sync(session, clock.now(), tmp_path)
    prospect = add_prospect(session, clock.now(), "ann@northwind.example")
    version = versions.current_versions(session)[0]
    first = lifecycle.create(session, clock.now(), prospect, version, None)
    assert session.get(Enrollment, first.id).current_step == 0  # stored in the open transaction
    session.rollback()

    assert session.exec(select(Enrollment)).all() == []
    again = lifecycle.create(session, clock.now(), prospect, version, None)  # the database may reuse the id
    session.commit()
    assert [(e.id, e.state) for e in session.exec(select(Enrollment)).all()] == [(again.id, "active")]


def test_a_batch_makes_its_new_people_together_from_their_first_signal(
    session: Session, clock: SimulatedClock, tmp_path: Path
) -> None:
    write_sequence(tmp_path, "batch", "intent_surge")
    versions.sync(session, clock.now(), tmp_path)
    given = [("ann@newco.example", "Ann"), ("bob@newco.example", "Bob"), ("ann@newco.example", "Annie")]
    batch = [signals.store(session, clock.now(), SignalIn("intent_surge", email=email,
                                                          payload={"first_name": name})).signal
             for email, name in given]

    outcomes = enrolling.process_batch(session, clock.now(), batch)

    people = {p.email: p for p in session.exec(select(Prospect))}
    assert {email: p.first_name for email, p in people.items()} == {"ann@newco.example": "Ann",
                                                                    "bob@newco.example": "Bob"}
    assert len({p.account_id for p in people.values()}) == 1  # one new company, one account
    assert session.exec(select(Account.domain)).all() == ["newco.example"]
    created = session.exec(select(Decision.prospect_id, Decision.signal_id)
                           .where(Decision.kind == "prospect_created").order_by(Decision.signal_id)).all()
    assert created == [(people["ann@newco.example"].id, batch[0].id), (people["bob@newco.example"].id, batch[1].id)]
    assert [len(o.enrolled) for o in outcomes] == [1, 1, 0]
