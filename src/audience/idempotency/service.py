"""Idempotency keys (docs/import.md, "Idempotency-Key"): a request sent again with the same
key and the same body gets the first answer again, byte for byte, and writes nothing.

The key's record is written in the request's own transaction, so the answer and the writes
it reports commit together (or neither does). A second request with a key that a running
request holds waits for it (its row lock; at most the database's lock timeout, then 503),
then replays its answer. Request-level 4xx answers are stored too, except a 401 (it has no
workspace to belong to); 5xx answers are not (a retry runs again). A dry run stores nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta

import msgspec
from sqlalchemy import Connection

from audience.errors import AppError, BadRequest, Conflict, Unauthorized, UnprocessableEntity
from audience.idempotency.repository import IdempotencyRepository
from audience.idempotency.schemas import Answer, Handled, StoredAnswer
from audience.kit.clock import utcnow

#: 1-255 visible ASCII characters.
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")
BAD_KEY = "Idempotency-Key must be 1-255 visible ASCII characters"
OTHER_BODY = "Idempotency-Key was already used with a different request body"
IN_PROGRESS = "a request with this Idempotency-Key is in progress"


def checked_key(value: str | None) -> str | None:
    """The Idempotency-Key header's value, or None when absent; 400 when malformed."""
    if value is None:
        return None
    if not KEY_PATTERN.fullmatch(value):
        raise BadRequest(BAD_KEY)
    return value


def run_once(
    conn: Connection,
    *,
    workspace_id: str,
    key: str | None,
    body: bytes,
    ttl_seconds: float,
    handle: Callable[[], Handled],
) -> Answer:
    """Run `handle` unless a request with this key and body already ran: then its answer."""
    if key is None:
        return _answer(handle())  # a refusal propagates: the edge rolls back and answers
    repo = IdempotencyRepository(conn, workspace_id)
    now = utcnow()
    digest = hashlib.sha256(body).hexdigest()
    repo.purge(now)
    expires = now + timedelta(seconds=ttl_seconds)
    if not repo.claim(key, digest, now, expires):
        stored = repo.get(key)
        if stored is not None:
            return _replay(stored, digest)
        if not repo.claim(key, digest, now, expires):  # released meanwhile: ours now
            raise Conflict(IN_PROGRESS)
    savepoint = conn.begin_nested()
    try:
        handled = _handled(handle)
    except Unauthorized:
        savepoint.rollback()
        repo.release(key)
        raise
    if handled.status_code >= 400:  # a refused request: whatever it did is undone
        savepoint.rollback()
    else:
        savepoint.commit()
    if handled.keep:
        repo.store(key, handled.status_code, handled.body)
    else:
        repo.release(key)
    return _answer(handled)


def _handled(handle: Callable[[], Handled]) -> Handled:
    """The handler's answer; a request-level refusal (4xx) as its error body."""
    try:
        return handle()
    except AppError as exc:
        return refused(exc)


def refused(exc: AppError, *, keep: bool = True) -> Handled:
    """A request-level refusal (4xx) as an answer, stored under the key when `keep` (a dry
    run's is not); a server error or a 401 is raised again: neither is stored."""
    if exc.status_code >= 500 or isinstance(exc, Unauthorized):
        raise exc
    return Handled(exc.status_code, msgspec.json.encode({"error": exc.message}), keep=keep)


def _replay(stored: StoredAnswer, digest: str) -> Answer:
    if stored.request_hash != digest:
        raise UnprocessableEntity(OTHER_BODY)
    if stored.status_code is None or stored.body is None:
        raise Conflict(IN_PROGRESS)
    return Answer(stored.status_code, stored.body, replayed=True)


def _answer(handled: Handled) -> Answer:
    return Answer(handled.status_code, handled.body)
