"""Templates: one environment (autoescaped), whole pages, and their blocks as htmx partials.

A page's template extends base.html; the parts an htmx request replaces are blocks of that
same template, rendered on their own (Jinja2's block rendering): never a copy of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse

from audience import __version__
from audience.api_keys.schemas import Permission
from audience.kit.clock import isoformat_utc
from audience.sessions.schemas import ActiveSession


def _when(value: datetime | str | None) -> str:
    """`2024-05-01 09:00 UTC`: how pages show a time (the exact instant is in <time>)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else isoformat_utc(value)
    return text[:16].replace("T", " ") + " UTC"


def number_text(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def json_text(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def _query(params: Mapping[str, Any]) -> str:
    """A query string of the parameters that have a value."""
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("audience.console", "templates"),
        autoescape=True,  # every value is escaped, whatever a contact's fields hold
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, number=number_text, json_text=json_text, query=_query)
    env.globals.update(version=__version__)
    # The form macros, as a global: a block rendered on its own sees globals, not imports.
    env.globals["ui"] = env.get_template("_macros.html").module
    return env


ENV = _environment()


def is_partial(request: Request) -> bool:
    """An htmx request for a part of a page (a history restore wants the whole page)."""
    headers = request.headers
    return headers.get("hx-request") == "true" and "hx-history-restore-request" not in headers


def context_of(session: ActiveSession | None) -> dict[str, Any]:
    """What every page's layout needs: the CSRF token and what the key may do."""
    if session is None:
        return {"signed_in": False, "csrf_token": "", "can": frozenset()}
    can = frozenset(p.value for p in Permission if session.caller.can(p))
    return {
        "signed_in": True,
        "csrf_token": session.csrf_token,
        "can": can,
        "workspace_id": session.caller.workspace_id,
    }


def page(
    request: Request,
    template: str,
    session: ActiveSession | None,
    *,
    block: str | None = None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    """The page, or only its `block` when htmx asks for a part of it."""
    context = {**context_of(session), "request_path": request.url.path, **values}
    found = ENV.get_template(template)
    if block is not None and is_partial(request):
        html = "".join(found.blocks[block](found.new_context(context)))
    else:
        html = found.render(context)
    return HTMLResponse(html, status_code=status_code)
