"""The route class of the console: security headers on every answer, refusals as pages.

Every console answer forbids framing and inline scripts (Content-Security-Policy, with
scripts and styles from /console/static only) and is never cached; a request without a live
session is sent to the sign-in page; an expected failure is a page that says what failed.
"""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from audience.console.render import is_partial, page
from audience.errors import AppError, NotSignedIn
from audience.web.bodies import describe_validation_error
from audience.web.routing import ApiRoute, Handler

LOGIN_PATH = "/console/login"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class ConsoleRoute(ApiRoute):
    """An ApiRoute (one retry of a deadlocked transaction) whose answers are pages."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def console(request: Request) -> Response:
            try:
                response = await handler(request)
            except NotSignedIn:
                response = to_login(request)
            except AppError as exc:
                response = refused(request, exc.message, exc.status_code)
            except RequestValidationError as exc:
                response = refused(request, describe_validation_error(exc.errors()), 400)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return console


def to_login(request: Request) -> Response:
    """To the sign-in page: a redirect, or for htmx an instruction to load it."""
    if is_partial(request):
        return Response(status_code=200, headers={"HX-Redirect": LOGIN_PATH})
    return RedirectResponse(LOGIN_PATH, status_code=303)


def refused(request: Request, message: str, status_code: int) -> Response:
    """A page (or, for htmx, the part that shows messages) that says why."""
    response = page(
        request, "error.html", None, block="error", status_code=status_code, message=message
    )
    if is_partial(request):  # shown in the page's message area, whatever the request targeted
        response.headers["HX-Retarget"] = "#messages"
        response.headers["HX-Reswap"] = "innerHTML"
    return response
