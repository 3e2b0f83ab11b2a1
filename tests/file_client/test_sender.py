"""The batch sender against a scripted server: retries, back-off, request-level errors, splits."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from audience.file_client.sender import Operation, Rejected, Sender, Unreachable, check_url

Handler = Callable[[httpx.Request], httpx.Response]


def ok(request: httpx.Request) -> httpx.Response:
    contacts = json.loads(request.content)["contacts"]
    operations = [
        {"index": i, "email": c["email"], "action": "create", "error": None}
        for i, c in enumerate(contacts)
    ]
    return httpx.Response(200, json={"operations": operations, "error": None})


def script(*steps: Handler | Exception) -> tuple[httpx.Client, list[httpx.Request]]:
    """A client whose n-th request gets the n-th step (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = steps[min(len(seen), len(steps)) - 1]
        if isinstance(step, Exception):
            raise step
        return step(request)

    return httpx.Client(transport=httpx.MockTransport(handle)), seen


def answer(status: int, error: str = "boom") -> Handler:
    return lambda request: httpx.Response(status, json={"error": error})


def sender(
    http: httpx.Client,
    delays: list[float] | None = None,
    lists: tuple[str, ...] = (),
    retries: int = 6,
) -> Sender:
    """A sender that records its back-off delays instead of waiting them out."""
    waited = delays if delays is not None else []

    def pause(delay: float) -> bool:
        waited.append(delay)
        return False

    return Sender(
        http, "http://audience.invalid", "key_1", "acme", lists, retries=retries, pause=pause
    )


CONTACTS = [{"email": "a@example.com"}, {"email": "b@example.com"}]


def test_a_batch_is_posted_with_the_key_workspace_and_lists() -> None:
    http, seen = script(ok)
    operations = sender(http, lists=("news",)).send(CONTACTS)
    assert operations == [Operation("create", None), Operation("create", None)]
    request = seen[0]
    assert request.url == "http://audience.invalid/api/contacts.import"
    assert request.headers["Authorization"] == "Bearer key_1"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "workspace_id": "acme",
        "contacts": CONTACTS,
        "subscribe_to_lists": ["news"],
    }


def test_without_lists_subscribe_to_lists_is_left_out() -> None:
    http, seen = script(ok)
    sender(http).send(CONTACTS)
    assert "subscribe_to_lists" not in json.loads(seen[0].content)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_answers_are_retried_with_exponential_back_off(status: int) -> None:
    http, seen = script(answer(status), answer(status), answer(status), ok)
    delays: list[float] = []
    assert len(sender(http, delays).send(CONTACTS)) == 2
    assert len(seen) == 4
    assert len(delays) == 3
    assert 0.375 <= delays[0] <= 0.5 < 0.75 <= delays[1] <= 1.0 < 1.5 <= delays[2] <= 2.0


def test_connection_errors_are_retried_once_the_server_has_answered() -> None:
    http, seen = script(ok, httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), ok)
    client = sender(http)
    assert len(client.send(CONTACTS)) == 2
    assert len(client.send(CONTACTS)) == 2
    assert len(seen) == 4


def test_a_read_timeout_on_the_first_request_is_retried() -> None:
    http, seen = script(httpx.ReadTimeout("slow"), ok)
    assert len(sender(http).send(CONTACTS)) == 2
    assert len(seen) == 2


def test_retry_after_is_honoured() -> None:
    def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "busy"}, headers={"Retry-After": "0"})

    http, _ = script(busy, ok)
    delays: list[float] = []
    sender(http, delays).send(CONTACTS)
    assert delays == [0.0]


def test_the_sender_gives_up_after_its_retries() -> None:
    http, seen = script(answer(503, "database unavailable"))
    with pytest.raises(Unreachable) as caught:
        sender(http, retries=2).send(CONTACTS)
    assert len(seen) == 3
    assert caught.value.message == (
        "server error 503: database unavailable; gave up after 3 attempts"
    )


def test_an_unreachable_server_is_named() -> None:
    http, _ = script(ok, httpx.ConnectError("Connection refused"))
    client = sender(http, retries=0)
    client.send(CONTACTS)
    with pytest.raises(Unreachable, match=r"cannot reach http://audience\.invalid: Connection"):
        client.send(CONTACTS)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "the server refused the API key (401): invalid API key"),
        (400, "the server rejected the request (400): invalid API key"),
        (403, "the server answered 403: invalid API key"),
    ],
)
def test_request_level_errors_stop_without_retrying(status: int, message: str) -> None:
    http, seen = script(answer(status, "invalid API key"))
    with pytest.raises(Rejected) as caught:
        sender(http).send(CONTACTS)
    assert caught.value.message == message
    assert len(seen) == 1


def test_a_batch_too_large_for_the_server_is_split_in_halves() -> None:
    def limit(request: httpx.Request) -> httpx.Response:
        if len(json.loads(request.content)["contacts"]) > 2:
            return httpx.Response(413, json={"error": "request body too large"})
        return ok(request)

    http, seen = script(limit)
    contacts = [{"email": f"{i}@example.com"} for i in range(5)]
    assert len(sender(http).send(contacts)) == 5
    sizes = [len(json.loads(r.content)["contacts"]) for r in seen]
    assert sizes == [5, 2, 3, 1, 2]


def test_a_single_contact_too_large_is_that_contacts_error() -> None:
    http, _ = script(answer(413, "request body too large"))
    assert sender(http).send([{"email": "a@example.com"}]) == [
        Operation("error", "contact too large for the server's request size limit")
    ]


def test_an_answer_that_does_not_match_the_batch_stops_the_import() -> None:
    http, _ = script(lambda request: httpx.Response(200, json={"operations": [], "error": None}))
    with pytest.raises(Exception, match="0 operations for 2 contacts"):
        sender(http).send(CONTACTS)


def test_a_batch_over_the_servers_maximum_suggests_a_smaller_batch_size() -> None:
    http, _ = script(answer(400, "contacts array exceeds the maximum of 500"))
    with pytest.raises(Rejected, match=r"maximum of 500; use a smaller --batch-size$"):
        sender(http).send(CONTACTS)


def test_the_back_off_is_capped() -> None:
    http, _ = script(answer(503), answer(503), answer(503), answer(503), answer(503), ok)
    delays: list[float] = []
    client = sender(http, delays)
    client.backoff = 20.0
    client.send(CONTACTS)
    assert max(delays) <= 30.0


@pytest.mark.parametrize(
    ("url", "fine"),
    [
        ("http://127.0.0.1:8000", True),
        ("https://audience.example.com/", True),
        ("localhost:8000", False),
        ("ftp://host", False),
        ("http://", False),
        ("http://127.0.0.1:65535", True),
        ("http://127.0.0.1:65536", False),
        ("http://127.0.0.1:0", False),
    ],
)
def test_check_url(url: str, fine: bool) -> None:
    assert (check_url(url) is None) is fine
