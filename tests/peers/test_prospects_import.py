"""Prospect CSV import: good rows land, bad rows are refused by CSV line, re-import updates."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sequencer.core.clock import SimulatedClock
from sequencer.core.db import session as new_session
from sequencer.core.models import Account, Prospect
from sequencer.intake.prospect_import import import_csv, import_file
from sequencer.intake.prospect_values import clean
from sequencer.intake.prospects import count_rows

HEADER = "email,first_name,last_name,title,company,industry,employees,timezone,country,favourite_tool\n"


def write_csv(tmp_path: Path, body: str, name: str = "prospects.csv") -> Path:
    """Write ``body`` with each line's indentation removed."""
    path = tmp_path / name
    path.write_text("".join(line.lstrip() + "\n" for line in body.splitlines()))
    return path


def by_email(session: Session) -> dict[str, Prospect]:
    return {p.email: p for p in session.exec(select(Prospect))}


def test_good_rows_are_stored_with_their_account(session: Session, clock: SimulatedClock, tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER + """\
        Dana.Reyes@Northwind.example,Dana,Reyes,VP Sales,Northwind Analytics,software,250,America/New_York,us,Outreach
        lee@northwind.example,,Lee,Head of RevOps,,,,America/Chicago,US,
    """)

    report = import_csv(session, clock.now(), path)

    assert (report.stored, report.errors) == (2, [])
    people = by_email(session)
    dana = people["dana.reyes@northwind.example"]
    assert (dana.first_name, dana.last_name, dana.title, dana.timezone, dana.country) == (
        "Dana", "Reyes", "VP Sales", "America/New_York", "US")
    assert dana.created_at == clock.now()
    lee = people["lee@northwind.example"]
    assert (lee.first_name, lee.timezone) == ("", "America/Chicago")
    [account] = session.exec(select(Account)).all()
    assert (account.domain, account.name, account.industry, account.employees) == (
        "northwind.example", "Northwind Analytics", "software", 250)
    assert dana.account_id == lee.account_id == account.id


def test_custom_columns_land_in_custom(session: Session, clock: SimulatedClock, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "email,first_name,favourite_tool,shoe size\nann@example.com,Ann,Outreach,38\n")

    import_csv(session, clock.now(), path)

    assert by_email(session)["ann@example.com"].custom == {"favourite_tool": "Outreach", "shoe_size": "38"}


def test_bad_rows_are_reported_with_their_line_and_good_rows_kept(
    session: Session, clock: SimulatedClock, tmp_path: Path, engine: Engine
) -> None:
    path = write_csv(tmp_path, HEADER + """\
        good.one@example.com,Good,One,CEO,Example,,10,Europe/Berlin,DE,
        not-an-email,Bad,Email,,,,,,,
        bad.zone@example.com,Bad,Zone,,,,,Mars/Olympus,,
        bad.country@example.com,Bad,Country,,,,,,XQ,
        bad.size@example.com,Bad,Size,,Example,,lots,,,
        too.many@example.com,Too,Many,,,,,,,,surplus
        good.two@example.com,Good,Two,,,,,,GB,
    """)

    report = import_csv(session, clock.now(), path)

    assert report.stored == 2
    assert report.errors == [
        f"{path}:3: email: invalid email 'not-an-email': no @",
        f"{path}:4: timezone: unknown time zone 'Mars/Olympus' (write an IANA name like 'America/New_York')",
        f"{path}:5: country: unknown country 'XQ' (write a name like 'Germany' or a code like 'DE')",
        f"{path}:6: employees: not a whole number: 'lots'",
        f"{path}:7: more fields than the header has",
    ]
    with new_session(engine) as fresh:
        assert sorted(by_email(fresh)) == ["good.one@example.com", "good.two@example.com"]
        assert fresh.exec(select(Account)).one().employees == 10


def test_a_refused_row_leaves_no_half_written_account(
    session: Session, clock: SimulatedClock, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, HEADER + "new@fresh.example,,,,Fresh Co,,,Nowhere/Land,,\n")

    report = import_csv(session, clock.now(), path)

    assert report.stored == 0
    assert session.exec(select(Account)).all() == []


def test_reimport_updates_instead_of_duplicating(
    session: Session, clock: SimulatedClock, tmp_path: Path
) -> None:
    first = write_csv(tmp_path, HEADER + "ann@example.com,Ann,Lee,SDR,Example,,50,Europe/London,GB,Outreach\n",
                      "first.csv")
    second = write_csv(tmp_path, "email,title,employees,favourite_tool,team\nANN@example.com,VP Sales,75,,EMEA\n",
                       "second.csv")
    import_csv(session, clock.now(), first)

    report = import_csv(session, clock.now(), second)

    assert report.stored == 1
    [ann] = session.exec(select(Prospect)).all()
    assert (ann.first_name, ann.title, ann.timezone) == ("Ann", "VP Sales", "Europe/London")
    assert ann.custom == {"favourite_tool": "Outreach", "team": "EMEA"}
    [account] = session.exec(select(Account)).all()
    assert (account.name, account.employees) == ("Example", 75)


def test_accounts_are_created_by_domain(session: Session, clock: SimulatedClock, tmp_path: Path) -> None:
    path = write_csv(tmp_path, """\
        email,domain,company
        a@one.example,,One
        b@one.example,,
        c@gmail.example,Three.Example,Three
        d@two.example,,
    """)

    import_csv(session, clock.now(), path)

    accounts = {a.domain: a for a in session.exec(select(Account))}
    assert sorted(accounts) == ["one.example", "three.example", "two.example"]
    assert accounts["two.example"].name == "two.example"
    people = by_email(session)
    assert people["a@one.example"].account_id == people["b@one.example"].account_id == accounts["one.example"].id
    assert people["c@gmail.example"].account_id == accounts["three.example"].id


def test_bad_domain_column_is_named(session: Session, clock: SimulatedClock, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "email,domain\na@one.example,not a domain\n")

    report = import_csv(session, clock.now(), path)

    assert report.errors == [f"{path}:2: domain: invalid domain 'not a domain': needs at least two labels"]


def test_header_without_email_is_refused(session: Session, clock: SimulatedClock, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "mail,name\na@b.com,A\n")

    report = import_csv(session, clock.now(), path)

    assert report.stored == 0
    assert report.errors[0].startswith(f"{path}:1: no email column (the map reads it from: email, email address")


def test_small_batches_commit_as_they_go(
    session: Session, clock: SimulatedClock, tmp_path: Path, engine: Engine
) -> None:
    rows = "".join(f"p{n}@example.com,P{n}\n" for n in range(7))
    path = write_csv(tmp_path, "email,first_name\n" + rows)
    seen: list[int] = []

    report = import_file(session, clock.now(), path, progress=seen.append, batch=3).report

    assert report.stored == 7 and sum(seen) == 7 == count_rows(path)
    with new_session(engine) as fresh:
        assert len(by_email(fresh)) == 7


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"timezone": "Europe/Atlantis"}, "timezone: unknown time zone 'Europe/Atlantis' (write an IANA name like "
                                          "'America/New_York')"),
        ({"country": "zz"}, "country: unknown country 'zz' (write a name like 'Germany' or a code like 'DE')"),
        ({"employees": "12.5"}, "employees: not a whole number: '12.5'"),
    ],
)
def test_clean_names_the_bad_field(values: dict, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        clean(values)

    assert str(raised.value) == message


def test_free_mail_prospects_share_no_account(session, clock) -> None:
    from sequencer.intake.prospects import upsert_prospect

    first = upsert_prospect(session, clock.now(), "a.person@gmail.com", {"first_name": "A"})
    second = upsert_prospect(session, clock.now(), "b.person@gmail.com", {"first_name": "B"})
    session.commit()

    assert first.account_id is None and second.account_id is None
    assert session.exec(select(Account).where(Account.domain == "gmail.com")).first() is None
