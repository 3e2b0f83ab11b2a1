"""Time in one place: aware UTC datetimes, and their text in API answers."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime (SQLite hands back naive UTC values)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def isoformat_utc(value: datetime) -> str:
    """`2024-05-01T09:00:00.123456Z`: how every answer writes a timestamp."""
    return as_utc(value).isoformat().removesuffix("+00:00") + "Z"
