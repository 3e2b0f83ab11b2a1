"""Opaque keyset cursors: the last key of a page, in URL-safe base64 without padding."""

from __future__ import annotations

import base64
import binascii


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The key a cursor carries; ValueError unless the cursor is exactly what we would issue."""
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        key = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if not key or "\x00" in key or encode_cursor(key) != cursor:
        raise ValueError("invalid cursor")
    return key
