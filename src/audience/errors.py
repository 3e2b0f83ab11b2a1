"""One error hierarchy, rendered everywhere as {"error": "<message>"}."""

from __future__ import annotations


class AppError(Exception):
    """An expected failure with a message meant for the client."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(AppError):
    status_code = 400


class Unauthorized(AppError):
    status_code = 401


class Forbidden(AppError):
    status_code = 403


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class PayloadTooLarge(AppError):
    status_code = 413


class UnsupportedMediaType(AppError):
    status_code = 415


class ConfigurationError(AppError):
    """The service cannot start as configured (used by the CLI, never by routes)."""

    status_code = 500
