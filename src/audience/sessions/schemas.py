"""Console sessions: the stored session, the sign-in policy, and what a sign-in gives back."""

from __future__ import annotations

from datetime import datetime

import msgspec

from audience.api_keys.schemas import Caller


class SessionPolicy(msgspec.Struct, frozen=True):
    """How long a session lives idle and how many failed sign-ins an address may make
    (Settings: AUDIENCE_CONSOLE_*)."""

    idle_seconds: float = 12 * 3600
    max_failures: int = 10
    window_seconds: float = 15 * 60


class StoredSession(msgspec.Struct, frozen=True):
    """A session as stored: a keyed hash of its random id, never the id itself."""

    workspace_id: str
    id_hash: str
    key_id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class ActiveSession(msgspec.Struct, frozen=True):
    """A live session: who acts (the key's caller) and the CSRF token of its forms."""

    caller: Caller
    csrf_token: str


class NewSession(msgspec.Struct, frozen=True):
    """A session just created: `cookie` is the only place its id exists."""

    cookie: str
    session: ActiveSession


class SignInRefused(msgspec.Struct, frozen=True):
    """A sign-in refused: the message the page shows, its status, when to try again."""

    message: str
    status_code: int
    retry_after_seconds: int | None = None


class Attempts(msgspec.Struct, frozen=True):
    """The failed sign-ins of one client address in its current window."""

    failures: int
    window_started_at: datetime
