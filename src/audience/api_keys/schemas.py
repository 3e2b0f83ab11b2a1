"""Permissions and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Permission(StrEnum):
    CONTACTS_READ = "contacts:read"
    CONTACTS_WRITE = "contacts:write"
    LISTS_READ = "lists:read"
    LISTS_WRITE = "lists:write"


ALL_PERMISSIONS: tuple[Permission, ...] = tuple(Permission)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the key's workspace and what the key may do."""

    workspace_id: str
    key_id: str
    permissions: frozenset[Permission]

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as listed: never the key itself."""

    workspace_id: str
    id: str
    name: str
    prefix: str
    permissions: tuple[Permission, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created: the only moment the plaintext exists."""

    info: KeyInfo
    key: str


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
