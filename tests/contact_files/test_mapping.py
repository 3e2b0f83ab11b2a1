"""Header → field mapping: forgiving by default, `--map` overrides, nothing dropped silently."""

from __future__ import annotations

import pytest

from audience.contact_files.mapping import (
    MappingError,
    guess_field,
    map_header,
    normalize,
    parse_overrides,
)
from audience.db.models import FIELDS


@pytest.mark.parametrize(
    ("column", "field"),
    [
        ("Email", "email"),
        ("E-mail Address", "email"),
        ("EMAIL_ADDRESS", "email"),
        (" e-mail ", "email"),
        ("First Name", "first_name"),
        ("first_name", "first_name"),
        ("FirstName", "first_name"),
        ("Given name", "first_name"),
        ("Surname", "last_name"),
        ("Name", "full_name"),
        ("Mobile Phone", "phone"),
        ("ZIP code", "postcode"),
        ("Postal Code", "postcode"),
        ("Job Title", "job_title"),
        ("Time Zone", "timezone"),
        ("Customer ID", "external_id"),
        ("Address Line 2", "address_line_2"),
        ("Custom Number 3", "custom_number_3"),
        ("custom_json_5", "custom_json_5"),
    ],
)
def test_common_headers_map_to_their_field(column: str, field: str) -> None:
    assert guess_field(column) == field


def test_every_field_name_maps_to_itself() -> None:
    for name in ("email", *FIELDS):
        assert guess_field(name) == name


@pytest.mark.parametrize("column", ["Company", "City", "Notes", "", "   "])
def test_unknown_headers_map_to_nothing(column: str) -> None:
    assert guess_field(column) is None


def test_normalize_ignores_case_spaces_and_punctuation() -> None:
    assert normalize("E-mail Address") == normalize("email_address") == "emailaddress"


def test_header_mapping_lists_unmapped_columns() -> None:
    mapping = map_header(["Email", "First Name", "City", "Notes"], {})
    assert mapping.columns == ((0, "email"), (1, "first_name"))
    assert mapping.unmapped == ("City", "Notes")


def test_the_first_of_two_columns_for_one_field_wins_and_the_other_is_listed() -> None:
    mapping = map_header(["Email", "E-mail Address"], {})
    assert mapping.columns == ((0, "email"),)
    assert mapping.unmapped == ("E-mail Address",)


def test_overrides_win_over_the_automatic_mapping() -> None:
    overrides = parse_overrides(["Work Email=email", "Email=", "Plan=custom_string_1"])
    mapping = map_header(["Email", "Work Email", "Plan", "City"], overrides)
    assert mapping.columns == ((1, "email"), (2, "custom_string_1"))
    assert mapping.ignored == ("Email",)
    assert mapping.unmapped == ("City",)


def test_an_override_takes_its_field_from_the_column_that_had_it() -> None:
    mapping = map_header(["Email", "Name", "Display"], parse_overrides(["Display=full_name"]))
    assert mapping.columns == ((0, "email"), (2, "full_name"))
    assert mapping.unmapped == ("Name",)


def test_an_override_matches_a_column_forgivingly() -> None:
    mapping = map_header(["E-Mail", "Cell"], parse_overrides(["cell=phone"]))
    assert mapping.columns == ((0, "email"), (1, "phone"))


def test_no_email_column_is_a_usage_error() -> None:
    with pytest.raises(MappingError, match="no column maps to email"):
        map_header(["First Name", "Last Name"], {})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("Email", "expected COLUMN=FIELD"),
        ("=email", "expected COLUMN=FIELD"),
        ("Plan=plan", "unknown field 'plan'"),
    ],
)
def test_bad_overrides_are_usage_errors(spec: str, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_overrides([spec])


def test_two_overrides_to_one_field_are_a_usage_error() -> None:
    with pytest.raises(MappingError, match="more than one column"):
        parse_overrides(["A=email", "B=email"])


def test_an_override_of_a_missing_column_is_a_usage_error() -> None:
    with pytest.raises(MappingError, match="no column named 'Plan'"):
        map_header(["Email"], parse_overrides(["Plan=custom_string_1"]))


def test_error_report_columns_are_never_imported() -> None:
    mapping = map_header(["_line", "_email", "_error", "Email", "Name"], {})
    assert mapping.columns == ((3, "email"), (4, "full_name"))
    assert mapping.ignored == ("_line", "_email", "_error")
    assert mapping.unmapped == ()


@pytest.mark.parametrize(
    ("header", "field"),
    [
        # Mailchimp's audience export
        ("Email Address", "email"),
        ("First Name", "first_name"),
        ("Last Name", "last_name"),
        ("Address", "address_line_1"),
        ("Phone Number", "phone"),
        ("CC", "country"),
        ("TIMEZONE", "timezone"),
        ("REGION", "state"),
        # HubSpot's contacts export
        ("Record ID", "external_id"),
        ("Email", "email"),
        ("Job Title", "job_title"),
        ("Street Address", "address_line_1"),
        ("State/Region", "state"),
        ("Postal Code", "postcode"),
        ("Country/Region", "country"),
        # other languages, accents and all
        ("Vorname", "first_name"),
        ("Nachname", "last_name"),
        ("Straße", "address_line_1"),
        ("PLZ", "postcode"),
        ("Prénom", "first_name"),
        ("Nom", "last_name"),
        ("Courriel", "email"),
        ("Téléphone", "phone"),
        ("Correo electrónico", "email"),
        ("Apellidos", "last_name"),
        ("Código postal", "postcode"),
        ("Cognome", "last_name"),
        ("Achternaam", "last_name"),
    ],
)
def test_headers_of_real_exports_are_recognised(header: str, field: str) -> None:
    assert guess_field(header) == field
