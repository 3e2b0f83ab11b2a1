"""Console sessions: sign in with an API key, resume a session from its cookie, sign out.

A session's id is random (256 bits) and travels only in its cookie, as
`<workspace id>.<id>`; the database keeps a keyed hash of it (the secret that hashes API
keys). A session acts with its key's permissions, read again on every request, so that
revoking the key ends the session at once. Failed sign-ins are counted per client address in
the database, so that the limit holds across worker processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from audience.api_keys import service as api_keys
from audience.api_keys.schemas import Caller
from audience.db.session import busy_skips, transaction
from audience.errors import DatabaseBusy, NotSignedIn, Unauthorized
from audience.kit.clock import utcnow
from audience.kit.ids import WORKSPACE_ID
from audience.sessions.repository import LoginAttemptRepository, SessionRepository
from audience.sessions.schemas import (
    ActiveSession,
    NewSession,
    SessionPolicy,
    SignInRefused,
    StoredSession,
)

INVALID_KEY = "Invalid API key"
TOO_MANY_FAILURES = "Too many failed sign-ins from your address: try again in {} minutes"
#: last_seen_at is written at most this often per session (and at most every tenth of the
#: idle expiry), never once per request.
TOUCH_RESOLUTION_SECONDS = 60.0


def sign_in(
    conn: Connection,
    *,
    engine: Engine,
    api_key: str,
    address: str,
    secret_key: str,
    policy: SessionPolicy,
) -> NewSession | SignInRefused:
    """A new session for a valid key; refused with "Invalid API key" (the failure counted
    against the address), or 429 while the address has used up its failures."""
    now = utcnow()
    caller = _authenticated(engine, api_key, secret_key)
    attempts = LoginAttemptRepository(conn)
    window_start = now - timedelta(seconds=policy.window_seconds)
    refused = _rate_limited(attempts, address, policy, now, window_start)
    if refused is not None:
        return refused
    if caller is None:
        attempts.record_failure(address, now=now, window_start=window_start)
        return SignInRefused(INVALID_KEY, 401)
    return _create(conn, caller, secret_key, policy, now)


def _authenticated(engine: Engine, api_key: str, secret_key: str) -> Caller | None:
    """The caller behind the key, by the same check as the API's (None when it fails)."""
    try:
        return api_keys.authenticate(
            engine, authorization=f"Bearer {api_key.strip()}", secret_key=secret_key
        )
    except Unauthorized:
        return None


def _rate_limited(
    attempts: LoginAttemptRepository,
    address: str,
    policy: SessionPolicy,
    now: datetime,
    window_start: datetime,
) -> SignInRefused | None:
    found = attempts.get(address)
    if found is None or found.window_started_at <= window_start:
        return None
    if found.failures < policy.max_failures:
        return None
    ends = found.window_started_at + timedelta(seconds=policy.window_seconds)
    seconds = max(1, math.ceil((ends - now).total_seconds()))
    return SignInRefused(TOO_MANY_FAILURES.format(math.ceil(seconds / 60)), 429, seconds)


def _create(
    conn: Connection, caller: Caller, secret_key: str, policy: SessionPolicy, now: datetime
) -> NewSession:
    token = secrets.token_urlsafe(32)
    repo = SessionRepository(conn, caller.workspace_id)
    repo.delete_expired(now)
    repo.insert(
        StoredSession(
            workspace_id=caller.workspace_id,
            id_hash=_digest(secret_key, "session", token),
            key_id=caller.key_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=policy.idle_seconds),
        )
    )
    session = ActiveSession(caller=caller, csrf_token=csrf_token(secret_key, token))
    return NewSession(cookie=f"{caller.workspace_id}.{token}", session=session)


def resume(
    engine: Engine, *, cookie: str | None, secret_key: str, idle_seconds: float
) -> ActiveSession:
    """The live session of a cookie, acting with its key as the key now is; NotSignedIn for
    no cookie, an unknown or expired session, or a revoked key."""
    workspace_id, token = _parse(cookie)
    id_hash = _digest(secret_key, "session", token)
    now = utcnow()
    with transaction(engine, write=False) as conn:
        stored = SessionRepository(conn, workspace_id).get(id_hash)
        if stored is None or stored.expires_at <= now:
            raise NotSignedIn("not signed in")
        try:
            caller = api_keys.caller_of_key(conn, workspace_id=workspace_id, key_id=stored.key_id)
        except Unauthorized:
            raise NotSignedIn("not signed in") from None
    _touch(engine, stored, now, idle_seconds)
    return ActiveSession(caller=caller, csrf_token=csrf_token(secret_key, token))


def sign_out(conn: Connection, *, cookie: str | None, secret_key: str) -> None:
    """End the session of a cookie (nothing happens for one that has ended already)."""
    with contextlib.suppress(NotSignedIn):
        workspace_id, token = _parse(cookie)
        SessionRepository(conn, workspace_id).delete(_digest(secret_key, "session", token))


def csrf_token(secret_key: str, cookie_secret: str) -> str:
    """The CSRF token of the forms of a session (or of the sign-in page's own cookie):
    derived from the cookie's secret, so a page of another site can neither read nor make it."""
    return _digest(secret_key, "csrf", cookie_secret)


def check_csrf(secret_key: str, cookie_secret: str | None, submitted: str | None) -> bool:
    """Whether a submitted CSRF token is the one of this cookie (constant time)."""
    if not cookie_secret or not submitted:
        return False
    expected = csrf_token(secret_key, cookie_secret)
    return hmac.compare_digest(expected.encode(), submitted.encode())


def cookie_secret(cookie: str | None) -> str | None:
    """The secret part of a session cookie (the CSRF token derives from it), or None."""
    try:
        return _parse(cookie)[1]
    except NotSignedIn:
        return None


def _parse(cookie: str | None) -> tuple[str, str]:
    workspace_id, _, token = (cookie or "").partition(".")
    if not WORKSPACE_ID.fullmatch(workspace_id) or not 32 <= len(token) <= 64:
        raise NotSignedIn("not signed in")
    return workspace_id, token


def _digest(secret_key: str, purpose: str, value: str) -> str:
    message = f"{purpose}:{value}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def _touch(engine: Engine, stored: StoredSession, now: datetime, idle_seconds: float) -> None:
    """Push the idle expiry forward, at most once per resolution; best effort (skipped, not
    waited for, while another request holds the write lock)."""
    resolution = min(TOUCH_RESOLUTION_SECONDS, idle_seconds / 10)
    if (now - stored.last_seen_at).total_seconds() < resolution:
        return
    expires_at = now + timedelta(seconds=idle_seconds)
    with contextlib.suppress(DatabaseBusy), busy_skips(engine) as conn:
        SessionRepository(conn, stored.workspace_id).touch(stored.id_hash, now, expires_at)
