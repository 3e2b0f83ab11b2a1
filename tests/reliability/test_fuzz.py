"""API fuzzing with schemathesis against the served /openapi.json, every operation.

Cases are generated from the document the app serves (positive and negative data), sent to
the app in-process (schemathesis' ASGI transport), mostly with a real key and the key's own
workspace so that they get past authentication. Every answer must be a non-5xx that conforms
to the documented schema and content type and carries no traceback; every status code seen
must be documented for its operation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
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
    response_headers_conformance,
    response_schema_conformance,
)

from audience.app import create_app
from audience.config import Settings
from tests.conftest import Tenant
from tests.reliability.conftest import assert_no_traceback
from tests.reliability.routes import SEED_EMAIL, SEED_EXTERNAL_ID, SEED_LIST, seed

EXAMPLES_PER_OPERATION = 20
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]


def _operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation in the served document (no database needed)."""
    document = create_app(Settings(database_url="sqlite://", secret_key="x")).openapi()
    return [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    ]


OPERATIONS = _operations()


@pytest.fixture
def fuzz_app(settings: Settings) -> Iterator[FastAPI]:
    """An app of its own for schemathesis' ASGI transport, its lifespan ended afterwards."""
    yield create_app(settings)
    asgi.shutdown_lifespans()


#: Values that steer generated parameters towards existing data.
KNOWN = {
    "workspace_id": None,  # filled with the tenant's id
    "email": SEED_EMAIL,
    "external_id": SEED_EXTERNAL_ID,
    "list_id": SEED_LIST,
    "id": SEED_LIST,
}


def steer(data: st.DataObject, values: Any, names: set[str], tenant_id: str) -> None:
    """Most of the time, give the parameters that name existing data a known value."""
    if not isinstance(values, dict):
        return
    for name, known in KNOWN.items():
        if name in names and data.draw(st.integers(0, 9), label=f"steer {name}") < 8:
            values[name] = tenant_id if known is None else known


def documented_statuses(operation: Any) -> set[str]:
    return {str(code) for code in operation.definition.raw.get("responses", {})}


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[p for _, p in OPERATIONS])
def test_fuzz_operation(
    method: str, path: str, client: TestClient, tenant: Tenant, fuzz_app: FastAPI, backend: str
) -> None:
    seed(client, tenant.id, tenant.headers, "Seed")
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operation = schema[path][method]
    strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    if operation.definition.raw.get("parameters") or "requestBody" in operation.definition.raw:
        strategy = strategy | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    documented = documented_statuses(operation)
    query_names = {p["name"] for p in operation.definition.raw.get("parameters", [])}
    statuses: Counter[int] = Counter()
    undocumented: dict[int, str] = {}

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, data=st.data())
    def fuzz(case: Any, data: st.DataObject) -> None:
        steer(data, case.query, query_names, tenant.id)
        steer(data, case.body, set(KNOWN), tenant.id)
        auth = data.draw(st.sampled_from(["key"] * 8 + ["generated", "none"]), label="auth")
        headers = {"Authorization": f"Bearer {tenant.key}"} if auth == "key" else {}
        if auth == "none" and case.headers:
            case.headers.pop("Authorization", None)
        response = case.call(headers=headers)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)
        assert_no_traceback(response.text)
        if response.status_code >= 400:
            body = response.json()
            assert isinstance(body, dict), response.text
            assert isinstance(body.get("error"), str), response.text
        if str(response.status_code) not in documented:
            undocumented.setdefault(response.status_code, response.text[:200])

    fuzz()
    print(f"[reliability] fuzz {backend} {method} {path}: {dict(sorted(statuses.items()))}")
    assert not undocumented, (
        f"{method} {path} answered status codes its OpenAPI responses do not document "
        f"(documented: {sorted(documented)}): {undocumented}"
    )
