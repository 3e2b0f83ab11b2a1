"""The FastAPI dependency that turns a bearer key into a Caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from audience.api_keys import service
from audience.api_keys.schemas import Caller

# Declared for the OpenAPI document only; the header is parsed by the service so that a
# missing, malformed and unknown key each get their own 401 message.
_bearer = HTTPBearer(auto_error=False, scheme_name="BearerAuth", description="API key")


def current_caller(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    state = request.app.state
    return service.authenticate(
        state.engine,
        authorization=request.headers.get("authorization"),
        secret_key=state.secret_key,
    )


CurrentCaller = Annotated[Caller, Depends(current_caller)]
