"""The route class of every /api/ router: its documented body, and one retry of a transaction
that a deadlock or a serialization failure aborted."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from audience.errors import DatabaseBusy, RetryableDatabaseError
from audience.web.bodies import DocumentedBody

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


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
            # The transaction is the request's (web/deps.py): it was rolled back whole, and
            # the body is kept by the request, so running the route again is safe.
            try:
                return await handler(request)
            except RetryableDatabaseError:
                pass
            try:
                return await handler(request)
            except RetryableDatabaseError:
                raise DatabaseBusy() from None

        return retrying


def _documented_model(dependant: Dependant) -> type[BaseModel] | None:
    for sub in dependant.dependencies:
        if isinstance(sub.call, DocumentedBody):
            return sub.call.model
        found = _documented_model(sub)
        if found is not None:
            return found
    return None
