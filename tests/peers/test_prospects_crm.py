"""CRM exports through the CLI, as an SDR runs them: presets, dry runs, re-imports, free-mail
people with a company, time zones inferred or warned about, and list / show / explain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from sequencer.app.cli import app
from sequencer.core.models import Account, Prospect
from sequencer.intake import prospects as prospect_store
from sequencer.intake.prospects import ProspectRow, upsert_rows

CRM = Path(__file__).parent.parent / "fixtures" / "crm"


@pytest.fixture
def shell(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI pointed at this test's database, in an empty folder holding copies of the exports."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQUENCER_CONFIG", raising=False)
    monkeypatch.setenv("SEQUENCER_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "400")  # rich must not fold long paths
    for path in CRM.iterdir():
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def stored(session: Session) -> dict[str, Prospect]:
    session.expire_all()
    return {p.email: p for p in session.exec(select(Prospect))}


def account_of(session: Session, prospect: Prospect) -> Account:
    return session.get(Account, prospect.account_id)


def test_a_hubspot_export_with_the_preset(shell: Path, session: Session) -> None:
    result = cli("prospects", "import", "hubspot_contacts.csv", "--preset", "hubspot")

    assert result.exit_code == 1, result.output  # two rows refused
    assert "hubspot_contacts.csv:8: Email (email): invalid email 'not-an-email': no @" in result.output
    assert "hubspot_contacts.csv:9: Number of Employees (employees): not a whole number: 'lots'" in result.output
    assert ("hubspot_contacts.csv:6: chris@fabrikam.example: US spans several time zones: add a state or a time "
            "zone column; sending windows will be in UTC") in result.output
    unmapped = "not imported (unmapped columns): Record ID, Lifecycle Stage, Lead Status, City, Create Date"
    assert unmapped in result.output
    assert "6 prospect(s) stored, 2 row(s) refused (6 new, 1 warning)" in result.output
    people = stored(session)
    dana = people["dana.reyes@northwind.example"]
    assert (dana.first_name, dana.title, dana.country, dana.region, dana.timezone, dana.timezone_source) == (
        "Dana", "VP Sales", "US", "US-NY", "America/New_York", "given")
    assert (dana.phone, dana.owner, dana.custom) == ("+1 212 555 0100", "sam.sdr@acme.example", {})
    northwind = account_of(session, dana)
    assert (northwind.domain, northwind.name, northwind.employees) == ("northwind.example", "Northwind Analytics", 1200)
    lee = people["lee.park@northwind.example"]
    assert (lee.timezone, lee.timezone_source, lee.account_id) == ("America/Chicago", "inferred", northwind.id)
    markus = people["markus.becker@lumen.example"]
    assert (markus.country, markus.timezone, markus.timezone_source) == ("DE", "Europe/Berlin", "inferred")
    chris = people["chris@fabrikam.example"]
    assert (chris.timezone, chris.timezone_source) == ("UTC", "none")
    assert "not-an-email" not in people and "ana.lima@saopaulo-tech.example" not in people


def test_a_free_mail_person_keeps_the_company(shell: Path, session: Session) -> None:
    cli("prospects", "import", "hubspot_contacts.csv", "--preset", "hubspot")

    maya = stored(session)["maya.singh.pm@gmail.com"]
    account = account_of(session, maya)

    assert (account.name, account.domain, account.industry, account.employees) == (
        "Brightside Health", None, "Hospital & Health Care", 45)
    assert session.exec(select(Account).where(Account.domain == "gmail.com")).first() is None


def test_free_mail_people_of_different_companies_are_not_colleagues(session: Session, clock) -> None:
    report = upsert_rows(session, clock.now(), [
        ProspectRow("a", {"email": "one@gmail.com", "company": "Acme"}),
        ProspectRow("b", {"email": "two@gmail.com", "company": "  ACME "}),
        ProspectRow("c", {"email": "three@gmail.com", "company": "Globex"}),
        ProspectRow("d", {"email": "four@gmail.com"}),
        ProspectRow("e", {"email": "five@gmail.com", "company": "Initech", "website": "https://initech.example"}),
    ])

    assert (report.stored, report.errors) == (5, [])
    people = stored(session)
    assert people["one@gmail.com"].account_id == people["two@gmail.com"].account_id
    assert people["three@gmail.com"].account_id not in (None, people["one@gmail.com"].account_id)
    assert people["four@gmail.com"].account_id is None
    assert account_of(session, people["five@gmail.com"]).domain == "initech.example"


def test_reimporting_an_export_changes_nothing(shell: Path, session: Session) -> None:
    cli("prospects", "import", "hubspot_contacts.csv", "--preset", "hubspot")
    before = {email: prospect_store.as_dict(p, None) for email, p in stored(session).items()}
    accounts = len(session.exec(select(Account)).all())

    result = cli("prospects", "import", "hubspot_contacts_bom.csv", "--preset", "hubspot")

    assert "6 prospect(s) stored, 2 row(s) refused (0 new, 1 warning)" in result.output
    assert {email: prospect_store.as_dict(p, None) for email, p in stored(session).items()} == before
    assert len(session.exec(select(Account)).all()) == accounts


def test_a_given_zone_is_not_replaced_by_an_inferred_one(session: Session, clock) -> None:
    upsert_rows(session, clock.now(), [ProspectRow("1", {"email": "a@x.example", "timezone": "Europe/Paris"})])
    upsert_rows(session, clock.now(), [ProspectRow("2", {"email": "a@x.example", "country": "Germany"})])
    upsert_rows(session, clock.now(), [ProspectRow("3", {"email": "b@x.example", "country": "US"})])
    report = upsert_rows(session, clock.now(), [ProspectRow("4", {"email": "b@x.example", "region": "Oregon"})])

    people = stored(session)
    assert (people["a@x.example"].timezone, people["a@x.example"].timezone_source) == ("Europe/Paris", "given")
    assert (people["b@x.example"].timezone, people["b@x.example"].timezone_source) == ("America/Los_Angeles",
                                                                                        "inferred")
    assert report.warnings == []


def test_a_dry_run_shows_the_mapping_and_stores_nothing(shell: Path, session: Session) -> None:
    result = cli("prospects", "import", "apollo_people.csv", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "Person Linkedin Url" not in result.output.split("unmapped")[0]  # generic does not map it
    assert "hint: --preset apollo maps" in result.output
    assert "2 prospect(s) would be stored, 0 row(s) refused" in result.output
    assert stored(session) == {}

    result = cli("prospects", "import", "apollo_people.csv", "--preset", "apollo", "--dry-run",
                 "--custom-fields", "Seniority,Technologies")

    assert "│ Person Linkedin Url" in result.output and "custom: seniority" in result.output
    assert "hint:" not in result.output
    line = next(line for line in result.output.splitlines() if line.startswith("apollo_people.csv:2: "))
    row = json.loads(line.split(": ", 1)[1])
    assert row["linkedin_url"] == "http://www.linkedin.com/in/kimtanaka"
    assert (row["region"], row["timezone"], row["timezone_source"]) == ("US-IL", "America/Chicago", "inferred")
    assert row["account"] == {"key": "domain: contoso.example", "name": "Contoso", "industry": "retail",
                              "employees": 2500}
    assert row["custom"] == {"seniority": "Head", "technologies": "Salesforce, HubSpot"}
    assert stored(session) == {}


@pytest.mark.parametrize(
    ("file", "preset", "email", "expected"),
    [
        ("salesforce_leads.csv", "salesforce", "jean@erable.example",
         {"country": "CA", "region": "CA-QC", "timezone": "America/Toronto", "owner": "Alex Morgan"}),
        ("salesforce_leads_utf16.csv", "salesforce", "priya@brightside.example",
         {"phone": "+1 415 555 0199", "timezone": "America/Los_Angeles", "timezone_source": "given"}),
        ("salesforce_leads.csv", "salesforce", "tom.baker@kestrel.example",
         {"region": "AU-NSW", "timezone": "Australia/Sydney", "timezone_source": "inferred"}),
        ("apollo_people.csv", "apollo", "rafael@tierra.example",
         {"last_name": "Gómez", "region": "MX-JAL", "timezone": "America/Mexico_City", "phone": "+52 55 5555 0101"}),
        ("pipedrive_people_semicolon.csv", "pipedrive", "jan@molen.example",
         {"first_name": "Jan", "last_name": "de Vries", "title": "Inkoper", "timezone_source": "none"}),
        ("excel_cp1252.csv", "", "juergen.mueller@kraft.example",
         {"first_name": "Jürgen", "country": "DE", "timezone": "Europe/Berlin"}),
    ],
)
def test_each_crm_export(shell: Path, session: Session, file: str, preset: str, email: str, expected: dict) -> None:
    result = cli("prospects", "import", file, *(["--preset", preset] if preset else []))

    assert result.exit_code == 0, result.output
    prospect = stored(session)[email]
    assert {key: getattr(prospect, key) for key in expected} == expected


def test_account_figures_from_a_german_export(shell: Path, session: Session) -> None:
    cli("prospects", "import", "salesforce_leads.csv", "--preset", "salesforce")

    jean = stored(session)["jean@erable.example"]
    assert (account_of(session, jean).employees, account_of(session, jean).domain) == (1200, "erable.example")


def test_a_map_file(shell: Path, session: Session) -> None:
    (shell / "ours.csv").write_text("Work Email,Given,Tier\nkim@contoso.example,Kim,A\n")
    (shell / "map.yaml").write_text("columns:\n  email: Work Email\n  first_name: Given\ncustom:\n  tier: Tier\n")

    result = cli("prospects", "import", "ours.csv", "--map", "map.yaml")

    assert result.exit_code == 0, result.output
    kim = stored(session)["kim@contoso.example"]
    assert (kim.first_name, kim.custom) == ("Kim", {"tier": "A"})


def test_a_bad_map_or_preset_is_refused_before_reading(shell: Path, session: Session) -> None:
    (shell / "map.yaml").write_text("columns:\n  emial: Email\n")

    bad_map = cli("prospects", "import", "hubspot_contacts.csv", "--map", "map.yaml")
    bad_preset = cli("prospects", "import", "hubspot_contacts.csv", "--preset", "zoho")

    assert bad_map.exit_code == 1 and "map.yaml:2: unknown field 'emial'" in bad_map.output
    assert bad_preset.exit_code == 1 and "unknown preset 'zoho'" in bad_preset.output
    assert stored(session) == {}


def test_declared_custom_fields_are_imported(shell: Path, session: Session) -> None:
    (shell / "sequencer.toml").write_text('[prospects]\ncustom_fields = ["lifecycle_stage"]\n')

    cli("prospects", "import", "hubspot_contacts.csv", "--preset", "hubspot")

    assert stored(session)["dana.reyes@northwind.example"].custom == {"lifecycle_stage": "Lead"}


def test_hostile_values_are_refused_by_line_and_column(shell: Path, session: Session) -> None:
    long_title = "VP " * 4000
    (shell / "hostile.csv").write_text(
        "Email,Job Title,Time Zone,Country/Region\n"
        f"a@x.example,{long_title},,\n"
        "b@x.example,CEO,GMT+02:00,\n"
        "c@x.example,CTO,,Atlantis\n"
        "d@x.example,CFO,,Germany\n")

    result = cli("prospects", "import", "hostile.csv")

    assert "hostile.csv:2: Job Title (title): 11999 characters, over the limit of 10000" in result.output
    assert "hostile.csv:3: Time Zone (timezone): 'GMT+02:00' is an offset, not a time zone" in result.output
    assert "hostile.csv:4: Country/Region (country): unknown country 'Atlantis'" in result.output
    assert list(stored(session)) == ["d@x.example"]


def test_the_row_bound_stops_reading_with_the_line(session: Session, clock, monkeypatch) -> None:
    monkeypatch.setattr(prospect_store, "MAX_ROWS", 2)

    report = upsert_rows(session, clock.now(), (ProspectRow(f"f.csv:{n + 2}", {"email": f"p{n}@x.example"})
                                                for n in range(5)))

    assert report.stored == 2
    assert report.errors == ["f.csv:4: more than 2 rows; the rest is not read (split the file)"]


def test_list_show_and_explain(shell: Path, session: Session) -> None:
    cli("prospects", "import", "hubspot_contacts.csv", "--preset", "hubspot")

    listed = json.loads(cli("prospects", "list", "--account", "northwind.example", "--json").output)
    by_name = json.loads(cli("prospects", "list", "--account", "Brightside Health", "--json").output)
    shown = json.loads(cli("prospects", "show", "Lee.Park@northwind.example", "--json").output)
    text = cli("prospects", "show", "maya.singh.pm@gmail.com").output
    explained = cli("explain", "chris@fabrikam.example").output
    missing = cli("prospects", "show", "nobody@x.example")

    assert sorted(p["email"] for p in listed) == ["dana.reyes@northwind.example", "lee.park@northwind.example"]
    assert [p["email"] for p in by_name] == ["maya.singh.pm@gmail.com"]
    assert (shown["timezone"], shown["timezone_source"], shown["region"]) == ("America/Chicago", "inferred", "US-TX")
    assert shown["account"]["name"] == "Northwind Analytics" and shown["enrollments"] == []
    assert "account: Brightside Health (no domain), Hospital & Health Care, 45 employees" in text
    assert "sending windows are in UTC" in explained
    assert missing.exit_code == 1


def test_templates_see_the_company_of_a_free_mail_person(session: Session, clock) -> None:
    from sequencer.sequences.context import values_of

    upsert_rows(session, clock.now(), [ProspectRow("1", {"email": "maya@gmail.com", "company": "Brightside Health"})])
    maya = stored(session)["maya@gmail.com"]

    assert values_of(maya, account_of(session, maya))["account"] == {
        "domain": None, "name": "Brightside Health", "industry": "", "employees": None, "country": ""}
