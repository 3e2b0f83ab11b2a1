"""/openapi.json tells the truth: what it says of each operation is what the server does.

The document is read as served; every request below is built from it (its required
parameters, its optional ones, its nullable properties) and sent to the app on both
backends, and every answer must have a status the operation documents, the documented
headers, and a body that validates against the documented schema with no undocumented field
(tests/web/support.py, check_answer).
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from swagger_ui_bundle import swagger_ui_path

from audience.api_keys.schemas import Permission
from audience.app import create_app
from audience.config import Settings
from audience.db.models import MembershipStatus
from audience.errors import DatabaseBusy
from audience.import_jobs import service as import_jobs_service
from audience.web import deps
from tests.conftest import Tenant, make_key
from tests.web.support import (
    FULL_CONTACT,
    NEW_EMAIL,
    NEW_LIST,
    NO_IMPORT,
    OPERATION_IDS,
    SEED_EMAIL,
    SEED_EXTERNAL_ID,
    SEED_LIST,
    SEEDED_IMPORTS,
    UPLOAD,
    Operation,
    answer_schemas,
    check_answer,
    document,
    nullable,
    operation,
    operations,
    resolve,
    seed,
)

API = [op for op in operations() if op.path.startswith("/api/")]
API_IDS = [op.id for op in API]
BODY_OPS = [op for op in API if op.body_schema is not None]

#: What each operation truly requires: nothing else may be required.
REQUIRED_QUERY: dict[str, set[str]] = {
    "getContactByEmail": {"workspace_id", "email"},
    "getContactByExternalID": {"workspace_id", "external_id"},
    "listContacts": {"workspace_id"},
    "countContacts": {"workspace_id"},
    "listLists": {"workspace_id"},
    "getList": {"workspace_id", "id"},
    "getImport": {"workspace_id", "id"},
    "listImports": {"workspace_id"},
    "getImportErrors": {"workspace_id", "id"},
}
REQUIRED_BODY: dict[str, set[str]] = {
    "batchImportContacts": {"workspace_id", "contacts"},
    "upsertContact": {"workspace_id", "contact"},
    "deleteContact": {"workspace_id", "email"},
    "updateContactListStatus": {"workspace_id", "email", "list_id", "status"},
    "createList": {"workspace_id", "id", "name"},
    "updateList": {"workspace_id", "id"},
    "deleteList": {"workspace_id", "id"},
    "createImport": {"workspace_id", "file"},
    "cancelImport": {"workspace_id", "id"},
}
#: The error answers each operation can give (web/openapi.py), besides 2xx.
ERRORS_OF_GET = {"400", "401", "403", "408", "413", "431", "500", "503"}
ERRORS_OF_POST = ERRORS_OF_GET | {"415"}
LOOKUPS = {
    "getContactByEmail",
    "getContactByExternalID",
    "deleteContact",
    "updateContactListStatus",
    "getList",
    "updateList",
    "deleteList",
    "getImport",
    "cancelImport",
    "getImportErrors",
}
#: The routes that answer a missing permission with 400, as the import does (not 403).
PERMISSION_IS_400 = {"batchImportContacts", "createImport"}
#: A valid `options` of imports.create: every option (the form documents it as JSON text).
IMPORT_OPTIONS = json.dumps(
    {
        "subscribe_to_lists": [SEED_LIST],
        "list_status": "active",
        "merge": "fill_blanks",
        "dry_run": True,
        "mapping": {"email": "email"},
        "empty_clears": True,
        "timezone": "Europe/Berlin",
        "decimal_comma": True,
    }
)

_fresh = itertools.count()


def value_for(op: Operation, name: str, workspace_id: str) -> Any:
    """A valid value for a required parameter, naming the seeded data."""
    if name == "workspace_id":
        return workspace_id
    if op.id == "createList" and name == "id":
        return f"{NEW_LIST}{next(_fresh)}"
    if op.path.startswith("/api/imports.") and name == "id":
        seeded = SEEDED_IMPORTS.get(workspace_id, {})
        return seeded.get("queued" if op.id == "cancelImport" else "done", NO_IMPORT)
    return {
        "email": SEED_EMAIL,
        "external_id": SEED_EXTERNAL_ID,
        "id": SEED_LIST,
        "list_id": SEED_LIST,
        "status": "unsubscribed",
        "name": "Fresh",
        "contacts": [{"email": NEW_EMAIL}],
        "contact": {"email": NEW_EMAIL},
        "file": UPLOAD,
    }[name]


def minimal(op: Operation, workspace_id: str) -> dict[str, Any]:
    """The operation's required parameters (query) or properties (body), and nothing else."""
    names = op.required_query | op.required_body
    return {name: value_for(op, name, workspace_id) for name in sorted(names)}


#: A documented optional parameter or property, and a value the document says is valid.
OPTIONAL_VALUES: dict[str, dict[str, Any]] = {
    "listContacts": {
        "limit": 5,
        "cursor": None,  # a real one, read from a first page
        "email": "seed",
        "external_id": "ext",
        "first_name": "SEED",
        "last_name": "cont",
        "phone": "33",
        "country": "fr",
        "language": "fr",
        "list_id": SEED_LIST,
        "contact_list_status": "active",
        "with_contact_lists": True,
    },
    "batchImportContacts": {
        "subscribe_to_lists": [SEED_LIST],
        "dry_run": True,
        "merge": "fill_blanks",
        "list_status": "active",
    },
    "upsertContact": {"merge": "fill_blanks"},
    "createImport": {"options": IMPORT_OPTIONS},
    "listImports": {"limit": 5, "cursor": None},  # a real cursor, read from a first page
    "createList": {"is_double_optin": True, "is_public": True, "description": "About"},
    "updateList": {
        "name": "Renamed",
        "is_double_optin": True,
        "is_public": True,
        "description": "About",
    },
}


def _validator(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    return _compiled(json.dumps(schema, sort_keys=True))


@functools.cache
def _compiled(schema: str) -> jsonschema_rs.Validator:
    root = {**json.loads(schema), "components": document()["components"]}
    return jsonschema_rs.validator_for(root, validate_formats=True)


def assert_documented_valid(op: Operation, request: dict[str, Any]) -> None:
    """The request is one the document calls valid (so the server must accept it)."""
    if op.method == "GET":
        for parameter in op.query:
            if parameter["name"] in request:
                value = request[parameter["name"]]
                assert _validator(parameter["schema"]).is_valid(value), (op.id, parameter, value)
        return
    (content,) = op.definition["requestBody"]["content"].values()
    if op.multipart:  # the file's bytes are a binary string
        request = {
            k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in request.items()
        }
    errors = [e.message[:200] for e in _validator(content["schema"]).iter_errors(request)]
    assert not errors, (op.id, request, errors)


@pytest.fixture
def seeded(client: TestClient, tenant: Tenant) -> Tenant:
    seed(client, tenant.id, tenant.headers)
    return tenant


# --- what the document says -------------------------------------------------------------------


def test_every_operation_has_its_notifuse_operation_id() -> None:
    found = {(op.method, op.path): op.id for op in operations()}
    assert found == OPERATION_IDS
    for operation_id in found.values():
        assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z]*|ID)*", operation_id), operation_id


def test_only_truly_required_parameters_are_required() -> None:
    for op in API:
        assert op.required_query == REQUIRED_QUERY.get(op.id, set()), op.id
        assert op.required_body == REQUIRED_BODY.get(op.id, set()), op.id
    assert operation("health").required_query == set()


def test_contacts_list_requires_only_the_workspace() -> None:
    op = operation("listContacts")
    assert op.required_query == {"workspace_id"}
    optional = {p["name"] for p in op.query} - {"workspace_id"}
    assert {"email", "external_id", "cursor", "limit", "list_id"} <= optional


def test_query_parameters_are_strings_on_the_wire() -> None:
    """Never null (an optional one is simply left out), and no NUL in a string one."""
    for op in operations():
        for parameter in op.query:
            schema = resolve(parameter["schema"])
            assert not nullable(schema), (op.id, parameter["name"])
            if schema.get("type") == "string" and "enum" not in schema:
                assert re.compile(schema["pattern"]).search("\x00") is None, parameter


def test_identifiers_are_documented_non_empty() -> None:
    for op in API:
        properties = (op.body_schema or {}).get("properties", {})
        named = [(name, schema) for name, schema in properties.items()]
        named += [(p["name"], p["schema"]) for p in op.query if p.get("required")]
        for name, schema in named:
            if name in ("workspace_id", "email", "id", "list_id", "external_id"):
                assert resolve(schema).get("minLength") == 1, (op.id, name)


def test_lists_update_documents_which_fields_may_be_null() -> None:
    properties = resolve({"$ref": "#/components/schemas/UpdateListRequest"})["properties"]
    for name in ("name", "is_double_optin", "is_public"):
        assert not nullable(properties[name]), name
    assert nullable(properties["description"])


def test_answer_timestamps_are_date_times_and_statuses_an_enum() -> None:
    schemas = document()["components"]["schemas"]

    def formats(schema: dict[str, Any]) -> set[str]:
        options = schema.get("anyOf", [schema])
        return {o["format"] for o in options if "format" in o}

    stamped = {"ContactOut", "ContactListOut", "ListOut"}
    for name in stamped:
        for field in ("created_at", "updated_at"):
            assert formats(schemas[name]["properties"][field]) == {"date-time"}, (name, field)
    for field in ("created_at", "started_at", "finished_at"):
        assert formats(schemas["JobOut"]["properties"][field]) == {"date-time"}, field
    assert schemas["JobOut"]["properties"]["status"]["enum"] == [
        "queued",
        "running",
        "completed",
        "failed",
        "cancelled",
    ]
    assert schemas["JobOut"]["properties"]["format"]["enum"] == ["csv", "jsonl"]
    for i in range(1, 6):
        assert formats(schemas["ContactOut"]["properties"][f"custom_datetime_{i}"]) == {"date-time"}
    statuses = [m.value for m in MembershipStatus]
    for name in ("ContactListOut", "UpdateStatusRequest"):
        assert resolve(schemas[name]["properties"]["status"])["enum"] == statuses, name


#: Answer fields the server leaves out at times, by schema: documented, but not required.
#: Every other field of an answer is always sent (null when it has no value).
SOMETIMES_ABSENT: dict[str, set[str]] = {
    # An error operation carries neither; `lists` only with subscribe_to_lists.
    "UpsertContactOperation": {"changed_fields", "lists"},
    # Only a dry run's answer says so.
    "BatchImportContactsResponse": {"dry_run"},
}


def test_answer_schemas_require_every_field_the_server_always_sends() -> None:
    """check_answer then proves it on every answer: a required field missing fails it."""
    names = set()
    for name, schema in answer_schemas():
        names.add(name)
        if "properties" in schema:
            optional = set(schema["properties"]) - set(schema.get("required", []))
            assert optional == SOMETIMES_ABSENT.get(name, set()), (
                f"{name}: {sorted(optional)} not required; if the server does not always send"
                " them, list them in SOMETIMES_ABSENT"
            )
    assert {"ContactOut", "ContactListOut", "ListOut", "ContactsPage"} <= names
    contact = document()["components"]["schemas"]["ContactOut"]["properties"]
    assert nullable(contact["contact_lists"])  # sent as null when not asked for


@pytest.mark.parametrize("op", API, ids=API_IDS)
def test_every_api_operation_documents_its_error_answers(op: Operation) -> None:
    responses = op.definition["responses"]
    expected = ERRORS_OF_POST if op.method == "POST" else ERRORS_OF_GET
    if op.id in PERMISSION_IS_400:
        expected = expected - {"403"}  # a missing permission is a 400 on the imports
    if op.id in LOOKUPS:
        expected = expected | {"404"}
    if op.id in ("batchImportContacts", "upsertContact"):  # they take an Idempotency-Key
        expected = expected | {"409", "422"}
    assert {code for code in responses if code >= "400"} == expected
    for code in expected:
        schema = responses[code]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, code
    assert responses["401"]["headers"]["WWW-Authenticate"]["schema"]["const"] == "Bearer"
    assert "Retry-After" in responses["503"]["headers"]


def test_no_operation_documents_fastapis_422() -> None:
    """422 is only the Idempotency-Key mismatch, of the routes that take one, as an error."""
    for op in operations():
        responses = op.definition["responses"]
        takes_key = any(p["name"] == "Idempotency-Key" for p in op.definition.get("parameters", []))
        assert ("422" in responses) == takes_key, op.id
        if takes_key:
            schema = responses["422"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, op.id
    schemas = document()["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas


# --- what the server does ---------------------------------------------------------------------


def test_a_missing_or_empty_required_query_parameter_is_400(
    client: TestClient, seeded: Tenant
) -> None:
    for op_id, names in REQUIRED_QUERY.items():
        op = operation(op_id)
        request = minimal(op, seeded.id)
        for name in sorted(names):
            for missing in ({k: v for k, v in request.items() if k != name}, {**request, name: ""}):
                response = op.send(client, missing, seeded.headers)
                assert response.status_code == 400, (op_id, missing)
                assert check_answer(op, response) == {"error": f"{name} is required"}


def test_a_missing_required_body_property_is_400(client: TestClient, seeded: Tenant) -> None:
    for op_id, names in REQUIRED_BODY.items():
        op = operation(op_id)
        for name in sorted(names):
            request = {k: v for k, v in minimal(op, seeded.id).items() if k != name}
            response = op.send(client, request, seeded.headers)
            assert response.status_code == 400, (op_id, name, response.text)
            error = check_answer(op, response)["error"]
            assert error in (f"{name} is required", f"{name}: Field required"), (op_id, error)


def test_a_contact_without_email_is_refused(client: TestClient, seeded: Tenant) -> None:
    """ContactInput's one required property: 400 on upsert, an error operation on import."""
    upsert = operation("upsertContact")
    response = upsert.send(client, {"workspace_id": seeded.id, "contact": {}}, seeded.headers)
    assert check_answer(upsert, response) == {"error": "email is required"}
    imported = operation("batchImportContacts")
    request = {"workspace_id": seeded.id, "contacts": [{"first_name": "No email"}]}
    body = check_answer(imported, imported.send(client, request, seeded.headers))
    assert body["operations"][0]["action"] == "error"
    assert body["operations"][0]["error"] == "email is required"


def test_only_the_required_parameters_are_enough(client: TestClient, tenant: Tenant) -> None:
    """Sent to an empty workspace, then to a seeded one: 2xx, or a documented 404 when the
    data it names does not exist (the deletions last, so that they leave the data to the
    others)."""
    ordered = sorted(operations(), key=lambda op: op.id.startswith("delete"))
    for op in ordered:
        request = minimal(op, tenant.id)
        assert_documented_valid(op, request)
        response = op.send(client, request, tenant.headers)
        check_answer(op, response)
        assert response.status_code < 300 or response.status_code == 404, (op.id, response.text)
    seed(client, tenant.id, tenant.headers)
    for op in ordered:
        response = op.send(client, minimal(op, tenant.id), tenant.headers)
        check_answer(op, response)
        assert response.status_code < 300, (op.id, response.text)


def test_each_documented_optional_parameter_is_accepted(client: TestClient, seeded: Tenant) -> None:
    for op_id in sorted(OPTIONAL_VALUES):
        _check_optional_parameters(client, seeded, operation(op_id))
    for op in API:
        documented = {p["name"] for p in op.query} | set(
            (op.body_schema or {}).get("properties", {})
        )
        if documented - op.required_query - op.required_body:
            assert op.id in OPTIONAL_VALUES, op.id


def _check_optional_parameters(client: TestClient, seeded: Tenant, op: Operation) -> None:
    documented = {p["name"] for p in op.query} | set((op.body_schema or {}).get("properties", {}))
    optional = documented - op.required_query - op.required_body
    values = dict(OPTIONAL_VALUES[op.id])
    assert set(values) == optional, "every optional parameter needs a value here"
    if "cursor" in values:
        first = op.send(client, {"workspace_id": seeded.id, "limit": 1}, seeded.headers)
        values["cursor"] = check_answer(op, first)["next_cursor"]
    for name, value in [*values.items(), ("all of them", None)]:
        request = minimal(op, seeded.id)
        request.update(values if name == "all of them" else {name: value})
        assert_documented_valid(op, request)
        response = op.send(client, request, seeded.headers)
        check_answer(op, response)
        assert response.status_code < 300, (name, response.text)


def _contact_fields() -> list[tuple[str, Any]]:
    properties = resolve({"$ref": "#/components/schemas/ContactInput"})["properties"]
    assert set(properties) == set(FULL_CONTACT), (
        "each ContactInput field needs a value in FULL_CONTACT (tests/web/support.py)"
    )
    return [(name, FULL_CONTACT[name]) for name in properties if name != "email"]


def test_each_optional_contact_field_is_accepted(client: TestClient, seeded: Tenant) -> None:
    for op_id in ("upsertContact", "batchImportContacts"):
        _check_contact_fields(client, seeded, operation(op_id))


def _check_contact_fields(client: TestClient, seeded: Tenant, op: Operation) -> None:
    op_id = op.id
    for name, value in [*_contact_fields(), ("all of them", None)]:
        contact = FULL_CONTACT if name == "all of them" else {"email": NEW_EMAIL, name: value}
        key = "contact" if op_id == "upsertContact" else "contacts"
        request = {"workspace_id": seeded.id, key: contact if key == "contact" else [contact]}
        assert_documented_valid(op, request)
        body = check_answer(op, op.send(client, request, seeded.headers))
        if op_id == "batchImportContacts":
            assert body["operations"][0]["action"] != "error", (name, body)
        else:
            assert body["action"] in ("create", "update"), (name, body)


def _null_cases() -> Iterator[tuple[str, str]]:
    for op in BODY_OPS:
        if op.multipart:  # a form's fields are text: no null (test_form_fields_are_...)
            continue
        for name in (op.body_schema or {}).get("properties", {}):
            yield op.id, name
    for name in resolve({"$ref": "#/components/schemas/ContactInput"})["properties"]:
        yield "upsertContact", f"contact.{name}"
        yield "batchImportContacts", f"contacts.{name}"


def test_form_fields_are_text_never_null() -> None:
    """A multipart form has no null: an optional field is simply not required (a client
    that sent null would send the text "None" or "null", which is no JSON object)."""
    forms = [op for op in BODY_OPS if op.multipart]
    assert [op.id for op in forms] == ["createImport"]
    for op in forms:
        for name, schema in (op.body_schema or {})["properties"].items():
            assert not nullable(schema), (op.id, name)
            assert resolve(schema)["type"] == "string", (op.id, name)
        assert resolve(op.body_schema["properties"]["file"])["format"] == "binary"  # type: ignore[index]


def test_null_is_accepted_exactly_where_the_document_says_nullable(
    client: TestClient, seeded: Tenant
) -> None:
    for op_id, name in _null_cases():
        _check_null(client, seeded, operation(op_id), name)


def _check_null(client: TestClient, seeded: Tenant, op: Operation, name: str) -> None:
    op_id = op.id
    request = minimal(op, seeded.id)
    parent, _, field = name.rpartition(".")
    if parent:
        schema = resolve({"$ref": "#/components/schemas/ContactInput"})["properties"][field]
        contact = {"email": NEW_EMAIL, field: None}
        request[parent] = contact if parent == "contact" else [contact]
    else:
        schema = (op.body_schema or {})["properties"][field]
        request[field] = None
    response = op.send(client, request, seeded.headers)
    body = check_answer(op, response)
    refused = response.status_code == 400 or (
        parent == "contacts" and body["operations"][0]["action"] == "error"
    )
    assert refused is not nullable(schema), (op_id, name, response.status_code, body)
    if op_id == "updateList" and field in ("name", "is_double_optin", "is_public"):
        assert body == {"error": f"{field}: must not be null"}
    if op_id == "updateList" and field == "description":
        assert body["list"]["description"] is None  # null clears it


def test_answers_send_every_field_the_document_lists(client: TestClient, seeded: Tenant) -> None:
    """Each lookup of the fully set contact validates (date-times, JSON fields, statuses);
    contact_lists is sent as null when not asked for, as a list when asked or looked up."""
    params, headers = {"workspace_id": seeded.id}, seeded.headers
    by_email = operation("getContactByEmail")
    request: dict[str, Any] = {**params, "email": SEED_EMAIL}
    found = check_answer(by_email, by_email.send(client, request, headers))
    by_id = operation("getContactByExternalID")
    request = {**params, "external_id": SEED_EXTERNAL_ID}
    assert check_answer(by_id, by_id.send(client, request, headers)) == found
    contact = found["contact"]
    assert contact["custom_datetime_1"] == "2024-05-01T07:00:00Z"
    assert contact["custom_json_1"] == FULL_CONTACT["custom_json_1"]
    assert [m["status"] for m in contact["contact_lists"]] == ["active"]
    listed = operation("listContacts")
    page = check_answer(listed, listed.send(client, params, headers))
    assert [c["contact_lists"] for c in page["contacts"]] == [None, None]
    request = {**params, "with_contact_lists": True}
    page = check_answer(listed, listed.send(client, request, headers))
    assert all(isinstance(c["contact_lists"], list) for c in page["contacts"])


def test_import_answers_send_every_field_the_document_lists(
    client: TestClient, seeded: Tenant
) -> None:
    """The seeded finished job has a value in every field but `error`; the queued one
    nulls where the document says so; the error report is CSV, as documented."""
    params, headers = {"workspace_id": seeded.id}, seeded.headers
    get = operation("getImport")
    done = SEEDED_IMPORTS[seeded.id]["done"]
    job = check_answer(get, get.send(client, {**params, "id": done}, headers))["import"]
    assert [name for name, value in job.items() if value is None] == ["error"]
    assert (job["status"], job["format"], job["dry_run"]) == ("completed", "csv", True)
    assert (job["total_rows"], job["processed_rows"], job["errors"]) == (3, 3, 2)
    queued = SEEDED_IMPORTS[seeded.id]["queued"]
    waiting = check_answer(get, get.send(client, {**params, "id": queued}, headers))["import"]
    nulls = [name for name, value in waiting.items() if value is None]
    assert nulls == ["total_rows", "error", "started_at", "finished_at"]
    listed = operation("listImports")
    page = check_answer(listed, listed.send(client, params, headers))
    assert [j["id"] for j in page["imports"]] == [queued, done]
    assert page["imports"][1] == job
    errors = operation("getImportErrors")
    report = errors.send(client, {**params, "id": done}, headers)
    assert report.headers["content-type"] == "text/csv; charset=utf-8"
    assert check_answer(errors, report) == (
        "line,email,error,email,first_name,custom_number_1\r\n"
        "3,not-an-email,invalid email format,not-an-email,X,2\r\n"
        "4,third@example.com,\"custom_number_1: expected a number, got 'many'\","
        "third@example.com,Y,many\r\n"
    )


def test_401_answers_carry_www_authenticate(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    for op in API:
        _check_unauthorized(client, tenant, other_tenant, op)


def _check_unauthorized(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, op: Operation
) -> None:
    request = minimal(op, tenant.id)
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer aud_acme_not-a-key"},
        other_tenant.headers,
    ):
        response = op.send(client, request, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        check_answer(op, response)


def test_a_key_without_the_permission_gets_a_documented_answer(
    client: TestClient, engine: Engine, seeded: Tenant
) -> None:
    keys = [make_key(engine, seeded.id, (permission,)) for permission in Permission]
    for op in sorted(API, key=lambda op: op.id.startswith("delete")):
        statuses = set()
        for key in keys:
            headers = {"Authorization": f"Bearer {key}"}
            response = op.send(client, minimal(op, seeded.id), headers)
            check_answer(op, response)
            statuses.add(response.status_code)
        assert (403 in statuses) is (op.id not in PERMISSION_IS_400), (op.id, statuses)


def test_a_body_that_is_not_json_is_415(client: TestClient, tenant: Tenant) -> None:
    headers = {**tenant.headers, "Content-Type": "text/plain"}
    for op in BODY_OPS:
        response = client.post(op.path, content=b"{}", headers=headers)
        assert response.status_code == 415, op.id
        check_answer(op, response)


def test_a_body_too_large_is_413_on_every_operation(settings: Settings, tenant: Tenant) -> None:
    """Over AUDIENCE_MAX_BODY_BYTES; for an upload, over AUDIENCE_MAX_UPLOAD_BYTES (its
    body: that and the form's envelope, refused before the route; its file: that alone)."""
    limits = {"max_body_bytes": 64, "max_upload_bytes": 1024}
    app = create_app(settings.model_copy(update=limits))
    with TestClient(app, raise_server_exceptions=False) as client:
        for op in API:
            if op.multipart:
                request = minimal(op, tenant.id)
                for upload in (UPLOAD + b"x" * 1100 * 1024, UPLOAD + b"x" * 1024):
                    response = op.send(client, {**request, "file": upload}, tenant.headers)
                    assert response.status_code == 413, (op.id, response.text)
                    check_answer(op, response)
                continue
            body = b'{"workspace_id": "acme", "padding": "' + b"x" * 100 + b'"}'
            headers = {**tenant.headers, "Content-Type": "application/json"}
            response = client.request(op.method, op.path, content=body, headers=headers)
            assert response.status_code == 413, op.id
            check_answer(op, response)


def test_a_busy_database_is_a_documented_503(
    settings: Settings, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DatabaseBusy (a lock, statement or pool timeout) wherever a route takes its
    transaction: 503 with Retry-After, as documented, on every operation. (The upload and
    the error report take theirs in the service, a few at a time, not from the route.)"""

    def busy() -> Iterator[None]:
        raise DatabaseBusy()
        yield

    app = create_app(settings)
    for transaction in (deps.ReadDb, deps.WriteDb):
        app.dependency_overrides[typing.get_args(transaction)[1].dependency] = busy
    monkeypatch.setattr(
        import_jobs_service, "transaction", lambda *args, **kwargs: contextmanager(busy)()
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        for op in API:
            response = op.send(client, minimal(op, tenant.id), tenant.headers)
            assert response.status_code == 503, (op.id, response.text)
            assert response.headers["Retry-After"] == "1"
            check_answer(op, response)


def test_nul_in_a_query_parameter_is_400(client: TestClient, seeded: Tenant) -> None:
    for op in API:
        for parameter in op.query:
            if resolve(parameter["schema"]).get("type") != "string":
                continue
            request = {**minimal(op, seeded.id), parameter["name"]: "a\x00b"}
            response = op.send(client, request, seeded.headers)
            assert response.status_code == 400, (op.id, parameter["name"])
            check_answer(op, response)


def test_health_answers_as_documented(client: TestClient, settings: Settings) -> None:
    op = operation("health")
    assert check_answer(op, client.get("/healthz")) == {"status": "ok"}
    unreachable = settings.model_copy(
        update={"database_url": "postgresql://nobody@127.0.0.1:9/none", "auto_migrate": False}
    )
    with TestClient(create_app(unreachable), raise_server_exceptions=False) as down:
        response = down.get("/healthz")
    assert response.status_code == 503
    check_answer(op, response)


# --- /docs without internet access ------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def test_docs_need_nothing_but_this_server(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text
    parser = _Links()
    parser.feed(page.text)
    urls = parser.urls + re.findall(r"url: '([^']+)'", page.text)
    assert "/openapi.json" in urls and "/docs/assets/swagger-ui-bundle.js" in urls
    assert '"validatorUrl": null' in page.text  # no badge fetched from validator.swagger.io
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        response = client.get(url)
        assert response.status_code == 200, url
        if url.startswith("/docs/assets/"):
            packaged = Path(swagger_ui_path) / url.removeprefix("/docs/assets/")
            assert response.content == packaged.read_bytes(), url
