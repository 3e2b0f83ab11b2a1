"""The ContactInput fields of the spec, by kind: the one list the schema and the rules share."""

from __future__ import annotations

TEXT_MAX_LENGTH = 255
EMAIL_MAX_LENGTH = 254

TEXT_FIELDS: tuple[str, ...] = (
    "external_id",
    "timezone",
    "language",
    "first_name",
    "last_name",
    "full_name",
    "phone",
    "address_line_1",
    "address_line_2",
    "country",
    "postcode",
    "state",
    "job_title",
    *(f"custom_string_{i}" for i in range(1, 6)),
)
NUMBER_FIELDS: tuple[str, ...] = tuple(f"custom_number_{i}" for i in range(1, 6))
DATETIME_FIELDS: tuple[str, ...] = tuple(f"custom_datetime_{i}" for i in range(1, 6))
JSON_FIELDS: tuple[str, ...] = tuple(f"custom_json_{i}" for i in range(1, 6))

#: Every optional field, in the column order of the contacts table.
FIELDS: tuple[str, ...] = TEXT_FIELDS + NUMBER_FIELDS + DATETIME_FIELDS + JSON_FIELDS

#: Text fields that the contacts.list filters match by case-insensitive substring.
FILTERABLE_FIELDS: tuple[str, ...] = (
    "email",
    "external_id",
    "first_name",
    "last_name",
    "phone",
    "country",
    "language",
)

#: Deepest nesting accepted inside a custom_json_* value.
JSON_MAX_DEPTH = 32
#: Largest custom_json_* value accepted, in bytes of compact JSON.
JSON_MAX_BYTES = 64 * 1024
