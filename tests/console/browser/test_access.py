"""In a real browser: signing in (a good, a wrong and a revoked key) and out, a read-only
key, and changes forged without the CSRF token or beyond the key's permissions."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from audience.api_keys import service as api_keys
from audience.db.session import transaction
from audience.kit import crypto
from tests.console.browser.conftest import Console, Workspace, screenshot, sign_in


def test_sign_in_wrong_good_revoked_and_sign_out(
    page: Page, console: Console, workspace: Workspace, tmp_path: Path
) -> None:
    page.goto("/console/login")
    for link in ("Contacts", "Lists", "Imports"):
        expect(page.get_by_role("link", name=link)).to_be_visible()
    expect(page.get_by_label("API key")).to_be_focused()
    screenshot(page, console, "login.png", tmp_path)

    page.get_by_label("API key").fill("aud_nope_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Invalid API key")).to_be_visible()

    sign_in(page, workspace.key)
    expect(page.get_by_role("heading", name="Contacts")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "audience_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/login")
    page.goto("/console/contacts")
    page.wait_for_url("**/console/login")  # the session is gone

    sign_in(page, workspace.key)
    key_id = crypto.parse_api_key(workspace.key).key_id  # type: ignore[union-attr]
    with transaction(console.engine, write=True) as conn:
        api_keys.revoke_key(conn, key_id=key_id)
    page.get_by_role("link", name="Lists").click()
    page.wait_for_url("**/console/login")  # revoking the key ended the session
    page.get_by_label("API key").fill(workspace.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Invalid API key")).to_be_visible()


def test_a_read_only_key_sees_no_controls_and_its_forged_changes_are_refused(
    page: Page, workspace: Workspace
) -> None:
    workspace.create_list("news", "News")
    workspace.import_contacts([{"email": "ann@example.com", "first_name": "Ann"}], ["news"])
    sign_in(page, workspace.read_only_key)
    expect(page.get_by_role("link", name="ann@example.com")).to_be_visible()
    for control in ("Apply", "Delete"):
        expect(page.get_by_role("button", name=control)).to_have_count(0)
    expect(page.get_by_role("checkbox")).to_have_count(0)

    page.get_by_role("link", name="ann@example.com").click()
    expect(page.get_by_text("Ann", exact=True)).to_be_visible()
    for control in ("Save contact", "Delete contact"):
        expect(page.get_by_role("button", name=control)).to_have_count(0)
    expect(page.get_by_role("combobox")).to_have_count(0)  # no status control

    page.get_by_role("link", name="Lists").click()
    expect(page.get_by_role("cell", name="News news")).to_be_visible()
    expect(page.get_by_label("List ID")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("^(Edit|Delete)"))).to_have_count(0)

    csrf = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    assert csrf
    for path, form in [
        ("/console/contacts/bulk", {"action": "delete", "all": "1", "confirmed": "1"}),
        ("/console/contact", {"email": "ann@example.com", "first_name": "Forged"}),
        ("/console/lists/news/delete", {}),
    ]:
        forged = page.request.post(path, form={**form, "csrf_token": csrf})
        assert forged.status == 403, (path, forged.text())
    assert workspace.contact("ann@example.com") is not None


def test_a_change_without_the_csrf_token_is_refused(page: Page, workspace: Workspace) -> None:
    workspace.import_contacts([{"email": "ann@example.com"}], [])
    sign_in(page, workspace.key)
    form = {"action": "delete", "all": "1", "confirmed": "1"}
    for token in ({}, {"csrf_token": "0" * 64}):
        forged = page.request.post("/console/contacts/bulk", form={**form, **token})
        assert forged.status == 403
        assert "did not come from this console" in forged.text()
    forged = page.request.post("/console/logout")
    assert forged.status == 403
    assert workspace.contact("ann@example.com") is not None
    page.reload()
    expect(page.get_by_role("link", name="ann@example.com")).to_be_visible()  # still signed in
