"""Signing in and out of the console, its sessions, the sign-in rate limit, CSRF and the
security headers (TestClient, both backends)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from audience.api_keys import service as api_keys
from audience.app import create_app
from audience.config import Settings
from audience.console.routing import SECURITY_HEADERS
from audience.db.models import console_login_attempts, console_sessions
from audience.db.session import transaction
from audience.kit import crypto
from tests.conftest import Tenant
from tests.console.support import csrf_of, post, sign_in, try_sign_in


def sessions_stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(console_sessions)).scalar_one())


def test_a_good_key_signs_in(client: TestClient, tenant: Tenant, engine: Engine) -> None:
    response = try_sign_in(client, tenant.key)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/contacts"
    page = client.get("/console/contacts")
    assert page.status_code == 200
    assert "Sign out" in page.text
    assert sessions_stored(engine) == 1


@pytest.mark.parametrize("key", ["", "wrong", "aud_acme_" + "x" * 42])
def test_a_wrong_key_is_refused(client: TestClient, tenant: Tenant, key: str) -> None:
    response = try_sign_in(client, key)
    assert response.status_code == 401
    assert "Invalid API key" in response.text
    assert "audience_console=" not in response.headers.get("set-cookie", "")
    assert client.get("/console/contacts", follow_redirects=False).status_code == 303


def test_a_revoked_key_is_refused_and_ends_its_sessions(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    sign_in(client, tenant.key)
    assert client.get("/console/contacts").status_code == 200
    key_id = crypto.parse_api_key(tenant.key).key_id  # type: ignore[union-attr]
    with transaction(engine, write=True) as conn:
        api_keys.revoke_key(conn, key_id=key_id)
    gone = client.get("/console/contacts", follow_redirects=False)
    assert (gone.status_code, gone.headers["location"]) == (303, "/console/login")
    partial = client.get("/console/contacts", headers={"HX-Request": "true"})
    assert partial.headers["HX-Redirect"] == "/console/login"
    again = try_sign_in(client, tenant.key)
    assert again.status_code == 401
    assert "Invalid API key" in again.text


def test_the_session_cookie_is_http_only_and_lax(client: TestClient, tenant: Tenant) -> None:
    cookie = try_sign_in(client, tenant.key).headers["set-cookie"]
    session = next(part for part in cookie.split(", audience") if "audience_console=" in part)
    assert "HttpOnly" in session
    assert "SameSite=lax" in session
    assert "Path=/console" in session
    assert "Secure" not in session  # plain http here


def test_the_session_cookie_is_secure_over_https(settings: Settings, tenant: Tenant) -> None:
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        cookie = try_sign_in(client, tenant.key).headers["set-cookie"]
    assert "Secure" in cookie


def test_only_a_hash_of_the_session_id_is_stored(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    sign_in(client, tenant.key)
    cookie = client.cookies["audience_console"]
    _, _, secret = cookie.partition(".")
    with engine.connect() as conn:
        row = conn.execute(select(console_sessions)).one()
    assert row.workspace_id == tenant.id
    assert secret not in str(tuple(row))
    assert len(row.id_hash) == 64


def test_sign_out_ends_the_session(client: TestClient, tenant: Tenant, engine: Engine) -> None:
    csrf = sign_in(client, tenant.key)
    cookie = client.cookies["audience_console"]
    response = post(client, "/console/logout", csrf)
    assert (response.status_code, response.headers["location"]) == (303, "/console/login")
    assert sessions_stored(engine) == 0
    client.cookies.set("audience_console", cookie, path="/console")  # kept by a thief
    assert client.get("/console/contacts", follow_redirects=False).status_code == 303


def test_sign_out_needs_the_csrf_token(client: TestClient, tenant: Tenant, engine: Engine) -> None:
    sign_in(client, tenant.key)
    assert post(client, "/console/logout", None).status_code == 403
    assert post(client, "/console/logout", "0" * 64).status_code == 403
    assert sessions_stored(engine) == 1


def test_sign_in_needs_the_csrf_token_of_its_page(client: TestClient, tenant: Tenant) -> None:
    client.get("/console/login")
    response = post(client, "/console/login", None, api_key=tenant.key)
    assert response.status_code == 403
    assert "audience_console=" not in response.headers.get("set-cookie", "")
    other = TestClient(client.app)
    forged = csrf_of(other.get("/console/login").text)  # another browser's token
    assert post(client, "/console/login", forged, api_key=tenant.key).status_code == 403


@pytest.fixture
def idle_client(database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        secret_key="test-secret-key-of-at-least-32-characters",
        auto_migrate=False,
        console_session_idle_seconds=1.0,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_an_idle_session_expires(idle_client: TestClient, tenant: Tenant) -> None:
    sign_in(idle_client, tenant.key)
    for _ in range(3):  # each request pushes the expiry forward
        time.sleep(0.4)
        assert idle_client.get("/console/imports").status_code == 200
    time.sleep(1.3)
    assert idle_client.get("/console/imports", follow_redirects=False).status_code == 303


def limited(database_url: str) -> TestClient:
    settings = Settings(
        database_url=database_url,
        secret_key="test-secret-key-of-at-least-32-characters",
        auto_migrate=False,
        console_login_max_failures=3,
    )
    return TestClient(create_app(settings))


def test_failed_sign_ins_are_limited_per_address_across_processes(
    database_url: str, tenant: Tenant, engine: Engine
) -> None:
    # Two apps on one database stand for two worker processes: the count is the database's.
    with limited(database_url) as first, limited(database_url) as second:
        assert [try_sign_in(c, "wrong").status_code for c in (first, second, first)] == [401] * 3
        refused = try_sign_in(second, tenant.key)  # even the right key, while limited
        assert refused.status_code == 429
        assert "Too many failed sign-ins" in refused.text
        assert 0 < int(refused.headers["Retry-After"]) <= 15 * 60
        assert try_sign_in(first, "wrong").status_code == 429
    with engine.connect() as conn:
        row = conn.execute(select(console_login_attempts)).one()
    assert (row.address, row.failures) == ("testclient", 3)


def test_a_window_that_ended_counts_again_from_zero(
    database_url: str, tenant: Tenant, engine: Engine
) -> None:
    with limited(database_url) as client:
        for _ in range(3):
            try_sign_in(client, "wrong")
        with transaction(engine, write=True) as conn:  # the window started 16 minutes ago
            table = console_login_attempts
            started = conn.execute(select(table.c.window_started_at)).scalar_one()
            conn.execute(
                table.update().values(window_started_at=started.replace(year=started.year - 1))
            )
        assert try_sign_in(client, "wrong").status_code == 401
        assert try_sign_in(client, tenant.key).status_code == 303


@pytest.mark.parametrize("path", ["/console/login", "/console/contacts", "/console/lists"])
def test_every_page_carries_the_security_headers(
    client: TestClient, tenant: Tenant, path: str
) -> None:
    sign_in(client, tenant.key)
    response = client.get(path)
    assert response.status_code == 200
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    policy = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "script-src 'self'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script>" not in response.text  # no inline script
    assert " style=" not in response.text  # no inline style either


def test_refusals_are_pages_with_the_same_headers(client: TestClient, tenant: Tenant) -> None:
    sign_in(client, tenant.key)
    response = client.get("/console/contact", params={"email": "nobody@example.com"})
    assert response.status_code == 404
    assert "contact not found" in response.text
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" in response.headers


def test_static_files_are_served_from_the_package(client: TestClient) -> None:
    for path, kind in [
        ("/console/static/vendor/htmx/htmx.min.js", "text/javascript"),
        ("/console/static/vendor/pico/pico.min.css", "text/css"),
        ("/console/static/console.js", "text/javascript"),
        ("/console/static/console.css", "text/css"),
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind)
    for path in ["/console/static/../router.py", "/console/static/vendor/README.md"]:
        assert client.get(path).status_code == 404


def test_a_page_without_a_session_leads_to_sign_in(client: TestClient) -> None:
    for path in ["/console", "/console/contacts", "/console/lists", "/console/imports"]:
        response = client.get(path, follow_redirects=True)
        assert response.url.path == "/console/login", path
        assert 'for="api-key">API key</label>' in response.text
        for link in ["Contacts", "Lists", "Imports"]:
            assert f">{link}</a>" in response.text
