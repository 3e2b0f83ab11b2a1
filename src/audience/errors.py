"""One error hierarchy, rendered everywhere as {"error": "<message>"} (web/errors.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class AppError(Exception):
    """An expected failure with a message meant for the client."""

    status_code = 400
    headers: ClassVar[Mapping[str, str]] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(AppError):
    status_code = 400


class Unauthorized(AppError):
    status_code = 401
    headers: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": "Bearer"}


class Forbidden(AppError):
    status_code = 403


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class UnprocessableEntity(AppError):
    status_code = 422


class PayloadTooLarge(AppError):
    status_code = 413


class UnsupportedMediaType(AppError):
    status_code = 415


class ServiceUnavailable(AppError):
    """Try again shortly: the server or the database is saturated or locked."""

    status_code = 503
    headers: ClassVar[Mapping[str, str]] = {"Retry-After": "1"}


class DatabaseBusy(ServiceUnavailable):
    """A lock or statement timeout, an exhausted pool, or a deadlock that a retry did not cure."""

    def __init__(self, message: str = "database busy, retry later") -> None:
        super().__init__(message)


class RetryableDatabaseError(DatabaseBusy):
    """A deadlock or serialization failure: the whole transaction may be run once more."""


class ConfigurationError(AppError):
    """The service cannot start as configured (used by the CLI, never by routes)."""

    status_code = 500


class NotSignedIn(AppError):
    """A console request without a live session: the console sends it to its sign-in page."""

    status_code = 401
