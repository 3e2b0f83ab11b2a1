"""What the tests of tests/web share: the served document, its operations, the seeded data,
and the check that an answer is what the document says it can be."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import httpx
import jsonschema_rs
from fastapi import FastAPI
from fastapi.testclient import TestClient

from audience.app import create_app
from audience.config import Settings
from audience.import_jobs.worker import Worker

SEED_EMAIL = "seed@example.com"
SEED_EXTERNAL_ID = "ext-1"
SEED_LIST = "news"
NEW_LIST = "fresh"
NEW_EMAIL = "new@example.com"

#: Every operationId, in Notifuse's style.
OPERATION_IDS = {
    ("POST", "/api/contacts.import"): "batchImportContacts",
    ("POST", "/api/contacts.upsert"): "upsertContact",
    ("GET", "/api/contacts.getByEmail"): "getContactByEmail",
    ("GET", "/api/contacts.getByExternalID"): "getContactByExternalID",
    ("GET", "/api/contacts.list"): "listContacts",
    ("GET", "/api/contacts.count"): "countContacts",
    ("POST", "/api/contacts.delete"): "deleteContact",
    ("POST", "/api/contactLists.updateStatus"): "updateContactListStatus",
    ("POST", "/api/lists.create"): "createList",
    ("GET", "/api/lists.list"): "listLists",
    ("GET", "/api/lists.get"): "getList",
    ("POST", "/api/lists.update"): "updateList",
    ("POST", "/api/lists.delete"): "deleteList",
    ("POST", "/api/imports.create"): "createImport",
    ("GET", "/api/imports.get"): "getImport",
    ("GET", "/api/imports.list"): "listImports",
    ("POST", "/api/imports.cancel"): "cancelImport",
    ("GET", "/api/imports.errors"): "getImportErrors",
    ("GET", "/healthz"): "health",
}
#: The file imports.create uploads when a request names no other.
UPLOAD = b"email\nnew@example.com\n"
#: An id no import job has.
NO_IMPORT = "imp_0000000000000000"
#: The import jobs seed() made, by workspace: "done" (a dry run that finished, with failed
#: rows) and "queued" (waiting: there is no worker in the tests' apps).
SEEDED_IMPORTS: dict[str, dict[str, str]] = {}


@functools.cache
def served_document() -> dict[str, Any]:
    """/openapi.json as an app serves it (the document needs no database)."""
    app = create_app(Settings(database_url="sqlite://", secret_key="unused"))
    client = TestClient(app)  # not entered: no lifespan, no database
    try:
        response = client.get("/openapi.json")
    finally:
        client.close()
    assert response.status_code == 200
    return dict(response.json())


def document() -> dict[str, Any]:
    """A copy of the served document, for a test to read or change."""
    return copy.deepcopy(served_document())


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    definition: Mapping[str, Any]

    @property
    def id(self) -> str:
        return str(self.definition["operationId"])

    @property
    def query(self) -> list[dict[str, Any]]:
        return [p for p in self.definition.get("parameters", []) if p["in"] == "query"]

    @property
    def required_query(self) -> set[str]:
        return {p["name"] for p in self.query if p.get("required")}

    @property
    def body_schema(self) -> dict[str, Any] | None:
        """The request body's component, resolved."""
        body = self.definition.get("requestBody")
        if body is None:
            return None
        (content,) = body["content"].values()  # application/json, or multipart/form-data
        return resolve(content["schema"])

    @property
    def multipart(self) -> bool:
        return "multipart/form-data" in self.definition.get("requestBody", {}).get("content", {})

    @property
    def required_body(self) -> set[str]:
        schema = self.body_schema
        return set(schema.get("required", [])) if schema else set()

    def send(
        self,
        client: TestClient | httpx.Client,
        request: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """GET with `request` as the query, POST with it as the JSON body (as a form for a
        multipart operation: its `file` as the uploaded file, when it names one)."""
        if self.method == "GET":
            return client.get(self.path, params=dict(request), headers=headers)
        if self.multipart:
            fields = {k: v for k, v in request.items() if k != "file"}
            upload = request.get("file")
            files = {} if upload is None else {"file": ("f.csv", upload)}
            return client.post(self.path, data=fields, files=files, headers=headers)
        return client.post(self.path, json=dict(request), headers=headers)


def operations() -> list[Operation]:
    return [
        Operation(method.upper(), path, definition)
        for path, methods in served_document()["paths"].items()
        for method, definition in methods.items()
    ]


def operation(operation_id: str) -> Operation:
    (found,) = [op for op in operations() if op.id == operation_id]
    return found


def resolve(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A schema with its top-level $ref followed."""
    while "$ref" in schema:
        name = str(schema["$ref"]).removeprefix("#/components/schemas/")
        schema = served_document()["components"]["schemas"][name]
    return dict(schema)


def nullable(schema: Mapping[str, Any]) -> bool:
    schema = resolve(schema)
    return schema.get("type") == "null" or any(
        resolve(option).get("type") == "null" for option in schema.get("anyOf", [])
    )


# --- answers ------------------------------------------------------------------------------------


def _closed(node: Any) -> Any:
    """The schema with every object that lists its properties closed to any other one."""
    if isinstance(node, dict):
        closed = {key: _closed(value) for key, value in node.items()}
        if "properties" in closed and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(node, list):
        return [_closed(item) for item in node]
    return node


@functools.cache
def _answer_validator(schema_json: str) -> jsonschema_rs.Validator:
    components = _closed(served_document()["components"])
    root = {**json.loads(schema_json), "components": components}
    return jsonschema_rs.validator_for(root, validate_formats=True)


def check_answer(op: Operation, response: httpx.Response) -> Any:
    """The answer's status is documented for the operation, its headers are the documented
    ones, and its body validates against the documented schema, with no field the schema
    does not list; the decoded body is returned."""
    responses = op.definition["responses"]
    status = str(response.status_code)
    assert status in responses, (
        f"{op.id} answered {status}, documented: {sorted(responses)}: {response.text[:300]}"
    )
    documented = responses[status]
    for name, header in documented.get("headers", {}).items():
        if not header.get("required") and name.lower() not in response.headers:
            continue  # a header documented as sometimes sent
        assert name.lower() in response.headers, f"{op.id} {status}: no {name} header"
        validator = jsonschema_rs.validator_for(header["schema"])
        assert validator.is_valid(response.headers[name]), (name, response.headers[name])
    content = documented.get("content", {})
    media_type = response.headers.get("content-type", "").partition(";")[0]
    assert media_type in content, f"{op.id} {status}: {media_type} is not documented"
    body = response.text if media_type.startswith("text/") else response.json()
    schema = content[media_type]["schema"]
    errors = list(_answer_validator(json.dumps(schema, sort_keys=True)).iter_errors(body))
    assert not errors, f"{op.id} {status} does not match its documented schema: " + "; ".join(
        f"{e.instance_path}: {e.message[:200]}" for e in errors[:5]
    )
    return body


def answer_schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, schema) of every component reachable from an answer's body."""
    components = served_document()["components"]["schemas"]
    pending: list[Any] = [
        answer.get("content", {})
        for op in operations()
        for answer in op.definition["responses"].values()
    ]
    seen: set[str] = set()
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.removeprefix("#/components/schemas/")
                if name not in seen:
                    seen.add(name)
                    pending.append(components[name])
                    yield name, components[name]
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)


# --- data ---------------------------------------------------------------------------------------

#: A contact with every field set, so that answers show every field's documented type.
FULL_CONTACT: dict[str, Any] = {
    "email": SEED_EMAIL,
    "external_id": SEED_EXTERNAL_ID,
    "timezone": "Europe/Paris",
    "language": "fr",
    "first_name": "Seed",
    "last_name": "Contact",
    "full_name": "Seed Contact",
    "phone": "+33 1 23 45 67 89",
    "address_line_1": "1 rue de la Paix",
    "address_line_2": "Bât. B",
    "country": "FR",
    "postcode": "75002",
    "state": "IDF",
    "job_title": "Tester",
    **{f"custom_string_{i}": f"s{i}" for i in range(1, 6)},
    **{f"custom_number_{i}": i + 0.5 for i in range(1, 6)},
    **{f"custom_datetime_{i}": f"2024-05-0{i}T09:00:00+02:00" for i in range(1, 6)},
    "custom_json_1": {"plan": "pro", "seats": 3, "tags": ["a", ["b"]], "nested": {"x": None}},
    "custom_json_2": [1, "two", {"three": 3.0}],
    "custom_json_3": {},
    "custom_json_4": [],
    "custom_json_5": {"ok": True},
    "list_status": "subscribed",
}


def seed(client: TestClient, workspace_id: str, headers: Mapping[str, str]) -> None:
    """A list, SEED_EMAIL with every field set and another contact, both subscribed to it."""
    body = {"workspace_id": workspace_id, "id": SEED_LIST, "name": "News", "description": "d"}
    response = client.post("/api/lists.create", headers=headers, json=body)
    assert response.status_code == 201, response.text
    imported = {
        "workspace_id": workspace_id,
        "contacts": [FULL_CONTACT, {"email": "other@example.com", "last_name": "Other"}],
        "subscribe_to_lists": [SEED_LIST],
    }
    response = client.post("/api/contacts.import", headers=headers, json=imported)
    assert response.status_code == 200, response.text
    assert [op["action"] for op in response.json()["operations"]] == ["create", "create"]
    SEEDED_IMPORTS[workspace_id] = {
        "done": _seed_import(client, workspace_id, headers, done=True),
        "queued": _seed_import(client, workspace_id, headers, done=False),
    }


#: The seeded import's file: the seeded contact, a bad email and a bad number.
SEED_IMPORT_FILE = (
    f"email,first_name,custom_number_1\n{SEED_EMAIL},Seeded,1\nnot-an-email,X,2\n"
    "third@example.com,Y,many\n"
).encode()


def _seed_import(
    client: TestClient, workspace_id: str, headers: Mapping[str, str], *, done: bool
) -> str:
    """An import job, a dry run (nothing written); imported at once by a worker run here
    when `done`, else left queued (the tests' apps have no workers)."""
    response = client.post(
        "/api/imports.create",
        headers=headers,
        data={"workspace_id": workspace_id, "options": json.dumps({"dry_run": True})},
        files={"file": ("seed.csv", SEED_IMPORT_FILE)},
    )
    assert response.status_code == 202, response.text
    job_id = str(response.json()["import"]["id"])
    if done:
        state = cast(FastAPI, client.app).state
        worker = Worker(state.engine, state.settings)
        while worker.work_once():  # every queued job, in order, this one last
            pass
        params = {"workspace_id": workspace_id, "id": job_id}
        job = client.get("/api/imports.get", headers=headers, params=params).json()["import"]
        assert (job["status"], job["errors"]) == ("completed", 2), job
    return job_id
