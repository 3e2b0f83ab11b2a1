"""API keys: permissions, the stored key record and the authenticated caller."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class Permission(StrEnum):
    CONTACTS_READ = "contacts:read"
    CONTACTS_WRITE = "contacts:write"
    LISTS_READ = "lists:read"
    LISTS_WRITE = "lists:write"

    @property
    def denied_message(self) -> str:
        """`write access to contacts required`."""
        resource, _, access = self.value.partition(":")
        return f"{access} access to {resource} required"


ALL_PERMISSIONS: tuple[Permission, ...] = tuple(Permission)


class ApiKey(msgspec.Struct, frozen=True):
    """A key as stored and listed: never the key itself, only its keyed hash."""

    workspace_id: str
    id: str
    name: str
    prefix: str
    hash: str
    permissions: tuple[Permission, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewKey(msgspec.Struct, frozen=True):
    """A key just created: the only moment the plaintext exists."""

    info: ApiKey
    key: str


class Caller(msgspec.Struct, frozen=True):
    """Who is calling: the key's workspace and what the key may do."""

    workspace_id: str
    key_id: str
    permissions: frozenset[Permission]

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


def parse_permissions(text: str) -> tuple[Permission, ...]:
    """`contacts:read,lists:write` → permissions; raises ValueError naming a bad entry."""
    result: list[Permission] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            permission = Permission(part)
        except ValueError:
            allowed = ", ".join(ALL_PERMISSIONS)
            raise ValueError(f"unknown permission {part!r} (allowed: {allowed})") from None
        if permission not in result:
            result.append(permission)
    if not result:
        raise ValueError("at least one permission is required")
    return tuple(result)
