"""The console's dependencies: the session from its cookie, the CSRF check of every change,
and the permissions of the key, each declared once and taken by name (as api_keys/auth.py
does for the API)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from audience.api_keys import service as api_keys
from audience.api_keys.schemas import Permission
from audience.errors import Forbidden
from audience.sessions import service as sessions
from audience.sessions.schemas import ActiveSession, SessionPolicy

SESSION_COOKIE = "audience_console"
#: The sign-in page's own cookie: the CSRF token of the sign-in form derives from it.
LOGIN_COOKIE = "audience_console_login"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
CSRF_REFUSED = "the form has expired or did not come from this console: reload the page"


def session_policy(request: Request) -> SessionPolicy:
    settings = request.app.state.settings
    return SessionPolicy(
        idle_seconds=settings.console_session_idle_seconds,
        max_failures=settings.console_login_max_failures,
        window_seconds=settings.console_login_window_seconds,
    )


def client_address(request: Request) -> str:
    """The address failed sign-ins are counted against (uvicorn takes it from
    X-Forwarded-For only when the proxy is trusted: --forwarded-allow-ips)."""
    return request.client.host if request.client else "unknown"


def login_secret(request: Request) -> str:
    """The sign-in page's cookie secret: the browser's own, or a new one to set."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)


def _session(request: Request) -> ActiveSession:
    state = request.app.state
    session = sessions.resume(
        state.engine,
        cookie=request.cookies.get(SESSION_COOKIE),
        secret_key=state.secret_key,
        idle_seconds=state.settings.console_session_idle_seconds,
    )
    request.state.workspace_id = session.caller.workspace_id  # for the access log
    request.state.key_id = session.caller.key_id
    return session


SignedIn = Annotated[ActiveSession, Depends(_session)]


async def _submitted_token(request: Request) -> str | None:
    """The CSRF token of a request: htmx sends it as a header, plain forms as a field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    value = (await request.form()).get(CSRF_FIELD)
    return value if isinstance(value, str) else None


async def _refuse_csrf(request: Request) -> None:
    await _close_files(request)
    raise Forbidden(CSRF_REFUSED)


async def _close_files(request: Request) -> None:
    """A refused multipart form's files closed (their temporary copies go with them)."""
    if request.headers.get("content-type", "").startswith("multipart/"):
        await (await request.form()).close()


async def check_login_csrf(request: Request) -> None:
    """The sign-in form's token, checked against the sign-in page's cookie (403)."""
    cookie = request.cookies.get(LOGIN_COOKIE)
    if not sessions.check_csrf(
        request.app.state.secret_key, cookie, await _submitted_token(request)
    ):
        await _refuse_csrf(request)


class Authorizer:
    """The session, once its key is known to carry `permission` (403 otherwise) and, for a
    change, once the request carries the session's CSRF token (403 otherwise)."""

    def __init__(self, permission: Permission | None, *, change: bool) -> None:
        self.permission = permission
        self.change = change

    async def __call__(self, request: Request, session: SignedIn) -> ActiveSession:
        if self.change:
            cookie = sessions.cookie_secret(request.cookies.get(SESSION_COOKIE))
            secret_key = request.app.state.secret_key
            if not sessions.check_csrf(secret_key, cookie, await _submitted_token(request)):
                await _refuse_csrf(request)
        if self.permission is not None:
            try:
                api_keys.require(session.caller, self.permission)
            except Forbidden:
                await _close_files(request)
                raise
        return session


ContactsRead = Annotated[ActiveSession, Depends(Authorizer(Permission.CONTACTS_READ, change=False))]
ListsRead = Annotated[ActiveSession, Depends(Authorizer(Permission.LISTS_READ, change=False))]
ContactsWrite = Annotated[
    ActiveSession, Depends(Authorizer(Permission.CONTACTS_WRITE, change=True))
]
ListsWrite = Annotated[ActiveSession, Depends(Authorizer(Permission.LISTS_WRITE, change=True))]
#: A change whose permission the service checks (a bulk change: it depends on the action),
#: or that needs none (signing out): the CSRF token only.
Change = Annotated[ActiveSession, Depends(Authorizer(None, change=True))]
Page = Annotated[ActiveSession, Depends(Authorizer(None, change=False))]


async def _form(request: Request) -> AsyncIterator[FormData]:
    form = await request.form()
    try:
        yield form
    finally:
        await form.close()  # an uploaded file's temporary copy goes with it


#: The fields of a submitted form (urlencoded or multipart).
Form = Annotated[FormData, Depends(_form)]
#: A page that leads to a change (an edit form, a confirmation): the permission of the
#: change, no CSRF token yet (a GET carries none).
ContactsWritePage = Annotated[
    ActiveSession, Depends(Authorizer(Permission.CONTACTS_WRITE, change=False))
]
ListsWritePage = Annotated[ActiveSession, Depends(Authorizer(Permission.LISTS_WRITE, change=False))]
