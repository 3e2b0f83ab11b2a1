"""docs/import.md rules 4-6: one operation per input, per-contact reasons, email and field rules."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Tenant
from tests.contacts.helpers import (
    DATETIME_FIELDS,
    FIELDS,
    JSON_FIELDS,
    NUMBER_FIELDS,
    TEXT_FIELDS,
    actions,
    count_contacts,
    get_contact,
    import_ok,
    post_raw_import,
    raw_contacts_body,
    stored_emails,
)

# --- rule 4: one operation per input, in order ---------------------------------------------------


def test_response_has_one_operation_per_input_in_order(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    import_ok(client, tenant, [{"email": "existing@example.com"}])
    batch: list[Any] = [
        {"email": "zed@example.com"},
        "not an object",
        {"email": "existing@example.com", "first_name": "Ex"},
        {"email": "amy@example.com", "custom_number_1": "7"},
        {"email": "bob@example.com"},
        {"first_name": "No Email"},
    ]
    response = client.post(
        "/api/contacts.import",
        headers=tenant.headers,
        json={"workspace_id": tenant.id, "contacts": batch},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert set(payload) == {"operations", "error", "summary"}
    assert payload["error"] is None
    assert payload["summary"] == {"created": 2, "updated": 1, "unchanged": 0, "errors": 3}
    assert payload["operations"] == [
        {
            "index": 0,
            "email": "zed@example.com",
            "action": "create",
            "error": None,
            "changed_fields": [],
        },
        {"index": 1, "email": "", "action": "error", "error": "contact must be a JSON object"},
        {
            "index": 2,
            "email": "existing@example.com",
            "action": "update",
            "error": None,
            "changed_fields": ["first_name"],
        },
        {
            "index": 3,
            "email": "amy@example.com",
            "action": "error",
            "error": "custom_number_1: expected a number",
        },
        {
            "index": 4,
            "email": "bob@example.com",
            "action": "create",
            "error": None,
            "changed_fields": [],
        },
        {"index": 5, "email": "", "action": "error", "error": "email is required"},
    ]
    assert stored_emails(engine, tenant.id) == [
        "bob@example.com",
        "existing@example.com",
        "zed@example.com",
    ]


def test_a_batch_of_only_invalid_contacts_answers_200_and_writes_nothing(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    operations = import_ok(client, tenant, [1, None, {"email": "nope"}, []])
    assert actions(operations) == ["error"] * 4
    assert all(op["error"] for op in operations)
    assert count_contacts(engine) == 0


# --- rules 5 and 6: the per-contact reason, naming the field -------------------------------------

GOOD_BEFORE = b'{"email": "before@example.com", "first_name": "Before"}'
GOOD_AFTER = b'{"email": "after@example.com", "custom_number_1": 1}'


def _case(
    case_id: str, contact: Any, message: str, email: str = "bad@example.com", field: str = ""
) -> Any:
    raw = contact if isinstance(contact, bytes) else json.dumps(contact).encode()
    return pytest.param(raw, message, email, field, id=case_id)


#: 255 characters, every label within 63: only the overall limit of 254 is broken.
LONG_EMAIL = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com"
#: Exactly 254 characters: the longest address accepted.
LONGEST_EMAIL = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
assert (len(LONG_EMAIL), len(LONGEST_EMAIL)) == (255, 254)


def _bad(field: str, value: Any) -> dict[str, Any]:
    return {"email": "bad@example.com", field: value}


CONTACT_ERRORS = [
    # (id, contact, exact reason, email the operation reports, field the reason names)
    _case("not-object-string", "bad@example.com", "contact must be a JSON object", ""),
    _case("not-object-number", 42, "contact must be a JSON object", ""),
    _case("not-object-null", None, "contact must be a JSON object", ""),
    _case("not-object-array", [{"email": "x@example.com"}], "contact must be a JSON object", ""),
    _case("email-missing", {"first_name": "A"}, "email is required", "", "email"),
    _case("email-null", {"email": None}, "email is required", "", "email"),
    _case("email-empty", {"email": ""}, "email is required", "", "email"),
    _case("email-blank", {"email": " \u00a0\t "}, "email is required", "", "email"),
    _case(
        "email-no-at", {"email": "not-an-email"}, "invalid email format", "not-an-email", "email"
    ),
    _case(
        "email-two-ats",
        {"email": "a@b@example.com"},
        "invalid email format",
        "a@b@example.com",
        "email",
    ),
    _case("email-no-domain", {"email": "a@"}, "invalid email format", "a@", "email"),
    _case(
        "email-space",
        {"email": "a b@example.com"},
        "invalid email format",
        "a b@example.com",
        "email",
    ),
    _case("email-number", {"email": 42}, "invalid email format", "", "email"),
    _case("email-object", {"email": {"a": 1}}, "invalid email format", "", "email"),
    _case("email-too-long", {"email": LONG_EMAIL}, "invalid email format", LONG_EMAIL, "email"),
    _case("text-number", _bad("first_name", 5), "first_name: expected a string"),
    _case("text-bool", _bad("phone", True), "phone: expected a string"),
    _case("text-object", _bad("custom_string_3", {"a": 1}), "custom_string_3: expected a string"),
    _case("text-array", _bad("external_id", ["x"]), "external_id: expected a string"),
    _case(
        "text-too-long",
        _bad("last_name", "x" * 256),
        "last_name: must be at most 255 characters",
    ),
    _case(
        "text-too-long-unicode",
        _bad("custom_string_5", "é" * 256),
        "custom_string_5: must be at most 255 characters",
    ),
    _case(
        "text-nul",
        _bad("first_name", "Ja\u0000ne"),
        "first_name: must not contain NUL characters",
    ),
    _case(
        "json-nul",
        _bad("custom_json_2", {"note": "a\u0000b"}),
        "custom_json_2: must not contain NUL characters",
    ),
    _case(
        "datetime-garbage",
        _bad("custom_datetime_1", "yesterday"),
        "custom_datetime_1: expected an RFC 3339 date-time with a time zone offset",
    ),
    _case(
        "datetime-date-only",
        _bad("custom_datetime_3", "2024-05-01"),
        "custom_datetime_3: expected an RFC 3339 date-time with a time zone offset",
    ),
    _case(
        "datetime-number",
        _bad("custom_datetime_4", 1714550400),
        "custom_datetime_4: expected an RFC 3339 date-time with a time zone offset",
    ),
    _case(
        "datetime-impossible",
        _bad("custom_datetime_5", "2024-02-30T09:00:00Z"),
        "custom_datetime_5: expected an RFC 3339 date-time with a time zone offset",
    ),
    _case(
        "datetime-no-offset",
        _bad("custom_datetime_2", "2024-05-01T09:00:00"),
        "custom_datetime_2: date-time must include a time zone offset (RFC 3339)",
    ),
    _case(
        "json-number",
        _bad("custom_json_1", 5),
        "custom_json_1: expected a JSON object or array",
    ),
    _case(
        "json-string",
        _bad("custom_json_3", '{"a": 1}'),
        "custom_json_3: expected a JSON object or array",
    ),
    _case(
        "json-bool",
        _bad("custom_json_5", True),
        "custom_json_5: expected a JSON object or array",
    ),
    _case(
        "timezone-unknown",
        _bad("timezone", "Mars/Base"),
        "timezone: unknown time zone 'Mars/Base' (expected an IANA name)",
    ),
    _case(
        "timezone-offset",
        _bad("timezone", "+02:00"),
        "timezone: unknown time zone '+02:00' (expected an IANA name)",
    ),
    _case("timezone-number", _bad("timezone", 2), "timezone: expected a string"),
    _case(
        "number-overflow",
        b'{"email": "bad@example.com", "custom_number_2": 1e400}',
        "custom_number_2: number out of range (must be a finite number)",
    ),
    _case(
        "number-negative-overflow",
        b'{"email": "bad@example.com", "custom_number_5": -1e400}',
        "custom_number_5: number out of range (must be a finite number)",
    ),
    _case("number-bool", _bad("custom_number_3", True), "custom_number_3: expected a number"),
    _case("number-string", _bad("custom_number_4", "42"), "custom_number_4: expected a number"),
    _case("number-array", _bad("custom_number_1", [1]), "custom_number_1: expected a number"),
]


@pytest.mark.parametrize(("contact", "message", "email", "field"), CONTACT_ERRORS)
def test_invalid_contact_is_an_error_operation_and_the_rest_succeeds(
    client: TestClient,
    engine: Engine,
    tenant: Tenant,
    contact: bytes,
    message: str,
    email: str,
    field: str,
) -> None:
    body = raw_contacts_body(tenant.id, [GOOD_BEFORE, contact, GOOD_AFTER])
    response = post_raw_import(client, tenant, body)
    assert response.status_code == 200, response.text
    operations = response.json()["operations"]
    assert operations[1] == {"index": 1, "email": email, "action": "error", "error": message}
    field = field or message.partition(":")[0]
    assert field in message
    assert [op["action"] for op in (operations[0], operations[2])] == ["create", "create"]
    assert stored_emails(engine, tenant.id) == ["after@example.com", "before@example.com"]


def test_an_invalid_contact_leaves_the_stored_contact_untouched(
    client: TestClient, tenant: Tenant
) -> None:
    import_ok(client, tenant, [{"email": "jane@example.com", "first_name": "Jane"}])
    before = get_contact(client, tenant, "jane@example.com")
    operations = import_ok(
        client, tenant, [{"email": "jane@example.com", "first_name": "Janet", "custom_json_1": 3}]
    )
    assert operations[0]["error"] == "custom_json_1: expected a JSON object or array"
    assert get_contact(client, tenant, "jane@example.com") == before


# --- rule 6: valid values -----------------------------------------------------------------------


def test_every_field_kind_is_stored_and_returned(client: TestClient, tenant: Tenant) -> None:
    contact: dict[str, Any] = {"email": "all@example.com"}
    contact.update({name: f"  {name} value  " for name in TEXT_FIELDS})
    contact["timezone"] = "America/New_York"
    contact.update(custom_number_1=42, custom_number_2=-1.5, custom_number_3=1e308)
    contact.update(custom_number_4=0, custom_number_5=2.5e-10)
    contact.update(
        custom_datetime_1="2024-05-01T10:00:00+02:00",
        custom_datetime_2="2024-05-01T08:00:00Z",
        custom_datetime_3="2024-05-01T08:00:00.250Z",
        custom_datetime_4="2023-12-31T23:30:00-01:00",
        custom_datetime_5="2024-05-01t08:00:00z",
    )
    contact.update(
        custom_json_1={"preferences": {"theme": "dark", "notifications": True}},
        custom_json_2=[1, "two", None, {"three": 3}],
        custom_json_3={},
        custom_json_4=[],
        custom_json_5={"unicode": "żółć ✓", "nested": [[[]]]},
    )
    assert actions(import_ok(client, tenant, [contact])) == ["create"]

    stored = get_contact(client, tenant, "all@example.com")
    assert stored is not None
    for name in TEXT_FIELDS:
        if name != "timezone":
            assert stored[name] == f"{name} value", name
    assert stored["timezone"] == "America/New_York"
    assert [stored[n] for n in NUMBER_FIELDS] == [42, -1.5, 1e308, 0, 2.5e-10]
    assert [stored[n] for n in DATETIME_FIELDS] == [
        "2024-05-01T08:00:00Z",
        "2024-05-01T08:00:00Z",
        "2024-05-01T08:00:00.250000Z",
        "2024-01-01T00:30:00Z",
        "2024-05-01T08:00:00Z",
    ]
    assert [stored[n] for n in JSON_FIELDS] == [contact[n] for n in JSON_FIELDS]


def test_text_is_trimmed_before_its_length_is_checked(client: TestClient, tenant: Tenant) -> None:
    operations = import_ok(
        client,
        tenant,
        [
            {"email": "a@example.com", "first_name": "x" * 255},
            {"email": "b@example.com", "first_name": "  " + "y" * 255 + "\u00a0"},
            {"email": "c@example.com", "custom_string_1": "é" * 255},
        ],
    )
    assert actions(operations) == ["create", "create", "create"]
    a = get_contact(client, tenant, "a@example.com")
    b = get_contact(client, tenant, "b@example.com")
    c = get_contact(client, tenant, "c@example.com")
    assert a is not None and b is not None and c is not None
    assert a["first_name"] == "x" * 255
    assert b["first_name"] == "y" * 255
    assert c["custom_string_1"] == "é" * 255


def test_null_is_accepted_for_every_optional_field(client: TestClient, tenant: Tenant) -> None:
    contact: dict[str, Any] = {"email": "nulls@example.com", **dict.fromkeys(FIELDS)}
    assert actions(import_ok(client, tenant, [contact])) == ["create"]
    stored = get_contact(client, tenant, "nulls@example.com")
    assert stored is not None
    assert all(stored[name] is None for name in FIELDS)


def test_unknown_keys_are_ignored(client: TestClient, tenant: Tenant) -> None:
    contact = {"email": "jane@example.com", "first_name": "Jane", "favourite_colour": 5, "id": []}
    assert actions(import_ok(client, tenant, [contact])) == ["create"]
    stored = get_contact(client, tenant, "jane@example.com")
    assert stored is not None
    assert stored["first_name"] == "Jane"
    assert "favourite_colour" not in stored


# --- rule 5: email normalisation -----------------------------------------------------------------

WHITESPACE_VARIANTS = [
    "  Jane.Doe@Example.COM  ",
    "\u00a0jane.doe@example.com\u00a0",
    "\tJANE.DOE@EXAMPLE.COM\n",
    "\u2003Jane.Doe@example.com\u3000",
    "\u2028jane.DOE@example.com\r\n",
]


@pytest.mark.parametrize("raw_email", WHITESPACE_VARIANTS)
def test_email_is_trimmed_and_lower_cased_on_import(
    client: TestClient, engine: Engine, tenant: Tenant, raw_email: str
) -> None:
    operations = import_ok(client, tenant, [{"email": raw_email, "first_name": "Jane"}])
    assert operations[0] == {
        "index": 0,
        "email": "jane.doe@example.com",
        "action": "create",
        "error": None,
        "changed_fields": ["first_name"],
    }
    assert stored_emails(engine, tenant.id) == ["jane.doe@example.com"]
    stored = get_contact(client, tenant, "jane.doe@example.com")
    assert stored is not None
    assert stored["email"] == "jane.doe@example.com"


def test_differently_written_emails_are_one_contact(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    assert actions(import_ok(client, tenant, [{"email": "Jane@Example.com"}])) == ["create"]
    for variant in WHITESPACE_VARIANTS:
        raw = variant.replace("jane.doe", "jane").replace("Jane.Doe", "Jane")
        raw = raw.replace("JANE.DOE", "JANE").replace("jane.DOE", "jane")
        assert actions(import_ok(client, tenant, [{"email": raw}])) == ["update"], raw
    assert count_contacts(engine, tenant.id) == 1


def test_lookups_normalise_the_email_as_import_does(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    import_ok(client, tenant, [{"email": "jane.doe@example.com", "first_name": "Jane"}])
    for lookup in [*WHITESPACE_VARIANTS, "JANE.DOE@EXAMPLE.COM"]:
        stored = get_contact(client, tenant, lookup)
        assert stored is not None, lookup
        assert stored["email"] == "jane.doe@example.com"

    response = client.post(
        "/api/contacts.delete",
        headers=tenant.headers,
        json={"workspace_id": tenant.id, "email": "\u00a0JANE.Doe@example.COM\t"},
    )
    assert response.status_code == 200, response.text
    assert count_contacts(engine, tenant.id) == 0


def test_email_of_254_characters_is_accepted(client: TestClient, tenant: Tenant) -> None:
    operations = import_ok(client, tenant, [{"email": LONGEST_EMAIL.upper()}])
    assert operations[0] == {
        "index": 0,
        "email": LONGEST_EMAIL,
        "action": "create",
        "error": None,
        "changed_fields": [],
    }
    assert get_contact(client, tenant, LONGEST_EMAIL) is not None


def test_international_email_is_accepted(client: TestClient, tenant: Tenant) -> None:
    operations = import_ok(client, tenant, [{"email": "Zoë@Exämple.de"}])
    assert operations[0]["action"] == "create"
    email = operations[0]["email"]
    assert email == email.lower()
    stored = get_contact(client, tenant, "ZOË@EXÄMPLE.DE")
    assert stored is not None
    assert stored["email"] == email


def test_a_large_shuffled_batch_keeps_input_order_in_its_operations(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    """Writes happen in email order; operations must still answer contacts[i] in input order."""
    rng = random.Random(3)
    existing = [f"old{i:03d}@example.com" for i in range(50)]
    import_ok(client, tenant, [{"email": e} for e in existing])
    fresh = [f"new{i:03d}@example.com" for i in range(150)]
    batch: list[Any] = [{"email": e.upper()} for e in existing + fresh + fresh[:40]]
    batch += [{"email": f"bad{i}@example.com", "custom_number_1": "x"} for i in range(30)]
    batch += list(range(10))
    rng.shuffle(batch)

    operations = import_ok(client, tenant, batch)
    seen: set[str] = set()
    for contact, op in zip(batch, operations, strict=True):
        if not isinstance(contact, dict):
            assert (op["action"], op["email"]) == ("error", "")
            continue
        email = contact["email"].lower()
        assert op["email"] == email
        if email.startswith("bad"):
            assert op["action"] == "error"
        elif email in existing or email in seen:
            assert op["action"] == "update"
        else:
            assert op["action"] == "create"
        seen.add(email)
    assert count_contacts(engine, tenant.id) == 200


def test_contacts_of_every_part_that_fail_to_decode_are_reported_as_typed(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    """A batch is decoded a part (~1,000 contacts) at a time after its emails are sorted:
    a field of the wrong type is found in its part, reported with the email as typed
    (trimmed, lower-cased, not normalised further), and a later duplicate of the same email
    is still applied."""
    good = [{"email": f"p{i:04d}@example.com", "first_name": "A"} for i in range(3_000)]
    bad = {
        7: {"email": " Zoë@Exämple.COM ", "custom_number_1": "x"},
        1_500: {"email": "p1500@example.com", "first_name": 5},
        2_900: {"email": "P2900@example.com", "custom_datetime_1": "yesterday"},
    }
    batch: list[Any] = [bad.get(i, contact) for i, contact in enumerate(good)]
    batch.append({"email": "p1500@example.com", "first_name": "Late"})  # its duplicate
    operations = import_ok(client, tenant, batch)
    assert [(op["index"], op["email"], op["error"]) for op in operations if op["error"]] == [
        (7, "zoë@exämple.com", "custom_number_1: expected a number"),
        (1_500, "p1500@example.com", "first_name: expected a string"),
        (
            2_900,
            "p2900@example.com",
            "custom_datetime_1: expected an RFC 3339 date-time with a time zone offset",
        ),
    ]
    assert operations[-1]["action"] == "create"
    assert count_contacts(engine, tenant.id) == 2_998
    late = get_contact(client, tenant, "p1500@example.com")
    assert late is not None and late["first_name"] == "Late"
