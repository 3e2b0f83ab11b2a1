"""One valid request per /api/ route, and the data it acts on: the table the suite walks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from audience.api_keys.schemas import Permission

SEED_EMAIL = "seed@example.com"
SEED_EXTERNAL_ID = "ext-1"
SEED_LIST = "news"
NEW_LIST = "fresh"

Build = Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class RouteCase:
    """A request that succeeds for a workspace seeded by `seed`, and what it needs."""

    method: str
    path: str
    permissions: tuple[Permission, ...]
    build: Build  # workspace_id -> query parameters (GET) or JSON body (POST)
    success: int = 200
    denied: int = 403  # for a key that lacks one of `permissions` (400 on the import, by spec)
    form: bool = False  # a multipart form (imports.create: its fields, and SEED_FILE as file)

    @property
    def id(self) -> str:
        return self.path.removeprefix("/api/")

    def send(
        self, client: TestClient, headers: dict[str, str], request: dict[str, Any]
    ) -> httpx.Response:
        if self.method == "GET":
            return client.get(self.path, headers=headers, params=request)
        if self.form:
            return client.post(self.path, headers=headers, files=form_parts(request))
        return client.post(self.path, headers=headers, json=request)

    def call(
        self, client: TestClient, headers: dict[str, str], workspace_id: str
    ) -> httpx.Response:
        return self.send(client, headers, self.build(workspace_id))


def form_parts(fields: dict[str, Any]) -> list[tuple[str, Any]]:
    """A multipart form of these fields (text, or bytes as they are) and SEED_FILE."""
    parts: list[tuple[str, Any]] = [
        (name, (None, value if isinstance(value, bytes) else str(value)))
        for name, value in fields.items()
    ]
    return [*parts, ("file", ("contacts.csv", SEED_FILE, "text/csv"))]


#: The file every imports.create case uploads.
SEED_FILE = b"email,first_name\nfiled@example.com,Filed\n"
#: The job seed() queued in each workspace (the suite's apps run no import worker).
SEEDED_JOBS: dict[str, str] = {}


def seeded_job(workspace_id: str) -> str:
    return SEEDED_JOBS.get(workspace_id, "imp_0000000000000000")


CONTACTS_READ = (Permission.CONTACTS_READ,)
LISTS_WRITE = (Permission.LISTS_WRITE,)

CASES: tuple[RouteCase, ...] = (
    RouteCase(
        "POST",
        "/api/contacts.import",
        (Permission.CONTACTS_WRITE, Permission.LISTS_WRITE),
        lambda ws: {
            "workspace_id": ws,
            "contacts": [
                {"email": SEED_EMAIL, "first_name": "Changed"},
                {"email": "new@example.com", "custom_json_1": {"k": 1}},
            ],
            "subscribe_to_lists": [SEED_LIST],
        },
        denied=400,
    ),
    RouteCase(
        "POST",
        "/api/contacts.upsert",
        (Permission.CONTACTS_WRITE,),
        lambda ws: {"workspace_id": ws, "contact": {"email": SEED_EMAIL, "first_name": "Changed"}},
    ),
    RouteCase(
        "GET",
        "/api/contacts.getByEmail",
        CONTACTS_READ,
        lambda ws: {"workspace_id": ws, "email": SEED_EMAIL},
    ),
    RouteCase(
        "GET",
        "/api/contacts.getByExternalID",
        CONTACTS_READ,
        lambda ws: {"workspace_id": ws, "external_id": SEED_EXTERNAL_ID},
    ),
    RouteCase(
        "GET",
        "/api/contacts.list",
        CONTACTS_READ,
        lambda ws: {
            "workspace_id": ws,
            "email": "seed",
            "list_id": SEED_LIST,
            "contact_list_status": "active",
            "with_contact_lists": "true",
        },
    ),
    RouteCase("GET", "/api/contacts.count", CONTACTS_READ, lambda ws: {"workspace_id": ws}),
    RouteCase(
        "POST",
        "/api/contacts.delete",
        (Permission.CONTACTS_WRITE,),
        lambda ws: {"workspace_id": ws, "email": SEED_EMAIL},
    ),
    RouteCase(
        "POST",
        "/api/contactLists.updateStatus",
        LISTS_WRITE,
        lambda ws: {
            "workspace_id": ws,
            "email": SEED_EMAIL,
            "list_id": SEED_LIST,
            "status": "unsubscribed",
        },
    ),
    RouteCase(
        "POST",
        "/api/lists.create",
        LISTS_WRITE,
        lambda ws: {"workspace_id": ws, "id": NEW_LIST, "name": "Fresh", "description": "d"},
        success=201,
    ),
    RouteCase("GET", "/api/lists.list", (Permission.LISTS_READ,), lambda ws: {"workspace_id": ws}),
    RouteCase(
        "GET",
        "/api/lists.get",
        (Permission.LISTS_READ,),
        lambda ws: {"workspace_id": ws, "id": SEED_LIST},
    ),
    RouteCase(
        "POST",
        "/api/lists.update",
        LISTS_WRITE,
        lambda ws: {"workspace_id": ws, "id": SEED_LIST, "name": "Renamed", "description": "x"},
    ),
    RouteCase(
        "POST",
        "/api/lists.delete",
        LISTS_WRITE,
        lambda ws: {"workspace_id": ws, "id": SEED_LIST},
    ),
    RouteCase(
        "POST",
        "/api/imports.create",
        (Permission.CONTACTS_WRITE, Permission.LISTS_WRITE),
        lambda ws: {"workspace_id": ws, "options": '{"subscribe_to_lists": ["news"]}'},
        success=202,
        denied=400,
        form=True,
    ),
    RouteCase(
        "GET",
        "/api/imports.get",
        CONTACTS_READ,
        lambda ws: {"workspace_id": ws, "id": seeded_job(ws)},
    ),
    RouteCase("GET", "/api/imports.list", CONTACTS_READ, lambda ws: {"workspace_id": ws}),
    RouteCase(
        "GET",
        "/api/imports.errors",
        CONTACTS_READ,
        lambda ws: {"workspace_id": ws, "id": seeded_job(ws)},
    ),
    RouteCase(
        "POST",
        "/api/imports.cancel",
        (Permission.CONTACTS_WRITE,),
        lambda ws: {"workspace_id": ws, "id": seeded_job(ws)},
    ),
)


BY_ID = {case.id: case for case in CASES}


def seed(client: TestClient, workspace_id: str, headers: dict[str, str], marker: str) -> None:
    """The data every case acts on; `marker` is in every stored text so leaks can be found."""
    body = {
        "workspace_id": workspace_id,
        "id": SEED_LIST,
        "name": f"{marker} list",
        "description": f"{marker} description",
    }
    response = client.post("/api/lists.create", headers=headers, json=body)
    assert response.status_code == 201, response.text
    contacts = [
        {
            "email": SEED_EMAIL,
            "external_id": SEED_EXTERNAL_ID,
            "first_name": marker,
            "custom_json_1": {"secret": marker},
        },
        {"email": f"{workspace_id}-only@example.com", "last_name": marker},
    ]
    imported: dict[str, Any] = {
        "workspace_id": workspace_id,
        "contacts": contacts,
        "subscribe_to_lists": [SEED_LIST],
    }
    response = client.post("/api/contacts.import", headers=headers, json=imported)
    assert response.status_code == 200, response.text
    assert all(op["action"] == "create" for op in response.json()["operations"])
    response = client.post(
        "/api/imports.create",
        headers=headers,
        files=form_parts({"workspace_id": workspace_id}),
    )
    assert response.status_code == 202, response.text
    SEEDED_JOBS[workspace_id] = response.json()["import"]["id"]


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(METHOD, path) of every /api/ route the app serves, read from app.routes."""
    found: set[tuple[str, str]] = set()
    pending: list[Any] = list(app.routes)
    while pending:
        route = pending.pop()
        if hasattr(route, "effective_route_contexts"):  # FastAPI's included routers
            for context in route.effective_route_contexts():
                methods = getattr(context.original_route, "methods", None) or {"*"}
                found.update((m, context.path) for m in methods)
        elif hasattr(route, "routes"):  # a mount: itself a route that needs a case
            found.add(("*", getattr(route, "path", "")))
            pending.extend(route.routes)
        elif getattr(route, "path", "").startswith("/api/"):
            found.update((m, route.path) for m in getattr(route, "methods", None) or {"*"})
    return {(method, path) for method, path in found if path.startswith("/api/")}
