"""In a real browser: a file imported through the Imports page (upload, the mapping step
pre-filled, a list to subscribe to, the progress polled until Completed, the failed rows
downloaded, the history), an opt-out that an import never revives, a dry run that writes
nothing, a read-only key without the upload, and the steps done with the keyboard."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from playwright.sync_api import FilePayload, Page, Request, expect

from tests.console.browser.conftest import Console, Workspace, screenshot, sign_in

HEADER = ["E-mail Address", "Vorname", "Nachname", "Loyalty tier"]
ROWS = [
    ["ann@example.com", "Ann", "Smith", "gold"],
    ["not-an-email", "Carl", "Bad", "bronze"],
    ["bob@example.com", "Bob", "Jones", "silver"],
]
#: What the API's matching suggests for HEADER ("" = Not imported).
SUGGESTED = ["email", "first_name", "last_name", ""]
#: How long a test waits for a job (the worker looks every second; the machine is shared).
JOB_TIMEOUT = 30_000
FINISHED = ("Completed", "Failed", "Cancelled")


def csv_file(rows: list[list[str]], name: str = "people.csv") -> FilePayload:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return {"name": name, "mimeType": "text/csv", "buffer": out.getvalue().encode()}


def upload(page: Page, file: FilePayload) -> str:
    """Upload the file from the Imports page (reached by its link); the mapping step's path."""
    page.get_by_role("link", name="Imports", exact=True).click()
    expect(page.get_by_role("heading", name="Imports", exact=True)).to_be_visible()
    page.get_by_label("File").set_input_files(file)
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"/console/imports/imp_[0-9a-f]{16}$"))
    expect(page.get_by_role("heading", name=f"Import of {file['name']}")).to_be_visible()
    return re.sub(r"^https?://[^/]+", "", page.url)


def start_and_follow(page: Page, path: str) -> str:
    """Click "Start import" and wait until the job page, never reloaded, says Completed:
    its progress is polled. The status the page was first sent with."""
    polls: list[Request] = []

    def polled(request: Request) -> None:
        if request.headers.get("hx-request") == "true" and request.url.endswith(path):
            polls.append(request)

    page.on("request", polled)
    with page.expect_response(
        lambda r: (
            r.request.method == "GET" and r.url.endswith(path) and r.request.is_navigation_request()
        )
    ) as sent:
        page.get_by_role("button", name="Start import").click()
    first = re.search(r'<span id="import-status" role="status">(\w+)</span>', sent.value.text())
    assert first, sent.value.text()
    expect(page.get_by_role("region", name=re.compile("^Status: "))).to_be_visible()
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#import-status")).to_have_text("Completed", timeout=JOB_TIMEOUT)
    assert page.evaluate("window.notReloaded") is True  # updated in place
    if first.group(1) not in FINISHED:  # (a worker that took the job at once: nothing to poll)
        assert polls, "the progress was not polled"
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    page.remove_listener("request", polled)
    return first.group(1)


def counts(page: Page) -> dict[str, str]:
    terms = page.locator("dl.counts dt").all_inner_texts()
    return dict(zip(terms, page.locator("dl.counts dd").all_inner_texts(), strict=True))


def chosen(page: Page, column: str) -> str:
    """The option shown as chosen in a column's "Imported as" select."""
    return str(page.get_by_label(column, exact=True).evaluate("s => s.selectedOptions[0].text"))


def history_row(page: Page, file_name: str) -> list[str]:
    page.goto("/console/imports")
    link = page.get_by_role("link", name=file_name, exact=True)
    return page.locator("table.imports tbody tr").filter(has=link).locator("td").all_inner_texts()


def test_upload_map_import_follow_download_errors_and_history(
    page: Page, console: Console, workspace: Workspace, tmp_path: Path
) -> None:
    workspace.create_list("news", "News")
    workspace.create_list("promo", "Promo")
    sign_in(page, workspace.key)
    path = upload(page, csv_file([HEADER, *ROWS]))
    job_id = path.rsplit("/", 1)[1]

    for column, field in zip(HEADER, SUGGESTED, strict=True):
        expect(page.get_by_label(column, exact=True)).to_have_value(field)
    assert chosen(page, "Loyalty tier") == "Not imported"
    expect(page.get_by_text("unmapped")).to_have_count(1)
    expect(
        page.get_by_role("cell", name="ann@example.com not-an-email bob@example.com")
    ).to_be_visible()
    expect(page.get_by_role("group", name="Subscribe to lists")).to_be_visible()
    expect(page.get_by_label("List status")).to_have_value("subscribed")
    expect(page.get_by_label("Merge")).to_have_value("overwrite")
    expect(page.get_by_label("Empty cells clear their fields")).not_to_be_checked()
    expect(page.get_by_label("Dry run")).not_to_be_checked()
    expect(page.get_by_role("button", name="Discard this upload")).to_be_visible()
    page.get_by_label("News news").check()
    page.evaluate("window.scrollTo(0, 0)")  # the columns, not the options alone
    screenshot(page, console, "import-mapping.png", tmp_path)

    start_and_follow(page, path)
    assert counts(page) == {"Created": "2", "Updated": "0", "Unchanged": "0", "Errors": "1"}
    expect(page.get_by_text("3 of 3 rows")).to_be_visible()
    expect(page.locator("progress#import-progress")).to_have_attribute("value", "3")
    screenshot(page, console, "import-progress.png", tmp_path)

    with page.expect_download() as info:
        page.get_by_role("link", name="Download errors").click()
    download = info.value
    assert download.suggested_filename == f"{job_id}.errors.csv"
    lines = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert lines[0] == ["line", "email", "error", *HEADER]
    assert len(lines) == 2, lines
    line, email, error, *cells = lines[1]
    assert (line, email, cells) == ("3", "not-an-email", ROWS[1])
    assert "email" in error, error

    page.get_by_role("link", name="Contacts", exact=True).click()
    expect(page.locator("#total")).to_have_text("2 contacts match")
    for email in ("ann@example.com", "bob@example.com"):
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=email))
        expect(row).to_contain_text("news (active)")
        expect(row).not_to_contain_text("promo")
    expect(page.get_by_role("row", name=re.compile("Ann Smith"))).to_be_visible()
    ann = workspace.contact("ann@example.com")
    assert ann is not None and (ann["first_name"], ann["last_name"]) == ("Ann", "Smith")
    assert "gold" not in str(ann)  # the unmapped column was not imported

    cells = history_row(page, "people.csv")
    assert cells[1:7] == ["Completed", "3 / 3", "2", "0", "0", "1"], cells
    expect(page.get_by_label("File")).to_be_visible()
    screenshot(page, console, "imports.png", tmp_path)
    page.get_by_role("link", name="people.csv", exact=True).click()
    expect(page.locator("#import-status")).to_have_text("Completed")
    expect(page).to_have_url(re.compile(f"{path}$"))


def test_an_opt_out_is_never_resubscribed_by_an_import(page: Page, workspace: Workspace) -> None:
    workspace.create_list("news", "News")
    workspace.import_contacts([{"email": "ann@example.com", "first_name": "Ann"}], ["news"])
    body = {"workspace_id": workspace.id, "email": "ann@example.com", "list_id": "news"}
    response = workspace.api.post(
        "/api/contactLists.updateStatus", json={**body, "status": "unsubscribed"}
    )
    assert response.status_code == 200, response.text

    sign_in(page, workspace.key)
    path = upload(
        page,
        csv_file(
            [["email", "first_name"], ["ann@example.com", "Annie"], ["dan@example.com", "Dan"]]
        ),
    )
    page.get_by_label("News news").check()
    page.get_by_label("List status").select_option("subscribed")
    start_and_follow(page, path)
    assert counts(page) == {"Created": "1", "Updated": "1", "Unchanged": "0", "Errors": "0"}
    expect(page.get_by_role("link", name="Download errors")).to_have_count(0)

    ann = workspace.contact("ann@example.com")
    assert ann is not None and ann["first_name"] == "Annie"  # updated, still opted out
    assert [(m["list_id"], m["status"]) for m in ann["contact_lists"]] == [("news", "unsubscribed")]
    dan = workspace.contact("dan@example.com")
    assert dan is not None
    assert [(m["list_id"], m["status"]) for m in dan["contact_lists"]] == [("news", "active")]
    page.get_by_role("link", name="Contacts", exact=True).click()
    ann_row = page.get_by_role("row").filter(has=page.get_by_role("link", name="ann@example.com"))
    expect(ann_row).to_contain_text("news (unsubscribed)")


def test_a_dry_run_completes_and_writes_nothing(page: Page, workspace: Workspace) -> None:
    workspace.create_list("news", "News")
    workspace.import_contacts([{"email": "ann@example.com", "first_name": "Ann"}], [])
    sign_in(page, workspace.key)
    path = upload(page, csv_file([HEADER, *ROWS], "trial.csv"))
    page.get_by_label("News news").check()
    page.get_by_label("Dry run").check()
    start_and_follow(page, path)
    expect(page.get_by_text("(dry run: nothing is written)")).to_be_visible()
    assert counts(page) == {"Created": "1", "Updated": "1", "Unchanged": "0", "Errors": "1"}

    ann = workspace.contact("ann@example.com")
    assert ann is not None and ann["first_name"] == "Ann" and ann["last_name"] is None
    assert ann["contact_lists"] in ([], None)
    assert workspace.contact("bob@example.com") is None
    page.get_by_role("link", name="Contacts", exact=True).click()
    expect(page.locator("#total")).to_have_text("1 contact matches")
    assert history_row(page, "trial.csv")[:2] == ["trial.csv (dry run)", "Completed"]


def test_a_read_only_key_sees_the_imports_without_the_upload(
    page: Page, workspace: Workspace
) -> None:
    created = workspace.api.post(
        "/api/imports.create",
        data={"workspace_id": workspace.id},
        files={"file": ("api.csv", b"email\nann@example.com\nnope\n", "text/csv")},
    )
    assert created.status_code == 202, created.text
    sign_in(page, workspace.read_only_key)
    page.get_by_role("link", name="Imports", exact=True).click()
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    expect(page.get_by_label("File")).to_have_count(0)
    expect(page.get_by_role("button", name="Upload")).to_have_count(0)
    expect(page.locator('input[type="file"]')).to_have_count(0)

    page.get_by_role("link", name="api.csv", exact=True).click()
    expect(page.locator("#import-status")).to_have_text("Completed", timeout=JOB_TIMEOUT)
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.get_by_role("link", name="Download errors")).to_be_visible()

    csrf = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    assert csrf
    forged = page.request.post(
        "/console/imports/upload",
        multipart={"csrf_token": csrf, "file": csv_file([["email"], ["eve@example.com"]])},
    )
    assert forged.status == 403, forged.text()
    assert workspace.contact("eve@example.com") is None


def test_the_upload_and_the_mapping_step_with_the_keyboard(
    page: Page, workspace: Workspace
) -> None:
    workspace.create_list("news", "News")
    # Intercepting file choosers is switched on by a first listener, without waiting for
    # it: one added by expect_file_chooser alone can miss a chooser opened at once.
    page.on("filechooser", lambda _: None)
    sign_in(page, workspace.key)
    page.goto("/console/imports")
    file_input = page.get_by_label("File")
    for _ in range(20):  # Tab from the top of the page to the file field
        if file_input.evaluate("e => e === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(file_input).to_be_focused()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(csv_file([HEADER, *ROWS], "keys.csv"))
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Upload")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/imports/imp_[0-9a-f]{16}$"))
    path = re.sub(r"^https?://[^/]+", "", page.url)

    # Every control of the step has a label; Tab goes through them in the page's order.
    controls = [
        *(page.get_by_label(column, exact=True) for column in HEADER),
        page.get_by_label("News news"),
        page.get_by_label("List status"),
        page.get_by_label("Merge"),
        page.get_by_label("Empty cells clear their fields"),
        page.get_by_label("Dry run"),
        page.get_by_role("button", name="Start import"),
        page.get_by_role("button", name="Discard this upload"),
    ]
    for control in controls:
        expect(control).to_have_count(1)
    unlabelled = page.locator(
        "main select, main input:not([type=hidden]), main button"
    ).evaluate_all(
        "els => els.filter(e => !(e.labels && e.labels.length) && !e.textContent.trim()"
        " && !e.getAttribute('aria-label')).map(e => e.outerHTML)"
    )
    assert unlabelled == []
    controls[0].focus()
    for control in controls[1:]:
        page.keyboard.press("Tab")
        expect(control).to_be_focused()

    controls[3].focus()  # "Loyalty tier": chosen with the keys, then the list, then start
    page.keyboard.press("ArrowDown")
    expect(controls[3]).to_have_value("email")  # the first field after Not imported
    page.keyboard.press("ArrowUp")
    expect(controls[3]).to_have_value("")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    expect(page.get_by_label("News news")).to_be_checked()
    for _ in range(5):  # List status, Merge, the two checkboxes, Start import
        page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Start import")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#import-status")).to_have_text("Completed", timeout=JOB_TIMEOUT)
    expect(page).to_have_url(re.compile(f"{path}$"))
    bob = workspace.contact("bob@example.com")
    assert bob is not None
    assert [(m["list_id"], m["status"]) for m in bob["contact_lists"]] == [("news", "active")]
