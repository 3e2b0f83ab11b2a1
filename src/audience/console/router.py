"""The console's routes at /console: sign-in and sign-out, the static files, and the
contacts, lists and imports pages (contact_pages.py, list_pages.py, import_pages.py).

Each route parses its form or query, calls one service and renders a template.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from audience.console import cookies
from audience.console.contact_pages import router as contact_pages
from audience.console.deps import (
    SESSION_COOKIE,
    Change,
    Form,
    check_login_csrf,
    client_address,
    login_secret,
    session_policy,
)
from audience.console.forms import text
from audience.console.import_pages import router as import_pages
from audience.console.list_pages import router as list_pages
from audience.console.render import page
from audience.console.routing import LOGIN_PATH, ConsoleRoute
from audience.errors import NotFound
from audience.sessions import service as sessions
from audience.sessions.schemas import NewSession, SignInRefused
from audience.web.deps import WriteDb

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

STATIC = Path(__file__).with_name("static")
#: Every file /console/static serves, and its media type: nothing else is reachable.
STATIC_FILES = {
    "console.css": "text/css",
    "console.js": "text/javascript",
    "vendor/htmx/htmx.min.js": "text/javascript",
    "vendor/pico/pico.min.css": "text/css",
}


@router.get("")
def home() -> RedirectResponse:
    """The console opens on its contacts."""
    return RedirectResponse("/console/contacts", status_code=303)


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    """The sign-in form, with the CSRF token of the sign-in page's own cookie."""
    secret = login_secret(request)
    response = _login_form(request, secret)
    cookies.set_login(response, request, secret)
    return response


@router.post("/login", dependencies=[Depends(check_login_csrf)])
def sign_in(request: Request, form: Form, db: WriteDb) -> Response:
    """A session for a valid API key; "Invalid API key" (401) or 429 otherwise."""
    outcome = sessions.sign_in(
        db,
        engine=request.app.state.engine,
        api_key=text(form, "api_key"),
        address=client_address(request),
        secret_key=request.app.state.secret_key,
        policy=session_policy(request),
    )
    return _signed_in(request, outcome)


def _signed_in(request: Request, outcome: NewSession | SignInRefused) -> Response:
    if isinstance(outcome, SignInRefused):
        response = _login_form(request, login_secret(request), outcome.message, outcome.status_code)
        if outcome.retry_after_seconds is not None:
            response.headers["Retry-After"] = str(outcome.retry_after_seconds)
        return response
    redirect = RedirectResponse("/console/contacts", status_code=303)
    cookies.set_session(redirect, request, outcome.cookie)
    return redirect


def _login_form(
    request: Request, secret: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    token = sessions.csrf_token(request.app.state.secret_key, secret)
    return page(request, "login.html", None, status_code=status_code, login_csrf=token, error=error)


@router.post("/logout")
def sign_out(request: Request, _session: Change, db: WriteDb) -> RedirectResponse:
    """End this session."""
    sessions.sign_out(
        db,
        cookie=request.cookies.get(SESSION_COOKIE),
        secret_key=request.app.state.secret_key,
    )
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    cookies.clear_session(response, request)
    return response


@router.get("/static/{name:path}")
def static(name: str) -> Response:
    """The console's script and styles and the vendored htmx and Pico.css."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise NotFound("not found")
    headers = {"Cache-Control": "public, max-age=86400"}
    return FileResponse(STATIC / name, media_type=media_type, headers=headers)


router.include_router(contact_pages)
router.include_router(list_pages)
router.include_router(import_pages)
