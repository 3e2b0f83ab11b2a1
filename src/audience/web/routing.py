"""The route class of every /api/ router: its documented body, and one retry of a transaction
that a deadlock or a serialization failure aborted."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from audience.errors import DatabaseBusy, RetryableDatabaseError
from audience.web.bodies import DocumentedBody

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
#: Where FastAPI keeps the exit stack of a request's function-scoped dependencies.
_FUNCTION_STACK = "fastapi_function_astack"


class ApiRoute(APIRoute):
    """An APIRoute whose OpenAPI request body is the model of its `DocumentedBody`
    dependency (web/openapi.py moves the model's schema into the components), and whose
    request runs once more when the database aborted its transaction to break a deadlock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model = _documented_model(self.dependant)
        if model is not None:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            content = {"application/json": {"schema": schema}}
            body = {"requestBody": {"required": True, "content": content}}
            self.openapi_extra = {**body, **(self.openapi_extra or {})}

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def retrying(request: Request) -> Response:
            # Each attempt gets its own stack of function-scoped dependencies (FastAPI keeps
            # it in the scope), so the first attempt's transaction is rolled back and its
            # connection returned before the second begins; the body is kept by the request.
            for attempt in (1, 2):
                previous = request.scope.get(_FUNCTION_STACK)
                request.scope[_FUNCTION_STACK] = stack = AsyncExitStack()
                try:
                    async with stack:
                        return await handler(request)
                except RetryableDatabaseError:
                    if attempt == 2:
                        raise DatabaseBusy() from None
                finally:
                    request.scope[_FUNCTION_STACK] = previous
            raise AssertionError("unreachable")

        return retrying


def _documented_model(dependant: Dependant) -> type[BaseModel] | None:
    for sub in dependant.dependencies:
        if isinstance(sub.call, DocumentedBody):
            return sub.call.model
        found = _documented_model(sub)
        if found is not None:
            return found
    return None
