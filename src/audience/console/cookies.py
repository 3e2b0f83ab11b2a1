"""The console's cookies: HttpOnly, SameSite=Lax, limited to /console, Secure over https."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from audience.console.deps import LOGIN_COOKIE, SESSION_COOKIE

PATH = "/console"
LOGIN_MAX_AGE = 3600


def _set(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def set_session(response: Response, request: Request, cookie: str) -> None:
    """The session's cookie; it lives as long as the browser's session, the session itself
    as long as the server keeps it (AUDIENCE_CONSOLE_SESSION_IDLE_SECONDS)."""
    _set(response, request, SESSION_COOKIE, cookie, None)
    response.delete_cookie(LOGIN_COOKIE, path=PATH)


def set_login(response: Response, request: Request, secret: str) -> None:
    _set(response, request, LOGIN_COOKIE, secret, LOGIN_MAX_AGE)


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
