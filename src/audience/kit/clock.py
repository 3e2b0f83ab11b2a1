"""Time in one place: aware UTC datetimes, rendered as RFC 3339."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime (SQLite hands back naive UTC values)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def rfc3339(value: datetime | None) -> str | None:
    """`2024-05-01T09:00:00.123456Z`, or None."""
    if value is None:
        return None
    text = as_utc(value).isoformat()
    return text.removesuffix("+00:00") + "Z"
