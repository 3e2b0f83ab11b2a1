"""The console's pages over the TestClient, both backends: search, filters, paging, bulk
changes, a contact's edit form and statuses, lists; escaping and permissions."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from audience.api_keys.schemas import Permission
from tests.conftest import Tenant, make_key
from tests.console.support import (
    create_list,
    emails_shown,
    htmx,
    import_contacts,
    memberships,
    post,
    sign_in,
    total_shown,
)

XSS = "<script>alert(1)</script>"
READ_ONLY = (Permission.CONTACTS_READ, Permission.LISTS_READ)


@pytest.fixture
def people(client: TestClient, tenant: Tenant) -> None:
    create_list(client, tenant, "news")
    create_list(client, tenant, "promo", is_double_optin=True)
    import_contacts(
        client,
        tenant,
        [
            {"email": "ann@example.com", "first_name": "Ann", "last_name": "Smith"},
            {"email": "bob@example.com", "first_name": "Bob", "last_name": "Annan"},
            {"email": "carl@example.com", "first_name": "Carl", "last_name": "Jones"},
        ],
        lists=["news"],
    )
    import_contacts(client, tenant, [{"email": f"user{i:02}@test.org"} for i in range(30)])


def test_search_is_case_insensitive_or_across_email_and_names(
    client: TestClient, tenant: Tenant, people: None
) -> None:
    sign_in(client, tenant.key)
    page = client.get("/console/contacts", params={"q": "ANN"})
    # ann (email, first name) and bob (last name Annan): one OR across the three fields
    assert emails_shown(page.text) == ["ann@example.com", "bob@example.com"]
    assert total_shown(page.text) == 2
    assert emails_shown(client.get("/console/contacts", params={"q": "jones"}).text) == [
        "carl@example.com"
    ]
    assert total_shown(client.get("/console/contacts", params={"q": "%"}).text) == 0


def test_search_for_htmx_renders_the_results_block_only(
    client: TestClient, tenant: Tenant, people: None
) -> None:
    sign_in(client, tenant.key)
    part = htmx(client, "/console/contacts?q=carl")
    assert part.status_code == 200
    assert "<html" not in part.text and '<nav aria-label="Main"' not in part.text
    assert emails_shown(part.text) == ["carl@example.com"]
    restore = client.get(
        "/console/contacts?q=carl",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in restore.text  # a history restore gets the whole page


def test_filters_by_list_and_status(client: TestClient, tenant: Tenant, people: None) -> None:
    sign_in(client, tenant.key)
    page = client.get("/console/contacts", params={"list_id": "news", "status": "active"})
    assert total_shown(page.text) == 3
    assert total_shown(client.get("/console/contacts?list_id=news&status=pending").text) == 0
    assert total_shown(client.get("/console/contacts?list_id=promo").text) == 0
    assert total_shown(client.get("/console/contacts?status=active").text) == 3
    assert "news (active)" in page.text
    assert client.get("/console/contacts?status=nope").status_code == 400


def test_paging_forward_and_back(client: TestClient, tenant: Tenant, people: None) -> None:
    sign_in(client, tenant.key)
    first = client.get("/console/contacts", params={"q": "user"})
    assert total_shown(first.text) == 30
    assert emails_shown(first.text) == [f"user{i:02}@test.org" for i in range(25)]
    assert '<span class="disabled" aria-disabled="true">Previous</span>' in first.text
    after = re.search(r'href="(/console/contacts\?[^"]*after=[^"]*)"', first.text)
    assert after
    second = client.get(after.group(1).replace("&amp;", "&"))
    assert emails_shown(second.text) == [f"user{i:02}@test.org" for i in range(25, 30)]
    assert '<span class="disabled" aria-disabled="true">Next</span>' in second.text
    before = re.search(r'href="(/console/contacts\?[^"]*before=[^"]*)"', second.text)
    assert before
    back = client.get(before.group(1).replace("&amp;", "&"))
    assert emails_shown(back.text) == emails_shown(first.text)
    assert client.get("/console/contacts?after=!!").status_code == 400


def test_a_contact_named_with_markup_is_escaped_everywhere(
    client: TestClient, tenant: Tenant
) -> None:
    create_list(client, tenant, "xss", name=XSS)
    contact = {"email": "x@example.com", "first_name": XSS, "custom_json_1": {"k": XSS}}
    import_contacts(client, tenant, [contact], lists=["xss"])
    sign_in(client, tenant.key)
    for path in [
        "/console/contacts",
        "/console/contacts?q=script",
        "/console/contact?email=x@example.com",
        "/console/lists",
        "/console/lists/xss",
        "/console/lists/xss/delete",
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert XSS not in response.text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text, path


def test_an_invalid_edit_shows_its_error_beside_its_field(
    client: TestClient, tenant: Tenant, people: None
) -> None:
    csrf = sign_in(client, tenant.key)
    fields = {"email": "ann@example.com", "first_name": "Annie", "custom_number_1": "many"}
    refused = htmx(client, "/console/contact", csrf, **fields)
    assert refused.status_code == 400
    error = re.search(
        r'<small id="f-custom_number_1-error" class="field-error">([^<]*)', refused.text
    )
    assert error and error.group(1) == "custom_number_1: expected a number"
    assert 'aria-invalid="true"' in refused.text
    assert 'value="many"' in refused.text  # the form as it was sent
    shown = client.get("/console/contact?email=ann@example.com").text
    assert 'value="Ann"' in shown  # nothing saved


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Mars/Olympus", "timezone: unknown time zone"),
        ("custom_datetime_1", "2024-05-01T09:00", "custom_datetime_1: expected an RFC 3339"),
        ("custom_json_1", "{nope", "custom_json_1: not valid JSON"),
        ("custom_json_2", "42", "custom_json_2: expected a JSON object or array"),
    ],
)
def test_edit_errors_name_their_field(
    client: TestClient, tenant: Tenant, people: None, field: str, value: str, message: str
) -> None:
    csrf = sign_in(client, tenant.key)
    refused = htmx(client, "/console/contact", csrf, email="ann@example.com", **{field: value})
    assert refused.status_code == 400
    error = re.search(rf'<small id="f-{field}-error" class="field-error">([^<]*)', refused.text)
    assert error and error.group(1).startswith(message), refused.text[:2000]


def test_an_edit_saves_by_the_rules_of_upsert(
    client: TestClient, tenant: Tenant, people: None
) -> None:
    csrf = sign_in(client, tenant.key)
    saved = htmx(
        client,
        "/console/contact",
        csrf,
        email="ann@example.com",
        first_name="  Annie ",
        last_name="",
        custom_number_1="42",
        custom_json_1='{"plan": "pro"}',
        custom_datetime_1="2024-05-01T09:00:00+02:00",
    )
    assert saved.status_code == 200
    assert "Saved." in saved.text
    params = {"workspace_id": tenant.id, "email": "ann@example.com"}
    stored = client.get("/api/contacts.getByEmail", headers=tenant.headers, params=params)
    contact = stored.json()["contact"]
    assert contact["first_name"] == "Annie"
    assert contact["last_name"] is None  # emptied: cleared
    assert contact["custom_number_1"] == 42
    assert contact["custom_json_1"] == {"plan": "pro"}
    assert contact["custom_datetime_1"] == "2024-05-01T07:00:00Z"
    assert contact["external_id"] is None  # a field the form did not send keeps its value


def test_a_membership_status_changes(client: TestClient, tenant: Tenant, people: None) -> None:
    csrf = sign_in(client, tenant.key)
    changed = htmx(
        client,
        "/console/contact/status",
        csrf,
        email="bob@example.com",
        list_id="news",
        status="bounced",
    )
    assert changed.status_code == 200
    assert "Status in news changed." in changed.text
    assert memberships(client, tenant, "bob@example.com") == {"news": "bounced"}
    wrong = htmx(
        client,
        "/console/contact/status",
        csrf,
        email="bob@example.com",
        list_id="promo",
        status="active",
    )
    assert wrong.status_code == 404


def test_bulk_changes_of_selected_contacts(
    client: TestClient, tenant: Tenant, people: None
) -> None:
    csrf = sign_in(client, tenant.key)
    selected = {"email": ["ann@example.com", "bob@example.com"]}
    added = htmx(
        client,
        "/console/contacts/bulk",
        csrf,
        action="add_to_list",
        target_list="promo",
        **selected,
    )
    assert "Added 2 of 2 selected contacts to promo." in added.text
    assert memberships(client, tenant, "ann@example.com") == {"news": "active", "promo": "pending"}
    gone = htmx(
        client, "/console/contacts/bulk", csrf, action="unsubscribe", target_list="news", **selected
    )
    assert "Unsubscribed 2 of 2" in gone.text
    assert memberships(client, tenant, "bob@example.com") == {
        "news": "unsubscribed",
        "promo": "pending",
    }
    again = htmx(
        client, "/console/contacts/bulk", csrf, action="add_to_list", target_list="news", **selected
    )
    assert "Added 0 of 2" in again.text  # an opt-out is never revived
    removed = htmx(
        client,
        "/console/contacts/bulk",
        csrf,
        action="remove_from_list",
        target_list="promo",
        **selected,
    )
    assert "Removed 2 of 2" in removed.text
    assert memberships(client, tenant, "ann@example.com") == {"news": "unsubscribed"}
    nothing = htmx(
        client, "/console/contacts/bulk", csrf, action="add_to_list", target_list="promo"
    )
    assert nothing.status_code == 400
    assert "select at least one contact" in nothing.text


def test_bulk_delete_of_all_that_match_is_confirmed_with_the_count(
    client: TestClient, tenant: Tenant, people: None
) -> None:
    csrf = sign_in(client, tenant.key)
    ask = htmx(client, "/console/contacts/bulk", csrf, action="delete", all="1", q="user1")
    assert ask.status_code == 200
    assert "Delete 10 contacts?" in ask.text
    assert ">Delete 10 contacts</button>" in ask.text
    assert total_shown(client.get("/console/contacts?q=user").text) == 30  # nothing yet
    done = htmx(
        client, "/console/contacts/bulk", csrf, action="delete", all="1", q="user1", confirmed="1"
    )
    assert "Deleted 10 contacts." in done.text
    assert total_shown(client.get("/console/contacts?q=user").text) == 20
    assert total_shown(client.get("/console/contacts").text) == 23


def test_a_contact_is_deleted_after_confirmation(
    client: TestClient, tenant: Tenant, people: None
) -> None:
    csrf = sign_in(client, tenant.key)
    ask = client.get("/console/contact/delete?email=carl@example.com")
    assert "Delete carl@example.com?" in ask.text
    done = post(client, "/console/contact/delete", csrf, email="carl@example.com")
    assert (done.status_code, done.headers["location"]) == (303, "/console/contacts")
    assert client.get("/console/contact?email=carl@example.com").status_code == 404


def test_lists_show_counts_per_status_linked_to_contacts(
    client: TestClient, tenant: Tenant, people: None
) -> None:
    sign_in(client, tenant.key)
    page = client.get("/console/lists").text
    news = (
        'href="/console/contacts?list_id=news&amp;status=active" aria-label="3 active in News">3<'
    )
    assert news in page
    assert (
        'href="/console/contacts?list_id=promo&amp;status=pending" aria-label="0 pending in Promo">'
        in page
    )


def test_a_list_is_created_edited_and_deleted(client: TestClient, tenant: Tenant) -> None:
    csrf = sign_in(client, tenant.key)
    created = post(client, "/console/lists", csrf, id="weekly", name="Weekly", is_double_optin="on")
    assert (created.status_code, created.headers["location"]) == (303, "/console/lists")
    listed = client.get(
        "/api/lists.get", headers=tenant.headers, params={"workspace_id": tenant.id, "id": "weekly"}
    )
    assert listed.json()["list"]["is_double_optin"] is True
    bad = post(client, "/console/lists", csrf, id="no spaces", name="X")
    assert bad.status_code == 400
    assert (
        '<small id="f-id-error" class="field-error">id: 1-32 letters, digits or underscores'
        in bad.text
    )
    taken = post(client, "/console/lists", csrf, id="weekly", name="Again")
    assert '<small id="f-id-error" class="field-error">list already exists: weekly' in taken.text
    edited = post(client, "/console/lists/weekly", csrf, name="Weekly digest")
    assert edited.status_code == 303
    assert "Weekly digest" in client.get("/console/lists").text
    assert post(client, "/console/lists/weekly", csrf, name="").status_code == 400
    assert "Delete the list Weekly digest?" in client.get("/console/lists/weekly/delete").text
    assert post(client, "/console/lists/weekly/delete", csrf).status_code == 303
    assert client.get("/console/lists/weekly").status_code == 404


def test_a_read_only_key_sees_no_change_controls_and_is_refused(
    client: TestClient, tenant: Tenant, people: None, engine: Engine
) -> None:
    csrf = sign_in(client, make_key(engine, tenant.id, READ_ONLY))
    contacts = client.get("/console/contacts").text
    contact = client.get("/console/contact?email=ann@example.com").text
    lists = client.get("/console/lists").text
    assert "ann@example.com" in contacts and "Ann" in contact and "News" in lists
    for page in (contacts, contact, lists):
        for control in ("Apply", "Save contact", "Delete", "Create list", "Edit", "Change status"):
            assert f">{control}" not in page, control
        assert 'type="checkbox" name="email"' not in page
    forged = [
        ("/console/contact", {"email": "ann@example.com", "first_name": "Hacked"}),
        ("/console/contact/delete", {"email": "ann@example.com"}),
        (
            "/console/contact/status",
            {"email": "ann@example.com", "list_id": "news", "status": "bounced"},
        ),
        ("/console/contacts/bulk", {"action": "delete", "all": "1", "confirmed": "1"}),
        ("/console/contacts/bulk", {"action": "delete", "all": "1"}),
        ("/console/contacts/bulk", {"action": "add_to_list", "target_list": "promo", "all": "1"}),
        ("/console/lists", {"id": "evil", "name": "Evil"}),
        ("/console/lists/news", {"name": "Evil"}),
        ("/console/lists/news/delete", {}),
    ]
    for path, data in forged:
        response = post(client, path, csrf, **data)
        assert response.status_code == 403, (path, data, response.text[:300])
        assert "access to" in response.text
    for path in ["/console/contact/delete?email=ann@example.com", "/console/lists/news"]:
        assert client.get(path).status_code == 403
    assert total_shown(client.get("/console/contacts").text) == 33
    assert memberships(client, tenant, "ann@example.com") == {"news": "active"}
    assert "Evil" not in client.get("/console/lists").text


def test_a_change_without_the_csrf_token_is_refused(
    client: TestClient, tenant: Tenant, people: None
) -> None:
    csrf = sign_in(client, tenant.key)
    for token in (None, "", "f" * 64, csrf[:-1]):
        response = post(
            client, "/console/contacts/bulk", token, action="delete", all="1", confirmed="1"
        )
        assert response.status_code == 403
        assert "did not come from this console" in response.text
    assert total_shown(client.get("/console/contacts").text) == 33


def test_a_session_sees_its_own_workspace_only(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, people: None
) -> None:
    sign_in(client, other_tenant.key)
    assert total_shown(client.get("/console/contacts").text) == 0
    assert client.get("/console/contact?email=ann@example.com").status_code == 404
    assert "News" not in client.get("/console/lists").text
