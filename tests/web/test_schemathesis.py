"""Schemathesis, positive data only: every request the document calls valid is accepted.

Requests are generated from the served /openapi.json for each operation and sent in-process
(schemathesis' ASGI transport) with the tenant's real key and its own workspace_id. The
server may answer a documented error that depends on the data (404 for a contact or a list
that does not exist, 401 for nothing here), never "valid request rejected" (schemathesis'
positive_data_acceptance, ST202: a 400, 413, 415, ... for a schema-valid request) and never a
5xx; each answer conforms to its documented status, content type, headers and schema.

Values that are data rather than shape are steered, as a client would send them: ids and
emails often name the seeded data (an import job to cancel is one queued for it), a cursor
is one the server issued, subscribe_to_lists names existing lists. And the rules the
document can only state in words are honoured: no NUL inside arrays nested in arrays of a
custom_json_* field (JSON Schema's recursion through array items is beyond
openapi-python-client, so those are left open in the schema); imports.create's `options`
is JSON text of an object of the documented options, and its file has some content.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from audience.app import create_app
from audience.config import Settings
from audience.kit.pagination import encode_cursor
from tests.conftest import Tenant
from tests.web.support import (
    SEED_EMAIL,
    SEED_EXTERNAL_ID,
    SEED_LIST,
    SEEDED_IMPORTS,
    UPLOAD,
    operations,
    seed,
)

EXAMPLES_PER_OPERATION = 15
CHECKS = [
    not_a_server_error,
    positive_data_acceptance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
OPERATIONS = [(op.method, op.path) for op in operations()]
#: Parameters that name data: most of the time they name the seeded data.
KNOWN = {
    "email": SEED_EMAIL,
    "external_id": SEED_EXTERNAL_ID,
    "list_id": SEED_LIST,
    "id": SEED_LIST,
}
JSON_FIELDS = [f"custom_json_{i}" for i in range(1, 6)]
#: imports.create's options: the documented ones, with valid values.
IMPORT_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "subscribe_to_lists": st.just([SEED_LIST]),
        "list_status": st.sampled_from(["subscribed", "active", "unsubscribed"]),
        "merge": st.sampled_from(["overwrite", "fill_blanks"]),
        "dry_run": st.booleans(),
        "mapping": st.sampled_from([{}, {"email": "email"}, {"E-mail": "email", "x": None}]),
        "empty_clears": st.booleans(),
        "timezone": st.sampled_from([None, "UTC", "Europe/Berlin", "America/Sao_Paulo"]),
        "decimal_comma": st.booleans(),
    },
)


@pytest.fixture
def fuzz_app(settings: Settings) -> Iterator[FastAPI]:
    """An app of its own for schemathesis' ASGI transport, its lifespan ended afterwards."""
    yield create_app(settings)
    asgi.shutdown_lifespans()


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Issued:
    """What the server issued for the tests to name: the seeded finished import job, a
    cursor of imports.list, and a way to queue a job (one to cancel)."""

    done_import: str
    imports_cursor: str
    queue_import: Callable[[], str]


def steer(case: Any, data: st.DataObject, workspace_id: str, issued: Issued) -> None:
    """The tenant's workspace always; known data mostly (not the id of a list to create);
    server-issued values as issued."""
    path = case.operation.path
    creates = path == "/api/lists.create"
    if case.headers is not None and "Idempotency-Key" in case.headers:
        # A key names one request (reused with another body it is rightly refused, 422):
        # each example gets one of its own.
        case.headers["Idempotency-Key"] = f"fuzz-{uuid.uuid4().hex}"
    for values in (case.query, case.body):
        if not isinstance(values, dict):
            continue
        if "workspace_id" in values:
            values["workspace_id"] = workspace_id
        for name, known in KNOWN.items():
            steered = name in values and not (creates and name == "id")
            if steered and data.draw(st.integers(0, 9), label=f"steer {name}") < 7:
                values[name] = known
        if path.startswith("/api/imports.") and values.get("id") == SEED_LIST:
            cancels = path == "/api/imports.cancel"  # a job can be cancelled once
            values["id"] = issued.queue_import() if cancels else issued.done_import
        if "cursor" in values and path == "/api/imports.list":
            values["cursor"] = issued.imports_cursor
        elif "cursor" in values:
            after = data.draw(st.sampled_from(["a", SEED_EMAIL]), label="cursor")
            values["cursor"] = encode_cursor(after)
        if path == "/api/imports.create":
            if not values.get("file"):
                values["file"] = UPLOAD
            if "options" in values:
                values["options"] = json.dumps(data.draw(IMPORT_OPTIONS, label="options"))
        if values.get("subscribe_to_lists"):
            values["subscribe_to_lists"] = [SEED_LIST]
        contacts = values.get("contacts") or [values.get("contact")]
        for contact in contacts if isinstance(contacts, list) else []:
            if isinstance(contact, dict):
                for name in JSON_FIELDS:  # an array nested in an array, at any depth
                    if isinstance(contact.get(name), list | dict):
                        contact[name] = _without_nul(contact[name])


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[p for _, p in OPERATIONS])
def test_every_valid_request_is_accepted(
    method: str, path: str, client: TestClient, tenant: Tenant, fuzz_app: FastAPI
) -> None:
    seed(client, tenant.id, tenant.headers)
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {tenant.key}"}
    first = client.get(
        "/api/imports.list", headers=headers, params={"workspace_id": tenant.id, "limit": 1}
    )
    assert first.status_code == 200, first.text

    def queue_import() -> str:
        response = client.post(
            "/api/imports.create",
            headers=headers,
            data={"workspace_id": tenant.id},
            files={"file": ("f.csv", UPLOAD)},
        )
        assert response.status_code == 202, response.text
        return str(response.json()["import"]["id"])

    issued = Issued(SEEDED_IMPORTS[tenant.id]["done"], first.json()["next_cursor"], queue_import)

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE), data=st.data())
    def accepted(case: Any, data: st.DataObject) -> None:
        steer(case, data, tenant.id, issued)
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)
        if path == "/api/lists.create" and response.status_code == 201:
            # a list id is unique: free it, so that a later example may create it again
            body = {"workspace_id": tenant.id, "id": case.body["id"]}
            assert client.post("/api/lists.delete", headers=headers, json=body).status_code == 200

    accepted()
