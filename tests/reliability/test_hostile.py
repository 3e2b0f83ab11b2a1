"""Hostile inputs: each gets a clear 4xx or a per-contact error, never a 500 or a traceback.

The first table is hand-written for POST /api/contacts.import. The tests after it walk every
string of a valid request to every /api/ route and poison it (a NUL character, invalid UTF-8),
and send every JSON route bodies that are not what it expects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Tenant
from tests.reliability.conftest import assert_error_body, assert_no_traceback
from tests.reliability.routes import CASES, RouteCase, seed

EMAIL = "h@example.com"
JSON = {"Content-Type": "application/json"}


def contact(fields: bytes, email: bytes = b'"h@example.com"') -> bytes:
    """An import body for workspace acme holding one contact with `fields` (raw JSON)."""
    sep = b"," if fields else b""
    return b'{"workspace_id":"acme","contacts":[{"email":' + email + sep + fields + b"}]}"


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_object(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@dataclass(frozen=True)
class Reject:
    """The whole request is refused with this status and an error starting with `prefix`."""

    status: int
    prefix: str = ""


@dataclass(frozen=True)
class ContactError:
    """200, and the one contact is reported as an error naming the field; nothing stored."""

    prefix: str
    email: str = EMAIL


@dataclass(frozen=True)
class Stored:
    """200, the contact is applied, and `field` reads back as `value`."""

    field: str
    value: Any
    email: str = EMAIL


Expectation = Reject | ContactError | Stored


@dataclass(frozen=True)
class Hostile:
    body: bytes
    expect: Expectation
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))


HOSTILE: dict[str, Hostile] = {
    # nesting and size
    "custom_json depth 40": Hostile(
        contact(b'"custom_json_1":' + json.dumps(nested_object(40)).encode()),
        ContactError("custom_json_1: nested deeper than 32 levels"),
    ),
    "custom_json depth 5000": Hostile(
        contact(b'"custom_json_1":' + nested(5000)), Reject(400, "invalid JSON body:")
    ),
    "unknown key depth 5000": Hostile(
        contact(b'"unknown":' + nested(5000)), Reject(400, "invalid JSON body:")
    ),
    "custom_json over 64 KiB": Hostile(
        contact(b'"custom_json_1":{"k":"' + b"x" * 70_000 + b'"}'),
        ContactError("custom_json_1: larger than 65536 bytes"),
    ),
    "1 MB first_name": Hostile(
        contact(b'"first_name":"' + b"x" * 1_000_000 + b'"'),
        ContactError("first_name: must be at most 255 characters"),
    ),
    "1 MB email": Hostile(
        contact(b"", email=b'"' + b"x" * 1_000_000 + b'@example.com"'),
        ContactError("invalid email format", "x" * 1_000_000 + "@example.com"),
    ),
    "1 MB string in custom_json": Hostile(
        contact(b'"custom_json_1":["' + b"y" * 1_000_000 + b'"]'),
        ContactError("custom_json_1: larger than 65536 bytes"),
    ),
    # lone surrogates: not valid Unicode, so not a valid JSON text either
    "lone high surrogate in first_name": Hostile(
        contact(b'"first_name":"\\ud800"'), Reject(400, "invalid JSON body:")
    ),
    "lone low surrogate in custom_json": Hostile(
        contact(b'"custom_json_1":{"x":"\\udc00"}'), Reject(400, "invalid JSON body:")
    ),
    "lone surrogate in email": Hostile(
        contact(b"", email=b'"h\\ud800@example.com"'), Reject(400, "invalid JSON body:")
    ),
    "lone surrogate in a json key": Hostile(
        contact(b'"custom_json_1":{"\\ud800":1}'), Reject(400, "invalid JSON body:")
    ),
    "surrogate pair is fine": Hostile(
        contact(b'"first_name":"\\ud83d\\ude00"'), Stored("first_name", "😀")
    ),
    # NUL characters
    "NUL in first_name": Hostile(
        contact(b'"first_name":"a\\u0000b"'),
        ContactError("first_name: must not contain NUL characters"),
    ),
    "NUL in timezone": Hostile(contact(b'"timezone":"UTC\\u0000"'), ContactError("timezone:")),
    "NUL in custom_json value": Hostile(
        contact(b'"custom_json_1":{"a":"\\u0000"}'),
        ContactError("custom_json_1: must not contain NUL characters"),
    ),
    "NUL in custom_json key": Hostile(
        contact(b'"custom_json_1":{"\\u0000":1}'),
        ContactError("custom_json_1: must not contain NUL characters"),
    ),
    "NUL in email": Hostile(
        contact(b"", email=b'"h\\u0000@example.com"'),
        ContactError("invalid email format", "h\x00@example.com"),
    ),
    "NUL in workspace_id": Hostile(
        b'{"workspace_id":"acme\\u0000","contacts":[{"email":"h@example.com"}]}', Reject(401)
    ),
    "NUL in subscribe_to_lists": Hostile(
        b'{"workspace_id":"acme","contacts":[{"email":"h@example.com"}],'
        b'"subscribe_to_lists":["\\u0000"]}',
        Reject(400, "subscribe_to_lists must not contain NUL characters"),
    ),
    "raw control character in a string": Hostile(
        contact(b'"first_name":"a\x00b"'), Reject(400, "invalid JSON body:")
    ),
    # numbers beyond double precision
    "1e400": Hostile(
        contact(b'"custom_number_1":1e400'),
        ContactError("custom_number_1: number out of range"),
    ),
    "-1e400": Hostile(
        contact(b'"custom_number_1":-1e400'),
        ContactError("custom_number_1: number out of range"),
    ),
    "1e-400 underflows to zero": Hostile(
        contact(b'"custom_number_1":1e-400'), Stored("custom_number_1", 0.0)
    ),
    "400-digit integer": Hostile(
        contact(b'"custom_number_1":' + b"9" * 400),
        ContactError("custom_number_1: number out of range"),
    ),
    "1e400 inside custom_json": Hostile(
        contact(b'"custom_json_1":[1e400]'), ContactError("custom_json_1:")
    ),
    "400-digit integer inside custom_json": Hostile(
        contact(b'"custom_json_1":{"n":' + b"9" * 400 + b"}"),
        ContactError("custom_json_1: number out of range"),
    ),
    "308-digit integer inside custom_json": Hostile(
        contact(b'"custom_json_1":{"n":' + b"9" * 308 + b"}"),
        Stored("custom_json_1", {"n": int("9" * 308)}),
    ),
    "NaN literal": Hostile(contact(b'"custom_number_1":NaN'), Reject(400, "invalid JSON body:")),
    "Infinity literal": Hostile(
        contact(b'"custom_number_1":Infinity'), Reject(400, "invalid JSON body:")
    ),
    # duplicate keys: the last occurrence wins, everywhere alike
    "duplicate workspace_id, own last": Hostile(
        b'{"workspace_id":"globex","workspace_id":"acme","contacts":[{"email":"h@example.com"}]}',
        Stored("email", EMAIL),
    ),
    "duplicate workspace_id, other last": Hostile(
        b'{"workspace_id":"acme","workspace_id":"globex","contacts":[{"email":"h@example.com"}]}',
        Reject(401),
    ),
    "duplicate contacts, empty last": Hostile(
        b'{"workspace_id":"acme","contacts":[{"email":"h@example.com"}],"contacts":[]}',
        Reject(400, "contacts array cannot be empty"),
    ),
    "duplicate field in a contact": Hostile(
        contact(b'"first_name":"A","first_name":"B"'), Stored("first_name", "B")
    ),
    "duplicate email in a contact": Hostile(
        contact(b'"email":"h@example.com"', email=b'"first@example.com"'), Stored("email", EMAIL)
    ),
    # what is not a JSON object
    "empty body": Hostile(b"", Reject(400, "invalid JSON body:")),
    "body ends early": Hostile(
        b'{"workspace_id":"acme","contacts":[{"email":"h@exa', Reject(400, "invalid JSON body:")
    ),
    "body ends after a value": Hostile(
        b'{"workspace_id":"acme","contacts":[{"email":"h@example.com"}]',
        Reject(400, "invalid JSON body:"),
    ),
    "trailing garbage": Hostile(contact(b"") + b"}", Reject(400, "invalid JSON body:")),
    "top-level array": Hostile(b"[]", Reject(400, "invalid JSON body: expected a JSON object")),
    "top-level null": Hostile(b"null", Reject(400, "invalid JSON body: expected a JSON object")),
    "top-level string": Hostile(b'"x"', Reject(400, "invalid JSON body: expected a JSON object")),
    "byte order mark": Hostile(b"\xef\xbb\xbf" + contact(b""), Reject(400, "invalid JSON body:")),
    "contacts is an object": Hostile(
        b'{"workspace_id":"acme","contacts":{"email":"h@example.com"}}',
        Reject(400, "contacts must be an array"),
    ),
    "workspace_id is a number": Hostile(
        b'{"workspace_id":7,"contacts":[{"email":"h@example.com"}]}',
        Reject(400, "workspace_id must be a string"),
    ),
    # invalid UTF-8
    "invalid UTF-8 in first_name": Hostile(
        contact(b'"first_name":"\xff\xfe"'), Reject(400, "invalid JSON body:")
    ),
    "invalid UTF-8 in email": Hostile(
        contact(b"", email=b'"h\xc3@example.com"'), Reject(400, "invalid JSON body:")
    ),
    "invalid UTF-8 in workspace_id": Hostile(
        b'{"workspace_id":"ac\xffme","contacts":[{"email":"h@example.com"}]}',
        Reject(400, "invalid JSON body:"),
    ),
    "invalid UTF-8 in a list id": Hostile(
        b'{"workspace_id":"acme","contacts":[{"email":"h@example.com"}],'
        b'"subscribe_to_lists":["\xed\xa0\x80"]}',
        Reject(400, "invalid JSON body:"),
    ),
    "invalid UTF-8 in custom_json": Hostile(
        contact(b'"custom_json_1":{"a":"\x80"}'), Reject(400, "invalid JSON body:")
    ),
    "invalid UTF-8 in an unknown key": Hostile(
        contact(b'"\xff":1'), Reject(400, "invalid JSON body:")
    ),
    # content types
    "form-encoded body": Hostile(
        b"workspace_id=acme&contacts=h%40example.com",
        Reject(415, "unsupported Content-Type"),
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "multipart body": Hostile(
        b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\n{}\r\n--b--\r\n',
        Reject(415, "unsupported Content-Type"),
        {"Content-Type": "multipart/form-data; boundary=b"},
    ),
    # date-times at the ends of the range
    "date-time before year 1 in UTC": Hostile(
        contact(b'"custom_datetime_1":"0001-01-01T00:00:00+05:00"'),
        ContactError("custom_datetime_1:"),
    ),
    "date-time after year 9999 in UTC": Hostile(
        contact(b'"custom_datetime_1":"9999-12-31T23:00:00-05:00"'),
        ContactError("custom_datetime_1:"),
    ),
    "date-time in year 999": Hostile(
        contact(b'"custom_datetime_1":"0999-01-01T00:00:00Z"'),
        Stored("custom_datetime_1", "0999-01-01T00:00:00Z"),
    ),
}


def post(
    client: TestClient, tenant: Tenant, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return client.post("/api/contacts.import", content=body, headers={**tenant.headers, **headers})


def get_contact(client: TestClient, tenant: Tenant, email: str) -> httpx.Response:
    params = {"workspace_id": tenant.id, "email": email}
    return client.get("/api/contacts.getByEmail", headers=tenant.headers, params=params)


def assert_workspace_readable(client: TestClient, tenant: Tenant) -> None:
    """Whatever was sent, every contact of the workspace can still be read back."""
    params = {"workspace_id": tenant.id, "limit": 100, "with_contact_lists": "true"}
    response = client.get("/api/contacts.list", headers=tenant.headers, params=params)
    assert response.status_code == 200, f"the workspace became unreadable: {response.text}"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_import_body(name: str, client: TestClient, tenant: Tenant) -> None:
    case = HOSTILE[name]
    response = post(client, tenant, case.body, case.headers)
    assert response.status_code < 500, f"{name}: {response.status_code} {response.text[:300]}"
    assert_no_traceback(response.text)
    expect = case.expect
    if isinstance(expect, Reject):
        assert response.status_code == expect.status, response.text[:300]
        assert assert_error_body(response).startswith(expect.prefix), response.text[:300]
    elif isinstance(expect, ContactError):
        assert response.status_code == 200, response.text[:300]
        [op] = response.json()["operations"]
        assert op["action"] == "error", op
        assert op["error"].startswith(expect.prefix), op
        assert op["email"] == expect.email, op["email"][:100]
        assert get_contact(client, tenant, EMAIL).status_code in (400, 404)
    else:
        assert response.status_code == 200, response.text[:300]
        [op] = response.json()["operations"]
        assert op["action"] == "create", op
        stored = get_contact(client, tenant, expect.email)
        assert stored.status_code == 200, stored.text
        assert stored.json()["contact"][expect.field] == expect.value
    assert_workspace_readable(client, tenant)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "application/x-www-form-urlencoded", "text/csv"],
)
def test_wrong_content_type_with_a_json_body(
    content_type: str, client: TestClient, tenant: Tenant
) -> None:
    """A body declared as something else is refused even if it parses as JSON."""
    response = post(
        client, tenant, contact(b'"first_name":"Typed"'), {"Content-Type": content_type}
    )
    assert response.status_code in (400, 415), response.text
    assert_error_body(response)
    assert get_contact(client, tenant, EMAIL).status_code == 404


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", None])
def test_json_content_types_that_are_accepted(
    content_type: str | None, client: TestClient, tenant: Tenant
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = post(client, tenant, contact(b'"first_name":"Typed"'), headers)
    assert response.status_code == 200, response.text
    assert response.json()["operations"][0]["action"] == "create"


def test_date_times_keep_their_instant_across_the_whole_range(
    client: TestClient, tenant: Tenant
) -> None:
    """Every year from 1 to 9999 that stays in range once in UTC reads back as sent."""
    sent = {
        f"y{year}@example.com": datetime(year, 6, 15, 12, 30, 45, 123456).isoformat() + "Z"
        for year in (1, 99, 999, 1000, 1969, 1970, 2038, 9999)
    }
    contacts = [{"email": e, "custom_datetime_1": v} for e, v in sent.items()]
    body = {"workspace_id": tenant.id, "contacts": contacts}
    response = client.post("/api/contacts.import", headers=tenant.headers, json=body)
    assert response.status_code == 200, response.text
    assert {op["action"] for op in response.json()["operations"]} == {"create"}
    for email, value in sent.items():
        stored = get_contact(client, tenant, email)
        assert stored.status_code == 200, (email, stored.text)
        assert stored.json()["contact"]["custom_datetime_1"] == value
    assert_workspace_readable(client, tenant)


# --- every string of every route ----------------------------------------------------------------


def string_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_leaves(item, (*path, index))


def replaced(value: Any, path: tuple[Any, ...], make: Callable[[str], str]) -> Any:
    if not path:
        return make(value)
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], make)
    return copy


POISON = "\ue000POISON\ue000"  # stands for the invalid UTF-8 bytes in the encoded body


def send_poisoned(
    client: TestClient, case: RouteCase, tenant: Tenant, path: tuple[Any, ...], kind: str
) -> httpx.Response:
    request = case.build(tenant.id)
    if kind == "nul":
        return case.send(client, tenant.headers, replaced(request, path, lambda s: s + "\x00"))
    poisoned = replaced(request, path, lambda s: s + POISON)
    if case.method == "GET":
        query = urlencode(poisoned, quote_via=quote).replace(quote(POISON), "%FF%FE")
        return client.get(f"{case.path}?{query}", headers=tenant.headers)
    if case.form:
        fields = {
            k: str(v).encode().replace(POISON.encode(), b"\xff\xfe") for k, v in poisoned.items()
        }
        return case.send(client, tenant.headers, fields)
    body = json.dumps(poisoned, ensure_ascii=False).encode().replace(POISON.encode(), b"\xff\xfe")
    return client.post(case.path, content=body, headers={**tenant.headers, **JSON})


@pytest.mark.parametrize("kind", ["nul", "invalid-utf8"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_poison_in_every_string_of_every_route(
    case: RouteCase, kind: str, client: TestClient, tenant: Tenant
) -> None:
    """A NUL character or invalid UTF-8 in any one string: a 4xx or a per-contact error."""
    seed(client, tenant.id, tenant.headers, "Seed")
    failures = []
    leaves = list(string_leaves(case.build(tenant.id)))
    for path in leaves:
        response = send_poisoned(client, case, tenant, path, kind)
        assert_no_traceback(response.text)
        if response.status_code >= 500:
            failures.append(f"{'.'.join(map(str, path))}: {response.status_code} {response.text}")
        elif response.status_code >= 400:
            assert_error_body(response)
    assert not failures, f"{case.method} {case.path} with {kind}:\n" + "\n".join(failures)
    assert_workspace_readable(client, tenant)
    print(f"[reliability] poison {kind} {case.id}: {len(leaves)} strings")


NOT_AN_OBJECT = {
    "empty": b"",
    "array": b"[]",
    "null": b"null",
    "number": b"1e400",
    "ends early": b'{"workspace_id":"acme",',
    "deep": b'{"workspace_id":"acme","x":' + nested(5000) + b"}",
    "invalid UTF-8": b'{"workspace_id":"acme","x":"\xff"}',
    "lone surrogate": b'{"workspace_id":"acme","x":"\\ud800"}',
}
POST_CASES = [c for c in CASES if c.method == "POST" and not c.form]  # JSON bodies


@pytest.mark.parametrize("case", POST_CASES, ids=[c.id for c in POST_CASES])
def test_malformed_bodies_on_every_json_route(
    case: RouteCase, client: TestClient, tenant: Tenant
) -> None:
    failures = []
    for name, body in NOT_AN_OBJECT.items():
        response = client.post(case.path, content=body, headers={**tenant.headers, **JSON})
        assert_no_traceback(response.text)
        error = response.json().get("error", "") if response.status_code >= 400 else ""
        if response.status_code != 400 or not error.startswith("invalid JSON body:"):
            failures.append(f"{name}: {response.status_code} {response.text[:200]}")
    assert not failures, f"{case.method} {case.path}:\n" + "\n".join(failures)


@pytest.mark.parametrize("cursor", ["AA", "YQA", "_w", "4oCm", "=" * 8, "A" * 10_000])
def test_hostile_cursors(cursor: str, client: TestClient, tenant: Tenant) -> None:
    """Cursors no page ever handed out ("AA" is the base64 of a NUL byte): 200 or a 400."""
    params = {"workspace_id": tenant.id, "cursor": cursor}
    response = client.get("/api/contacts.list", headers=tenant.headers, params=params)
    assert response.status_code in (200, 400), response.text
    assert_no_traceback(response.text)
    if response.status_code == 400:
        assert assert_error_body(response).startswith("cursor:")


HOSTILE_KEYS = {
    "NUL in the workspace part": "Bearer aud_ac\x00me_" + "a" * 42,
    "NUL in the secret": "Bearer aud_acme_" + "a" * 20 + "\x00" + "a" * 21,
    "10 KB key": "Bearer aud_acme_" + "a" * 10_000,
    "empty workspace part": "Bearer aud__" + "a" * 42,
    "underscores only": "Bearer aud_____" + "_" * 42,
    "no scheme": "aud_acme_" + "a" * 42,
    "Basic scheme": "Basic YWNtZTpwYXNzd29yZA==",
    "scheme alone": "Bearer",
    "two spaces": "Bearer  ",
}


@pytest.mark.parametrize("name", list(HOSTILE_KEYS))
def test_hostile_authorization_headers(name: str, client: TestClient, tenant: Tenant) -> None:
    headers = {"Authorization": HOSTILE_KEYS[name]}
    body = {"workspace_id": tenant.id, "contacts": [{"email": EMAIL}]}
    response = client.post("/api/contacts.import", headers=headers, json=body)
    assert response.status_code == 401, response.text
    assert_error_body(response)
    params = {"workspace_id": tenant.id}
    response = client.get("/api/contacts.count", headers=headers, params=params)
    assert response.status_code == 401, response.text
