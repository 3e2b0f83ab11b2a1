"""The README's first import says what the server answers: its requests are sent as written
and the answer shown under them is the one received."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import Tenant

README = Path(__file__).resolve().parents[1] / "README.md"


def _first_import() -> tuple[list[tuple[str, dict[str, object]]], dict[str, object]]:
    """The (route, body) of each curl POST of the section, and the answer in the comment."""
    section = README.read_text().split("## A first import", 1)[1].split("\n## ", 1)[0]
    posts = [
        (route, json.loads(body))
        for route, body in re.findall(r"curl -s -X POST \S+(/api/\S+) .*?-d '(.*?)'", section, re.S)
    ]
    comment = "".join(
        line.removeprefix("#").strip()
        for line in section.splitlines()
        if line.startswith("# ") and not line.startswith("# shown")
    )
    return posts, json.loads(comment[comment.index("{") :])


def test_the_first_import_answers_what_the_readme_shows(client: TestClient, tenant: Tenant) -> None:
    posts, shown = _first_import()
    assert [route for route, _ in posts] == ["/api/lists.create", "/api/contacts.import"]
    answers = []
    for route, body in posts:
        body["workspace_id"] = tenant.id
        response = client.post(route, json=body, headers=tenant.headers)
        assert response.status_code in (200, 201), response.text
        answers.append(response.json())
    assert answers[-1] == shown
