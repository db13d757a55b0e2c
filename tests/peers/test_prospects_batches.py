"""``upsert_rows`` in batches: the same outcome as row by row (a person or a company twice in
a batch, a bad row among good ones, batch edges), and a batch the database refuses (a
concurrent writer stored one of its people first) stored again row by row, nothing lost."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sequencer.core.clock import SimulatedClock
from sequencer.core.db import session as new_session
from sequencer.core.models import Account, Prospect
from sequencer.intake.prospects import ProspectRow, upsert_rows


def people(session: Session) -> dict[str, Prospect]:
    session.expire_all()
    return {p.email: p for p in session.exec(select(Prospect))}


def test_a_batch_applies_its_rows_in_order_like_one_by_one(session: Session, clock: SimulatedClock) -> None:
    rows = [
        ProspectRow("f.csv:2", {"email": "a@northwind.example", "first_name": "Ann", "company": "Northwind"}),
        ProspectRow("f.csv:3", {"email": "b@northwind.example", "first_name": "Bo", "company": "Northwind Inc",
                                "employees": "1,200"}),
        ProspectRow("f.csv:4", {"email": "not-an-email", "first_name": "X"}),
        ProspectRow("f.csv:5", {"email": "A@Northwind.example", "title": "VP Sales", "timezone": "Europe/Berlin"}),
        ProspectRow("f.csv:6", {"email": "maya@gmail.com", "company": "Brightside"}),
        ProspectRow("f.csv:7", {"email": "li@gmail.com", "company": " brightside "}),
        ProspectRow("f.csv:8", {"email": "nobody@gmail.com", "country": "US"}),
    ]
    report = upsert_rows(session, clock.now(), rows, batch=4)  # edges inside the repeats and the company

    assert (report.stored, report.created) == (6, 5)
    assert [error.split(":")[1] for error in report.errors] == ["4"]
    assert [warning.split(":")[1] for warning in report.warnings] == ["2", "3", "6", "7", "8"]
    assert report.warnings[-1] == ("f.csv:8: nobody@gmail.com: US spans several time zones: add a state or a time "
                                   "zone column; sending windows will be in UTC")
    stored = people(session)
    ann = stored["a@northwind.example"]
    assert (ann.first_name, ann.title, ann.timezone, ann.timezone_source) == ("Ann", "VP Sales", "Europe/Berlin",
                                                                              "given")
    company = session.get(Account, ann.account_id)
    assert (company.domain, company.name, company.employees) == ("northwind.example", "Northwind Inc", 1200)
    assert stored["b@northwind.example"].account_id == ann.account_id
    assert stored["maya@gmail.com"].account_id == stored["li@gmail.com"].account_id is not None
    assert stored["nobody@gmail.com"].account_id is None
    assert len(session.exec(select(Account)).all()) == 2


def test_a_reimport_updates_and_creates_nothing(session: Session, clock: SimulatedClock) -> None:
    rows = [ProspectRow(f"f.csv:{n + 2}", {"email": f"p{n}@c{n % 3}.example", "title": "CEO"}) for n in range(7)]
    upsert_rows(session, clock.now(), rows, batch=3)
    again = upsert_rows(session, clock.now(), [ProspectRow(r.where, {**r.values, "title": "CTO"}) for r in rows],
                        batch=3)

    assert (again.stored, again.created, again.errors) == (7, 0, [])
    assert {p.title for p in people(session).values()} == {"CTO"}
    assert len(session.exec(select(Account)).all()) == 3


def test_a_batch_the_database_refuses_is_stored_row_by_row(engine: Engine, clock: SimulatedClock) -> None:
    """Another writer stores Maya after the batch looked her up: the batch's INSERT breaks the
    unique email, the savepoint undoes the batch, and row by row finds and updates her."""
    rows = [ProspectRow("f.csv:2", {"email": "maya@gmail.com", "first_name": "Maya"}),
            ProspectRow("f.csv:3", {"email": "li@gmail.com", "first_name": "Li"})]
    with new_session(engine) as session:
        done = []

        @event.listens_for(session, "before_flush")
        def other_writer(flushing, _context, _instances) -> None:
            if done or not any(isinstance(item, Prospect) for item in flushing.new):
                return
            done.append(True)
            with new_session(engine) as other:
                other.add(Prospect(email="maya@gmail.com", first_name="M.", created_at=clock.now(), custom={}))
                other.commit()

        report = upsert_rows(session, clock.now(), rows)

        assert done
        if engine.dialect.name == "sqlite":
            # SQLite's snapshot is older than the other writer's commit: no row of this
            # transaction may write, so each is refused by name and the import can be run again.
            assert (report.stored, report.created) == (0, 0)
            assert report.errors == [f"f.csv:{n}: the database refused the row: database is locked" for n in (2, 3)]
            assert people(session)["maya@gmail.com"].first_name == "M."
            report = upsert_rows(session, clock.now(), rows)
            assert (report.stored, report.created, report.errors) == (2, 1, [])
        else:
            assert (report.stored, report.created, report.errors) == (2, 1, [])
        stored = people(session)
        assert (stored["maya@gmail.com"].first_name, stored["li@gmail.com"].first_name) == ("Maya", "Li")
