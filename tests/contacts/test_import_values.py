"""Values that are hard to carry, imported and read back exactly.

Text with backslashes, tabs and line breaks, numbers at the ends of double range, date-times
at the ends of the calendar, custom_json written with whitespace and escapes: what the
import stages for the database (on PostgreSQL a COPY made ahead of its write, contacts/bulk.py)
and what the column checks of custom_json accept (validation._json_texts) must leave every
value as it was sent, in a small batch and in one written in parts (2,000 contacts or more),
on every backend.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Tenant
from tests.contacts.helpers import get_contact, import_ok, post_raw_import, raw_contacts_body

TEXTS = [
    "tab\there",
    "line\nbreak",
    "carriage\rreturn",
    "back\\slash",
    "\\N",
    "ends with backslash\\",
    "\\t not a tab",
    "Ærøskøbing, Łódź, naïve café",
    "emoji 🎉 and 中文",
]
NUMBERS = [0.1, 1e300, -2.5e-300, 5e-324, 123456789.123456789, -0.0, 42.0]
DATETIMES = [
    ("2026-03-04T05:06:07.123456+05:30", "2026-03-03T23:36:07.123456Z"),
    ("0001-01-02T00:00:00Z", "0001-01-02T00:00:00Z"),
    ("9999-12-31T23:59:59.999999+00:00", "9999-12-31T23:59:59.999999Z"),
]
JSONS = [
    {"path": "C:\\dir\\file", "text": "a\nb\tc\rd", "quote": '"q"'},
    {"nested": {"list": [1, 2.5, None, True, "x"], "empty": {}}, "unicode": "ü\u2028"},
    [[] for _ in range(40)],  # more brackets than the depth limit, and shallow
    {"brackets in a string": "[[[[{{{{" * 20},
    [12],  # as long as `null`
]


def _contact(i: int) -> dict[str, Any]:
    contact: dict[str, Any] = {"email": f"v{i:05d}@example.com"}
    contact["first_name"] = TEXTS[i % len(TEXTS)]
    contact["last_name"] = TEXTS[(i + 3) % len(TEXTS)]
    contact["custom_number_1"] = NUMBERS[i % len(NUMBERS)]
    contact["custom_datetime_1"] = DATETIMES[i % len(DATETIMES)][0]
    contact["custom_json_1"] = JSONS[i % len(JSONS)]
    contact["custom_json_2"] = None if i % 2 else JSONS[(i + 1) % len(JSONS)]
    return contact


def _expected_datetime(i: int) -> str:
    return DATETIMES[i % len(DATETIMES)][1]


@pytest.mark.parametrize("count", [9, 2_100])
def test_hard_values_come_back_as_sent(client: TestClient, tenant: Tenant, count: int) -> None:
    contacts = [_contact(i) for i in range(count)]
    operations = import_ok(client, tenant, contacts)
    assert {op["action"] for op in operations} == {"create"}
    # Every kind of value in every part: the first, middle and last contacts, and one of
    # each value in the lists above.
    for i in sorted({0, 1, 2, 3, 4, 5, 6, 7, 8, count // 2, count - 1}):
        stored = get_contact(client, tenant, contacts[i]["email"])
        assert stored is not None
        sent = contacts[i]
        assert stored["first_name"] == sent["first_name"]
        assert stored["last_name"] == sent["last_name"]
        assert stored["custom_number_1"] == sent["custom_number_1"]
        assert _same_instant(stored["custom_datetime_1"], _expected_datetime(i))
        assert stored["custom_json_1"] == sent["custom_json_1"]
        assert stored.get("custom_json_2") == sent["custom_json_2"]


def test_a_re_import_of_hard_values_changes_nothing(client: TestClient, tenant: Tenant) -> None:
    contacts = [_contact(i) for i in range(2_100)]
    import_ok(client, tenant, contacts)
    # The same values sent again in other bytes (padded names, which are trimmed): another
    # input digest, so every row is compared with what is stored, and none differs.
    again = [{**c, "first_name": f"  {c['first_name']}  "} for c in contacts]
    operations = import_ok(client, tenant, again)
    assert [op for op in operations if op["changed_fields"]] == []


def test_json_written_with_whitespace_and_escapes_is_stored_as_its_value(
    client: TestClient, tenant: Tenant
) -> None:
    raws = [
        b'{"email": "w1@example.com", "custom_json_1": {\n\t"a" :\r\n [1 ,\t2]\n}}',
        b'{"email": "w2@example.com", "custom_json_1": ["\\\\", "\\n", "\\u00e9", "\\t\\r"]}',
        b'{"email": "w3@example.com", "custom_json_1": null, "custom_json_2": [12]}',
    ]
    response = post_raw_import(client, tenant, raw_contacts_body(tenant.id, raws))
    assert response.status_code == 200, response.text
    assert [op["action"] for op in response.json()["operations"]] == ["create"] * 3
    first = get_contact(client, tenant, "w1@example.com")
    assert first is not None and first["custom_json_1"] == {"a": [1, 2]}
    second = get_contact(client, tenant, "w2@example.com")
    assert second is not None and second["custom_json_1"] == ["\\", "\n", "é", "\t\r"]
    third = get_contact(client, tenant, "w3@example.com")
    assert third is not None and third.get("custom_json_1") is None
    assert third["custom_json_2"] == [12]


def test_one_deep_value_among_many_shallow_ones_is_the_only_error(
    client: TestClient, tenant: Tenant
) -> None:
    deep: Any = []
    for _ in range(40):
        deep = [deep]
    shallow: list[list[int]] = [[] for _ in range(40)]
    contacts = [{"email": f"d{i}@example.com", "custom_json_1": shallow} for i in range(50)]
    contacts[17]["custom_json_1"] = deep
    contacts[30]["custom_json_1"] = "text"
    operations = import_ok(client, tenant, contacts)
    errors = {op["index"]: op["error"] for op in operations if op["action"] == "error"}
    assert errors == {
        17: "custom_json_1: nested deeper than 32 levels",
        30: "custom_json_1: expected a JSON object or array",
    }


def _same_instant(stored: str, expected: str) -> bool:
    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return parse(stored) == parse(expected)
