"""In a real browser: searching as one types, filters, paging, a contact's edit form and
statuses, bulk changes, lists, and the pages on a 375 px wide screen."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.browser.conftest import Console, Workspace, screenshot, sign_in

PEOPLE = [
    {"email": "ann@example.com", "first_name": "Ann", "last_name": "Smith"},
    {"email": "bob@example.com", "first_name": "Bob", "last_name": "Annan"},
    {"email": "carl@example.com", "first_name": "Carl", "last_name": "Jones"},
]
USERS = [{"email": f"user{i:02}@test.org", "first_name": f"User {i}"} for i in range(30)]


@pytest.fixture
def people(workspace: Workspace) -> Workspace:
    workspace.create_list("news", "News")
    workspace.create_list("promo", "Promo", is_double_optin=True)
    workspace.import_contacts(PEOPLE, ["news"])
    workspace.import_contacts(USERS, [])
    return workspace


def rows(page: Page) -> list[str]:
    return page.locator("table.contacts tbody td a").all_inner_texts()


def total(page: Page) -> str:
    return page.locator("#total").inner_text()


def test_search_as_one_types_filters_and_pages(
    page: Page, console: Console, people: Workspace, tmp_path: Path
) -> None:
    sign_in(page, people.key)
    expect(page.locator("#total")).to_have_text("33 contacts match")
    for column in ("Email", "Name", "Lists", "Updated"):
        expect(page.get_by_role("columnheader", name=column)).to_be_visible()
    screenshot(page, console, "contacts.png", tmp_path)
    page.evaluate("window.notReloaded = true")

    page.get_by_label("Search contacts").press_sequentially("aNN", delay=40)
    expect(page.locator("#total")).to_have_text("2 contacts match")
    assert rows(page) == ["ann@example.com", "bob@example.com"]  # bob: last name Annan
    expect(page).to_have_url(re.compile(r"q=aNN"))
    assert page.evaluate("window.notReloaded") is True  # updated in place, no page load

    page.get_by_label("Search contacts").fill("")
    expect(page.locator("#total")).to_have_text("33 contacts match")
    page.get_by_label("List", exact=True).select_option("news")
    expect(page.locator("#total")).to_have_text("3 contacts match")
    page.get_by_label("Status").select_option("unsubscribed")
    expect(page.locator("#total")).to_have_text("0 contacts match")
    expect(page).to_have_url(re.compile(r"list_id=news&status=unsubscribed"))
    assert page.evaluate("window.notReloaded") is True

    page.goto("/console/contacts?q=user")  # a bookmarked search
    expect(page.get_by_label("Search contacts")).to_have_value("user")
    expect(page.locator("#total")).to_have_text("30 contacts match")
    assert rows(page)[0] == "user00@test.org" and len(rows(page)) == 25
    page.get_by_role("button", name="Next").click()
    expect(page.locator("table.contacts tbody tr")).to_have_count(5)
    assert rows(page) == [f"user{i}@test.org" for i in range(25, 30)]
    expect(page).to_have_url(re.compile(r"after="))
    page.get_by_role("button", name="Previous").click()
    expect(page.locator("table.contacts tbody tr")).to_have_count(25)
    assert rows(page)[0] == "user00@test.org"
    page.go_back()  # the browser's history follows the pages
    expect(page.locator("table.contacts tbody tr")).to_have_count(5)


def test_a_contact_edit_with_an_error_a_status_change_and_a_delete(
    page: Page, console: Console, people: Workspace, tmp_path: Path
) -> None:
    sign_in(page, people.key)
    page.get_by_role("link", name="ann@example.com").click()
    expect(page.get_by_role("heading", name="ann@example.com")).to_be_visible()
    expect(page.get_by_label("First name")).to_have_value("Ann")
    screenshot(page, console, "contact.png", tmp_path)

    page.get_by_label("Custom number 1").fill("many")
    page.get_by_role("button", name="Save contact").click()
    error = page.locator("#f-custom_number_1-error")
    expect(error).to_have_text("custom_number_1: expected a number")
    expect(page.get_by_label("Custom number 1")).to_have_attribute("aria-invalid", "true")
    unsaved = people.contact("ann@example.com")
    assert unsaved is not None and unsaved["custom_number_1"] is None

    page.get_by_label("Custom number 1").fill("42")
    page.get_by_label("Last name").fill("")
    page.get_by_role("button", name="Save contact").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    stored = people.contact("ann@example.com")
    assert stored is not None
    assert (stored["custom_number_1"], stored["last_name"]) == (42, None)

    page.get_by_label("Status in news").select_option("unsubscribed")
    page.get_by_role("button", name="Change status in news").click()
    expect(page.get_by_text("Status in news changed.")).to_be_visible()
    changed = people.contact("ann@example.com")
    assert changed is not None
    assert changed["contact_lists"][0]["status"] == "unsubscribed"

    page.get_by_role("button", name="Delete contact").click()
    expect(page.get_by_role("heading", name="Delete ann@example.com?")).to_be_visible()
    page.get_by_role("button", name="Delete contact").click()
    page.wait_for_url("**/console/contacts")
    expect(page.locator("#total")).to_have_text("32 contacts match")
    assert people.contact("ann@example.com") is None


def test_bulk_changes_selected_and_all_that_match(page: Page, people: Workspace) -> None:
    sign_in(page, people.key)
    page.get_by_label("Select ann@example.com").check()
    page.get_by_label("Select bob@example.com").check()
    page.get_by_label("Action").select_option("add_to_list")
    page.get_by_label("Target list").select_option("promo")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("Added 2 of 2 selected contacts to promo.")).to_be_visible()
    expect(page.get_by_text("promo (pending)")).to_have_count(2)  # double opt-in

    page.get_by_label("Select every contact on this page").check()
    expect(page.locator('input[name="email"]:checked')).to_have_count(25)

    page.get_by_label("Search contacts").fill("user")
    expect(page.locator("#total")).to_have_text("30 contacts match")
    page.get_by_label("All 30 that match").check()
    page.get_by_label("Action").select_option("delete")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("heading", name="Delete 30 contacts?")).to_be_visible()
    page.get_by_role("button", name="Delete 30 contacts").click()
    expect(page.get_by_text("Deleted 30 contacts.")).to_be_visible()
    expect(page.locator("#total")).to_have_text("0 contacts match")
    page.get_by_label("Search contacts").fill("")
    expect(page.locator("#total")).to_have_text("3 contacts match")


def test_lists_counts_create_and_delete(
    page: Page, console: Console, people: Workspace, tmp_path: Path
) -> None:
    sign_in(page, people.key)
    page.get_by_role("link", name="Lists").click()
    expect(page.get_by_role("link", name="3 active in News")).to_be_visible()
    screenshot(page, console, "lists.png", tmp_path)

    page.get_by_label("List ID").fill("bad id")
    page.get_by_label("Name", exact=True).fill("Weekly")
    page.get_by_role("button", name="Create list").click()
    expect(page.locator("#f-id-error")).to_have_text("id: 1-32 letters, digits or underscores")

    page.get_by_label("List ID").fill("weekly")
    page.get_by_label("Double opt-in").check()
    page.get_by_role("button", name="Create list").click()
    expect(page.get_by_role("cell", name="Weekly weekly")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("Weekly weekly yes"))).to_be_visible()

    page.get_by_role("link", name="Delete Weekly").click()
    expect(page.get_by_role("heading", name="Delete the list Weekly?")).to_be_visible()
    page.get_by_role("button", name="Delete list").click()
    page.wait_for_url("**/console/lists")
    expect(page.get_by_role("cell", name="Weekly weekly")).to_have_count(0)

    page.get_by_role("link", name="3 active in News").click()
    expect(page.locator("#total")).to_have_text("3 contacts match")
    expect(page.get_by_label("List", exact=True)).to_have_value("news")
    expect(page.get_by_label("Status")).to_have_value("active")


@pytest.fixture
def phone(browser: Browser, console: Console) -> Iterator[Page]:
    context = browser.new_context(base_url=console.url, viewport={"width": 375, "height": 800})
    yield context.new_page()
    context.close()


def test_the_pages_fit_a_375_px_screen(
    phone: Page, console: Console, people: Workspace, tmp_path: Path
) -> None:
    sign_in(phone, people.key)
    expect(phone.locator("#total")).to_have_text("33 contacts match")
    for path in ("/console/contacts", "/console/contact?email=ann@example.com", "/console/lists"):
        phone.goto(path)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)  # wide tables scroll in their own box
        for link in ("Contacts", "Lists", "Imports"):
            expect(phone.get_by_role("link", name=link, exact=True)).to_be_in_viewport()
    phone.goto("/console/contacts")
    screenshot(phone, console, "contacts-375.png", tmp_path)
