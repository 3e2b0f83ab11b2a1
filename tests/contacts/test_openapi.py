"""/openapi.json documents the import field for field with the contract
(docs/spec/contacts-import.openapi.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audience.app import create_app
from audience.config import Settings
from tests.contacts.helpers import DATETIME_FIELDS, JSON_FIELDS, NUMBER_FIELDS, TEXT_FIELDS

SPEC = Path(__file__).resolve().parents[2] / "docs" / "spec" / "contacts-import.openapi.md"

#: The spec's components: property names, and the required ones (copied from the spec file;
#: test_expected_fields_match_the_spec_file checks the copy).
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "BatchImportContactsRequest": (
        {"workspace_id", "contacts", "subscribe_to_lists"},
        {"workspace_id", "contacts"},
    ),
    "BatchImportContactsResponse": ({"operations", "error"}, set()),
    "ErrorResponse": ({"error"}, {"error"}),
    "ContactInput": (
        {"email", *TEXT_FIELDS, *NUMBER_FIELDS, *DATETIME_FIELDS, *JSON_FIELDS},
        {"email"},
    ),
    "UpsertContactOperation": ({"email", "action", "error"}, set()),
}
#: What we add on purpose (docs/import.md rule 4: each operation carries its `index`).
ADDED = {
    "UpsertContactOperation": {"index", "changed_fields", "lists"},
    "BatchImportContactsRequest": {"dry_run", "merge", "list_status"},
    "BatchImportContactsResponse": {"summary", "dry_run"},
    "ContactInput": {"list_status"},
}


def spec_components(text: str) -> dict[str, tuple[set[str], set[str]]]:
    """{schema: (property names, required names)} of the spec's YAML `components.schemas`."""
    block = text.split("components:\n  schemas:\n", 1)[1].split("\n  securitySchemes:", 1)[0]
    result: dict[str, tuple[set[str], set[str]]] = {}
    for chunk in re.split(r"^    (?=\w+:\n)", block, flags=re.M)[1:]:
        name = chunk.split(":", 1)[0]
        properties = re.search(r"^      properties:\n((?:^ {8,}.*\n)*)", chunk, re.M)
        block_text = properties.group(1) if properties else ""
        names = set(re.findall(r"^        (\w+):$", block_text, re.M))
        required_block = re.search(r"^      required:\n((?:^        - .*\n)*)", chunk, re.M)
        required = set(re.findall(r"- (\w+)", required_block.group(1) if required_block else ""))
        result[name] = (names, required)
    return result


def test_expected_fields_match_the_spec_file() -> None:
    assert spec_components(SPEC.read_text()) == EXPECTED


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """/openapi.json as served; the document needs no database, so no lifespan is run."""
    path = tmp_path_factory.mktemp("openapi") / "unused.db"
    app = create_app(Settings(database_url=f"sqlite:///{path}", secret_key="unused"))
    response = TestClient(app).get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return dict(response.json())


def _types(prop: dict[str, Any]) -> set[str]:
    """The non-null JSON types a property schema allows."""
    options = prop.get("anyOf", prop.get("oneOf", [prop]))
    return {o["type"] for o in options if "type" in o} - {"null"}


def _nullable(prop: dict[str, Any]) -> bool:
    options = prop.get("anyOf", prop.get("oneOf", [prop]))
    return bool(prop.get("nullable")) or any(o.get("type") == "null" for o in options)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_component_fields_equal_the_spec(openapi: dict[str, Any], name: str) -> None:
    schemas = openapi["components"]["schemas"]
    assert name in schemas
    properties, required = EXPECTED[name]
    assert set(schemas[name]["properties"]) == properties | ADDED.get(name, set())
    assert required <= set(schemas[name].get("required", []))


def test_contact_input_field_types(openapi: dict[str, Any]) -> None:
    props = openapi["components"]["schemas"]["ContactInput"]["properties"]
    assert _types(props["email"]) == {"string"}
    assert not _nullable(props["email"])
    for name in TEXT_FIELDS:
        assert _types(props[name]) == {"string"}, name
        assert _nullable(props[name]), name
    for name in NUMBER_FIELDS:
        assert _types(props[name]) == {"number"}, name
        assert _nullable(props[name]), name
    for name in DATETIME_FIELDS:
        assert _types(props[name]) == {"string"}, name
        options = props[name].get("anyOf", [props[name]])
        assert any(o.get("format") == "date-time" for o in options), name
        assert _nullable(props[name]), name
    for name in JSON_FIELDS:
        assert "object" in _types(props[name]), name
        assert _types(props[name]) <= {"object", "array"}, name
        assert _nullable(props[name]), name


def test_request_and_response_shapes(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    request = schemas["BatchImportContactsRequest"]["properties"]
    assert _types(request["workspace_id"]) == {"string"}
    assert request["contacts"]["type"] == "array"
    assert request["contacts"]["items"] == {"$ref": "#/components/schemas/ContactInput"}
    assert request["contacts"].get("minItems") == 1
    lists = request["subscribe_to_lists"].get("anyOf", [request["subscribe_to_lists"]])
    assert {"type": "array", "items": {"type": "string"}} in [
        {k: v for k, v in o.items() if k in ("type", "items")} for o in lists
    ]

    response = schemas["BatchImportContactsResponse"]["properties"]
    assert response["operations"]["type"] == "array"
    assert response["operations"]["items"] == {
        "$ref": "#/components/schemas/UpsertContactOperation"
    }
    assert _types(response["error"]) == {"string"} and _nullable(response["error"])

    operation = schemas["UpsertContactOperation"]["properties"]
    assert operation["action"]["enum"] == ["create", "update", "error"]
    assert _types(operation["email"]) == {"string"}
    assert _types(operation["error"]) == {"string"} and _nullable(operation["error"])
    assert _types(operation["index"]) == {"integer"}
    assert _types(schemas["ErrorResponse"]["properties"]["error"]) == {"string"}


def test_import_route_references_the_spec_schemas(openapi: dict[str, Any]) -> None:
    post = openapi["paths"]["/api/contacts.import"]["post"]
    assert post["operationId"] == "batchImportContacts"
    assert post["requestBody"]["required"] is True
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/BatchImportContactsRequest"}
    ok = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/BatchImportContactsResponse"}
    for status in ("400", "401", "500"):
        schema = post["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, status
    assert {"BearerAuth": []} in post["security"]
    scheme = openapi["components"]["securitySchemes"]["BearerAuth"]
    assert (scheme["type"], scheme["scheme"].lower()) == ("http", "bearer")


CONTACT_ROUTES = [
    "/api/contacts.import",
    "/api/contacts.upsert",
    "/api/contacts.getByEmail",
    "/api/contacts.getByExternalID",
    "/api/contacts.list",
    "/api/contacts.count",
    "/api/contacts.delete",
    "/api/contactLists.updateStatus",
]


def test_every_contacts_route_is_documented(openapi: dict[str, Any]) -> None:
    for path in CONTACT_ROUTES:
        assert path in openapi["paths"], path
        (operation,) = openapi["paths"][path].values()
        assert "200" in operation["responses"], path
