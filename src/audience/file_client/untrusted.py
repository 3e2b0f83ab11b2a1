"""Text that came from the server (or the network), made safe to print and to store.

A server may answer anything. Before its words reach a terminal or the errors file, every
character that is not printable (escape sequences, carriage returns, C1 controls, bidi
overrides, line separators) is shown the way `repr` shows it (`\\x1b`, `\\n`, `\\u202e`), so
an answer cannot move the cursor, recolour or clear the terminal, or break a CSV row.
"""

from __future__ import annotations

from typing import Any

import msgspec

#: Longest piece of server text kept in a message or reason (a hostile answer can be huge).
MAX_TEXT = 500

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """`text` with every non-printable character escaped (`\\x1b`, `\\n`, `\\u202e`, ...)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def server_text(value: str, limit: int = MAX_TEXT) -> str:
    """A string from the server, escaped and cut to `limit` characters."""
    if len(value) > limit:
        value = value[:limit] + "…"
    return printable(value)


def describe(value: Any, limit: int = 60) -> str:
    """A value from the server as it would be written in its answer, escaped: `'x'`, `5`."""
    if isinstance(value, str):
        shown = repr(value if len(value) <= limit else value[:limit] + "…")
    else:
        shown = msgspec.json.encode(value).decode()
        if len(shown) > limit:
            shown = shown[:limit] + "…"
    return printable(shown)


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
