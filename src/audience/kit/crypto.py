"""API keys: `aud_<workspace>_<key id><secret>`, stored only as an HMAC, shown once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

from audience.kit.ids import WORKSPACE_ID

KEY_PREFIX = "aud_"
KEY_ID_LENGTH = 10
SECRET_LENGTH = 32
_ALPHABET = string.ascii_letters + string.digits
_ALPHABET_SET = frozenset(_ALPHABET)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """The public parts of a well-formed key; the secret never leaves the request."""

    workspace_id: str
    key_id: str


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_key_id() -> str:
    """A random public identifier for a key (used to list and revoke it)."""
    return _random(KEY_ID_LENGTH)


def generate_api_key(workspace_id: str, key_id: str) -> str:
    """A new key; the workspace and key id are embedded so lookup needs no scan."""
    return f"{KEY_PREFIX}{workspace_id}_{key_id}{_random(SECRET_LENGTH)}"


def display_prefix(workspace_id: str, key_id: str) -> str:
    """What the key listing shows in place of the key."""
    return f"{KEY_PREFIX}{workspace_id}_{key_id}"


def parse_api_key(key: str) -> ParsedKey | None:
    """The workspace and key id of a well-formed key, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    workspace_id, sep, tail = key[len(KEY_PREFIX) :].rpartition("_")
    if not sep or not WORKSPACE_ID.fullmatch(workspace_id):
        return None
    if len(tail) != KEY_ID_LENGTH + SECRET_LENGTH:
        return None
    if not _ALPHABET_SET.issuperset(tail):
        return None
    return ParsedKey(workspace_id=workspace_id, key_id=tail[:KEY_ID_LENGTH])


def hash_api_key(key: str, secret_key: str) -> str:
    """The keyed hash that is stored instead of the key."""
    return hmac.new(secret_key.encode(), key.encode(), hashlib.sha256).hexdigest()


def hashes_match(stored: str, computed: str) -> bool:
    """Constant-time comparison of two hashes."""
    return hmac.compare_digest(stored.encode(), computed.encode())
