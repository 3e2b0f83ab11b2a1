"""Cell conversion: each kind of field, each of its errors, and whole rows."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest

from audience.contact_files.convert import (
    CellError,
    Conversion,
    RowError,
    convert_line,
    convert_row,
    time_zone,
    to_datetime,
    to_json,
    to_number,
)
from audience.contact_files.mapping import map_header

# --- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-7", -7),
        ("+3", 3),
        ("1249.50", 1249.5),
        ("0.5", 0.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("-2.5E-2", -0.025),
        ("12345678901234567890", 1.2345678901234567e19),
    ],
)
def test_numbers(text: str, value: float) -> None:
    result = to_number("custom_number_1", text)
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize("text", ["abc", "1,5", "1 000", "nan", "inf", "0x10", "--1", "1e", "€5"])
def test_a_cell_that_is_not_a_number_is_an_error_naming_the_field(text: str) -> None:
    with pytest.raises(CellError) as caught:
        to_number("custom_number_2", text)
    assert str(caught.value) == f"custom_number_2: expected a number, got {text!r}"


def test_a_number_beyond_double_range_is_an_error() -> None:
    with pytest.raises(CellError, match="custom_number_1: number out of range"):
        to_number("custom_number_1", "1e400")


# --- date-times ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rfc3339"),
    [
        ("2024-05-01", "2024-05-01T00:00:00Z"),
        ("2024/5/1", "2024-05-01T00:00:00Z"),
        ("2024-05-01T09:30:15.25Z", "2024-05-01T09:30:15.250000Z"),
        ("2024-05-01T09:30:00z", "2024-05-01T09:30:00Z"),
        ("2024-05-01 09:30:00 UTC", "2024-05-01T09:30:00Z"),
        ("2024-05-01T09:30:00+02:00", "2024-05-01T09:30:00+02:00"),
        ("2024-05-01T09:30:00-0530", "2024-05-01T09:30:00-05:30"),
        ("2024-05-01T09:30:00+01", "2024-05-01T09:30:00+01:00"),
        ("20240501T093000Z", "2024-05-01T09:30:00Z"),
        ("2024-W18-3", "2024-05-01T00:00:00Z"),
    ],
)
def test_date_times_in_common_forms_become_rfc3339(text: str, rfc3339: str) -> None:
    assert to_datetime("custom_datetime_1", text) == rfc3339


@pytest.mark.parametrize("text", ["2024-05-01T09:30", "2024-05-01 09:30:15", "2024/5/1 9:30"])
def test_a_date_time_without_an_offset_needs_the_files_time_zone(text: str) -> None:
    with pytest.raises(CellError, match="has no time zone offset; give the file's time zone"):
        to_datetime("custom_datetime_1", text)
    berlin = Conversion(timezone=time_zone("Europe/Berlin"))  # summer time in May: +02:00
    assert to_datetime("custom_datetime_1", text, berlin).endswith("+02:00")
    assert to_datetime("custom_datetime_1", text, Conversion(timezone=UTC)).endswith("Z")


def test_a_date_alone_is_midnight_in_the_files_time_zone_else_utc() -> None:
    assert to_datetime("custom_datetime_1", "2024-01-15") == "2024-01-15T00:00:00Z"
    paris = Conversion(timezone=time_zone("Europe/Paris"))
    assert to_datetime("custom_datetime_1", "2024-01-15", paris) == "2024-01-15T00:00:00+01:00"


def test_an_unknown_time_zone_is_named() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        time_zone("Mars/Olympus")


@pytest.mark.parametrize(
    ("text", "value"),
    [("1,5", 1.5), ("1.234,5", 1234.5), ("1 234,50", 1234.5), ("-0,25", -0.25), ("42", 42)],
)
def test_numbers_with_a_decimal_comma_convert_when_told(text: str, value: float) -> None:
    assert to_number("custom_number_1", text, Conversion(decimal_comma=True)) == value


@pytest.mark.parametrize(
    "text",
    ["yesterday", "05/01/2024", "2024-13-01", "2024-02-30", "2024-05-01T25:00", "2024-05-01+99:00"],
)
def test_a_cell_that_is_not_a_date_is_an_error_naming_the_field(text: str) -> None:
    with pytest.raises(CellError) as caught:
        to_datetime("custom_datetime_3", text)
    message = str(caught.value)
    assert message.startswith("custom_datetime_3: expected a date or date-time such as 2024-05-01")
    assert message.endswith(f"got {text!r}")


# --- JSON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [('{"plan": "pro", "seats": 3}', {"plan": "pro", "seats": 3}), ("[1, 2]", [1, 2]), ("{}", {})],
)
def test_json_objects_and_arrays(text: str, value: Any) -> None:
    assert to_json("custom_json_1", text) == value


@pytest.mark.parametrize("text", ["42", '"text"', "true", "null"])
def test_a_json_scalar_is_an_error(text: str) -> None:
    with pytest.raises(CellError, match="custom_json_2: expected a JSON object or array"):
        to_json("custom_json_2", text)


@pytest.mark.parametrize("text", ["{plan: pro}", "[1, 2", "{'a': 1}", "[NaN]"])
def test_malformed_json_is_an_error(text: str) -> None:
    with pytest.raises(CellError, match=r"custom_json_4: invalid JSON \("):
        to_json("custom_json_4", text)


def test_a_long_bad_cell_is_shortened_in_the_message() -> None:
    with pytest.raises(CellError) as caught:
        to_number("custom_number_1", "x" * 500)
    assert len(str(caught.value)) < 100


# --- rows ---------------------------------------------------------------------------------------

HEADER = ["Email", "First Name", "Score", "Since", "Prefs"]
OVERRIDES: dict[str, str | None] = {
    "Score": "custom_number_1",
    "Since": "custom_datetime_1",
    "Prefs": "custom_json_1",
}
MAPPING = map_header(HEADER, OVERRIDES)


def test_a_row_becomes_a_contact_with_typed_values() -> None:
    cells = [" Jane@Example.com ", " Jane ", "42", "2024-05-01", '{"a": 1}']
    assert convert_row(cells, MAPPING) == {
        "email": "Jane@Example.com",
        "first_name": "Jane",
        "custom_number_1": 42,
        "custom_datetime_1": "2024-05-01T00:00:00Z",
        "custom_json_1": {"a": 1},
    }


def test_empty_cells_leave_fields_out_so_stored_values_are_kept() -> None:
    contact = convert_row(["a@example.com", "", "  ", "", ""], MAPPING)
    assert contact == {"email": "a@example.com"}


def test_with_empty_clears_empty_cells_are_sent_as_null() -> None:
    contact = convert_row(["a@example.com", "", "", "", ""], MAPPING, Conversion(empty_clears=True))
    assert contact == {
        "email": "a@example.com",
        "first_name": None,
        "custom_number_1": None,
        "custom_datetime_1": None,
        "custom_json_1": None,
    }


def test_a_short_row_is_padded_with_empty_cells() -> None:
    assert convert_row(["a@example.com"], MAPPING) == {"email": "a@example.com"}


@pytest.mark.parametrize("email", ["", "   "])
def test_a_row_without_an_email_is_an_error(email: str) -> None:
    with pytest.raises(RowError) as caught:
        convert_row([email, "Jane", "", "", ""], MAPPING, Conversion(empty_clears=True))
    assert caught.value.reason == "email is required"


def test_every_bad_cell_of_a_row_is_named() -> None:
    with pytest.raises(RowError) as caught:
        convert_row(["a@example.com", "A", "many", "soon", "[1"], MAPPING)
    reasons = caught.value.reason.split("; ")
    assert [reason.split(":")[0] for reason in reasons] == [
        "custom_number_1",
        "custom_datetime_1",
        "custom_json_1",
    ]
    assert caught.value.email == "a@example.com"


def test_a_row_with_more_values_than_columns_is_an_error() -> None:
    with pytest.raises(RowError, match="row has 6 values but the header has 5 columns"):
        convert_row(["a@example.com", "A", "", "", "", "stray"], MAPPING)


def test_trailing_empty_values_beyond_the_header_are_harmless() -> None:
    cells = ["a@example.com", "A", "", "", "", "", ""]
    assert convert_row(cells, MAPPING) == {
        "email": "a@example.com",
        "first_name": "A",
    }


# --- JSON Lines ---------------------------------------------------------------------------------


def test_a_json_line_is_passed_on_with_its_known_keys() -> None:
    unknown: set[str] = set()
    line = '{"email": "a@example.com", "custom_number_1": "7", "first_name": null, "city": "Rome"}'
    assert convert_line(line, {}, unknown) == {
        "email": "a@example.com",
        "custom_number_1": "7",
        "first_name": None,
    }
    assert unknown == {"city"}


def test_json_line_keys_can_be_renamed_or_left_out() -> None:
    line = '{"mail": "a@example.com", "first_name": "A", "_line": 3, "_error": "x"}'
    renames: dict[str, str | None] = {"mail": "email", "first_name": None}
    assert convert_line(line, renames) == {"email": "a@example.com"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "invalid JSON: "),
        ("[1, 2]", "line is not a JSON object"),
        ('{"first_name": "A"}', "email is required"),
        ('{"email": " "}', "email is required"),
        ('{"email": null}', "email is required"),
    ],
)
def test_bad_json_lines_are_row_errors(line: str, reason: str) -> None:
    with pytest.raises(RowError) as caught:
        convert_line(line, {})
    assert caught.value.reason.startswith(reason)
