"""Helpers of the console's tests: signing in through the pages, reading what they show."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.conftest import Tenant

_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def try_sign_in(client: TestClient, key: str) -> httpx.Response:
    """Open the sign-in page, then send its form with this key."""
    token = csrf_of(client.get("/console/login").text)
    return client.post(
        "/console/login", data={"api_key": key, "csrf_token": token}, follow_redirects=False
    )


def sign_in(client: TestClient, key: str) -> str:
    """Sign in; the CSRF token of the session's forms."""
    response = try_sign_in(client, key)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/contacts"
    return csrf_of(client.get("/console/imports").text)


def post(client: TestClient, path: str, csrf: str | None, **data: Any) -> httpx.Response:
    """A form posted as the pages post it (htmx's CSRF header aside)."""
    if csrf is not None:
        data["csrf_token"] = csrf
    return client.post(path, data=data, follow_redirects=False)


def htmx(client: TestClient, path: str, csrf: str | None = None, **data: Any) -> httpx.Response:
    """A request as htmx sends it: HX-Request, and the CSRF token as a header."""
    headers = {"HX-Request": "true"}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    if data:
        return client.post(path, data=data, headers=headers)
    return client.get(path, headers=headers)


def import_contacts(
    client: TestClient, tenant: Tenant, contacts: list[dict[str, Any]], lists: Sequence[str] = ()
) -> None:
    """Contacts written through the API, as users do."""
    body: dict[str, Any] = {"workspace_id": tenant.id, "contacts": contacts}
    if lists:
        body["subscribe_to_lists"] = list(lists)
    response = client.post("/api/contacts.import", headers=tenant.headers, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["summary"]["errors"] == 0, response.text


def create_list(client: TestClient, tenant: Tenant, list_id: str, **fields: Any) -> None:
    body = {"workspace_id": tenant.id, "id": list_id, "name": list_id.title(), **fields}
    response = client.post("/api/lists.create", headers=tenant.headers, json=body)
    assert response.status_code == 201, response.text


def emails_shown(html: str) -> list[str]:
    """The emails of the contacts table, in order."""
    return re.findall(r'<a href="/console/contact\?email=[^"]*">([^<]*)</a>', html)


def total_shown(html: str) -> int:
    found = re.search(r'<p id="total"><strong>(\d+)</strong>', html)
    assert found, "no total in the page"
    return int(found.group(1))


def memberships(client: TestClient, tenant: Tenant, email: str) -> dict[str, str]:
    """{list id: status} of a contact, read through the API."""
    params = {"workspace_id": tenant.id, "email": email}
    response = client.get("/api/contacts.getByEmail", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    return {m["list_id"]: m["status"] for m in response.json()["contact"]["contact_lists"]}
