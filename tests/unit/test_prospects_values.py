"""Values as CRM exports write them: countries, regions, time zones, head counts, column maps."""

from __future__ import annotations

from pathlib import Path

import pytest

from sequencer.core.yaml_source import SourceError
from sequencer.intake import column_map, countries, timezones
from sequencer.intake.prospect_values import clean, custom_key, domain_from, whole_number
from sequencer.intake.region_zones import PRINCIPAL_ZONES, REGION_ZONES
from sequencer.sequences.schedule import zone

HUBSPOT_HEADER = ["Record ID", "First Name", "Last Name", "Email", "Phone Number", "Contact owner", "Job Title",
                  "Company Name", "Country/Region", "State/Region", "Time Zone", "Number of Employees",
                  "Lifecycle Stage", "LinkedIn URL", "Website URL"]


@pytest.mark.parametrize(
    ("written", "code"),
    [("Germany", "DE"), ("GERMANY", "DE"), ("de", "DE"), ("DEU", "DE"), ("Deutschland", "DE"),
     ("United States", "US"), ("USA", "US"), ("United States of America", "US"), ("U.S.", "US"),
     ("UK", "GB"), ("United Kingdom", "GB"), ("England", "GB"), ("  the Netherlands ", "NL"),
     ("Russia", "RU"), ("South Korea", "KR"), ("Czech Republic", "CZ"), ("Österreich", "AT"), ("Brazil", "BR")],
)
def test_countries_as_exports_write_them(written: str, code: str) -> None:
    assert countries.country_code(written) == code


def test_an_unknown_country_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown country 'Atlantis'"):
        countries.country_code("Atlantis")


@pytest.mark.parametrize(
    ("country", "written", "code"),
    [("US", "California", "US-CA"), ("US", "ca", "US-CA"), ("US", "New York", "US-NY"), ("CA", "Québec", "CA-QC"),
     ("CA", "ON", "CA-ON"), ("AU", "NSW", "AU-NSW"), ("BR", "São Paulo", "BR-SP"), ("MX", "Jalisco", "MX-JAL"),
     ("US", "Bay Area", "Bay Area"), ("", "Texas", "Texas")],
)
def test_regions_become_iso_3166_2_or_stay_as_written(country: str, written: str, code: str) -> None:
    assert countries.region_code(country, written) == code


@pytest.mark.parametrize(
    ("written", "iana"),
    [("America/New_York", "America/New_York"), ("europe/berlin", "Europe/Berlin"),
     ("(GMT+01:00) Europe/Berlin", "Europe/Berlin"), ("(GMT-05:00) Eastern Standard Time (America/New_York)",
                                                      "America/New_York"),
     ("america_slash_los_angeles", "America/Los_Angeles"), ("W. Europe Standard Time", "Europe/Berlin"),
     ("Pacific Standard Time", "America/Los_Angeles"), ("(UTC-05:00) Eastern Time (US & Canada)", "America/New_York"),
     ("(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna", "Europe/Amsterdam"), ("EST", "America/New_York"),
     ("PT", "America/Los_Angeles"), ("UTC", "UTC")],
)
def test_time_zones_as_exports_write_them(written: str, iana: str) -> None:
    assert timezones.parse(written) == iana


@pytest.mark.parametrize(
    ("written", "message"),
    [("GMT+01:00", "is an offset, not a time zone"), ("(UTC-05:00)", "is an offset, not a time zone"),
     ("Mars/Olympus", "unknown time zone 'Mars/Olympus'")],
)
def test_what_is_not_a_time_zone_is_refused_with_why(written: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        timezones.parse(written)


@pytest.mark.parametrize(
    ("country", "region", "iana"),
    [("DE", "", "Europe/Berlin"), ("FR", "", "Europe/Paris"), ("GB", "", "Europe/London"), ("ES", "", "Europe/Madrid"),
     ("US", "US-TX", "America/Chicago"), ("US", "US-CA", "America/Los_Angeles"), ("CA", "CA-BC", "America/Vancouver"),
     ("AU", "AU-WA", "Australia/Perth"), ("BR", "BR-AM", "America/Manaus"), ("MX", "MX-SON", "America/Hermosillo"),
     ("US", "", None), ("AU", "", None), ("RU", "", None), ("US", "Bay Area", None), ("", "", None)],
)
def test_zone_inferred_from_country_and_region_or_not_at_all(country: str, region: str, iana: str | None) -> None:
    assert timezones.infer(country, region) == iana


def test_every_region_and_principal_zone_exists() -> None:
    for name in {*REGION_ZONES.values(), *PRINCIPAL_ZONES.values()}:
        zone(name)
    assert {code[:2] for code in REGION_ZONES} == {"US", "CA", "AU", "BR", "MX"}
    assert len([code for code in REGION_ZONES if code.startswith("US-")]) == 56  # 50 states, DC, 5 territories


@pytest.mark.parametrize(
    ("written", "number"),
    [("250", 250), ("1,200", 1200), ("1.200", 1200), ("1 200", 1200), ("1'200", 1200), ("1.200.000", 1_200_000),
     ("250.0", 250), ("51-200", 51), ("10,001+", 10_001), ("5000+", 5000)],
)
def test_head_counts_as_exports_write_them(written: str, number: int) -> None:
    assert whole_number(written) == number


@pytest.mark.parametrize("written", ["12.5", "1,2", "lots", "1,20,0", "9" * 20])
def test_what_is_not_a_head_count_is_refused(written: str) -> None:
    with pytest.raises(ValueError, match="not a whole number"):
        whole_number(written)


def test_a_row_is_cleaned_and_placeholders_are_empty() -> None:
    cleaned = clean({"full_name": "Reyes, Dana", "country": "United States", "region": "New York",
                     "website": "https://www.Northwind.example/about", "employees": "1,200", "timezone": "N/A",
                     "phone": "-"}, {"lead_source": "Web"})

    assert cleaned.prospect == {"first_name": "Dana", "last_name": "Reyes", "country": "US", "region": "US-NY"}
    assert (cleaned.account, cleaned.domain, cleaned.timezone) == ({"employees": 1200}, "northwind.example", "")
    assert cleaned.custom == {"lead_source": "Web"}


def test_values_are_bounded_and_name_their_field() -> None:
    with pytest.raises(ValueError, match="title: 10001 characters, over the limit of 10000"):
        clean({"title": "x" * 10_001})
    with pytest.raises(ValueError, match="website: invalid domain"):
        domain_from("not a site", "website")
    with pytest.raises(ValueError, match="custom fields: 101, over the limit of 100"):
        clean({}, {f"f{n}": "v" for n in range(101)})
    with pytest.raises(ValueError, match="tags: expected a text or a number, got list"):
        clean({"tags": ["a"]})


def test_custom_keys_are_template_names() -> None:
    assert [custom_key(h) for h in ("Lead Source", "Lifecycle Stage", "2nd Phone", "# Employees")] == [
        "lead_source", "lifecycle_stage", "field_2nd_phone", "employees"]


def test_every_preset_loads_and_maps_only_known_fields() -> None:
    for name in ("generic", *column_map.PRESETS):
        loaded = column_map.preset(name)
        assert loaded.name == name and "email" in loaded.columns


def test_an_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ValueError, match="choose one of hubspot, salesforce, apollo, pipedrive"):
        column_map.preset("zoho")


def test_headers_match_ignoring_case_spaces_and_punctuation() -> None:
    mapping = column_map.resolve(column_map.preset("generic"), ["E-MAIL", "first_name", "  Job Title ", "Shoe Size"])

    assert mapping.fields == {"email": [0], "first_name": [1], "title": [2]}
    assert mapping.unmapped == ["Shoe Size"]


def test_the_first_non_empty_column_of_a_field_wins() -> None:
    mapping = column_map.resolve(column_map.preset("hubspot"), ["Email", "Phone Number", "Mobile Phone Number"])

    assert mapping.values(["a@b.example", "", "+1 555"])[0] == {"email": "a@b.example", "phone": "+1 555"}
    assert mapping.values(["a@b.example", "+1 444", "+1 555"])[2]["phone"] == "Phone Number"


def test_unmapped_columns_become_custom_fields_only_when_asked() -> None:
    base = column_map.preset("hubspot")

    assert column_map.resolve(base, HUBSPOT_HEADER).custom == {}
    asked = column_map.resolve(base, HUBSPOT_HEADER, ["lifecycle_stage", "No Such Column"])
    assert asked.custom == {"lifecycle_stage": 12}
    assert asked.problems == ["--custom-fields: no unmapped column 'No Such Column' in the file"]
    assert set(column_map.resolve(base, HUBSPOT_HEADER, ["all"]).custom) == {"record_id", "lifecycle_stage"}


def test_a_map_file_wins_over_the_preset(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("name: mine\ncolumns:\n  email: Work Email\n  owner: [SDR Email]\ncustom:\n  tier: [ABM Tier]\n")
    combined = column_map.combine(column_map.load(path), column_map.preset("generic"))

    mapping = column_map.resolve(combined, ["Email", "Work Email", "SDR Email", "ABM Tier"])

    assert mapping.fields["email"] == [1, 0] and mapping.fields["owner"] == [2]
    assert mapping.custom == {"tier": 3}


def test_a_bad_map_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("columns:\n  email: [Email]\n  frist_name: [First]\n  title: 3\ncustom:\n  Lead Source: [x]\n")

    with pytest.raises(SourceError) as raised:
        column_map.load(path)

    assert [e.split(": ", 2)[:2] for e in raised.value.errors] == [
        [f"{path}:3", "unknown field 'frist_name'; fields are"], [f"{path}:4", "title"],
        [f"{path}:6", "custom field 'Lead Source' must be lower case letters, digits and _ (like 'lead_source')"]]


def test_the_preset_that_fits_is_suggested() -> None:
    apollo = ["First Name", "Email", "# Employees", "Person Linkedin Url", "Company Name for Emails",
              "Work Direct Phone"]

    assert column_map.suggest(apollo) == ("apollo", 3)  # "# Employees" is generic's "employees"
    assert column_map.suggest(["email", "first_name"]) is None
