"""Per-contact rules 5 and 6 of DESIGN §1: email normalisation and field types.

A contact is decoded from its own JSON bytes, so one bad contact never fails its batch, and
every failure names the field and the reason.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from msgspec import UNSET
from msgspec.structs import astuple

from audience.contacts.fields import (
    DATETIME_FIELDS,
    EMAIL_MAX_LENGTH,
    JSON_FIELDS,
    JSON_MAX_BYTES,
    JSON_MAX_DEPTH,
    NUMBER_FIELDS,
    TEXT_FIELDS,
    TEXT_MAX_LENGTH,
)
from audience.contacts.schemas import ContactStruct

EMAIL_REQUIRED = "email is required"
INVALID_EMAIL = "invalid email format"

_PATH = re.compile(r"at `\$\.([A-Za-z0-9_]+)")


class ContactError(ValueError):
    """A contact that cannot be applied; `email` is what the operation reports."""

    def __init__(self, message: str, email: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.email = email


@dataclass(slots=True)
class ValidContact:
    """A contact that passed every rule: its normalised email and the fields it gives.

    `values` holds only the fields present in the input: None means "clear", anything else
    replaces. JSON values are kept as compact JSON text, date-times as aware UTC datetimes.
    """

    email: str
    values: dict[str, Any]


def decode_contact(raw: bytes | msgspec.Raw) -> ValidContact:
    """Decode and validate one contact from its JSON; raises ContactError."""
    try:
        struct = msgspec.json.decode(raw, type=ContactStruct)
    except msgspec.ValidationError as exc:
        raise ContactError(_describe(str(exc)), _email_hint(raw)) from None
    except (msgspec.DecodeError, RecursionError):
        raise ContactError("contact: invalid JSON") from None
    return validate_contact(struct)


def validate_contact(struct: Any) -> ValidContact:
    """Apply the field rules to a decoded ContactStruct."""
    try:
        email = normalize_email(struct.email)
    except ContactError as exc:
        exc.email = report_email(struct.email)
        raise
    values: dict[str, Any] = {}
    try:
        for (name, check), value in zip(_CHECKS, astuple(struct)[1:], strict=True):
            if value is not UNSET:
                values[name] = None if value is None else check(name, value)
    except ContactError as exc:
        exc.email = email
        raise
    return ValidContact(email=email, values=values)


def normalize_email(value: Any) -> str:
    """Trimmed of Unicode whitespace, lower-cased, syntax-checked (rule 5)."""
    if value is UNSET or value is None:
        raise ContactError(EMAIL_REQUIRED)
    if not isinstance(value, str):
        raise ContactError(INVALID_EMAIL)
    email = value.strip().lower()
    if not email:
        raise ContactError(EMAIL_REQUIRED)
    return _checked_email(email)


#: Plain ASCII addresses that email-validator is known to accept unchanged (a test checks
#: that claim); anything else goes through email-validator itself, ~30 µs an address.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,24})"
)
_SPECIAL_USE_TLDS = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def is_plain_email(email: str) -> bool:
    """True for a common address whose syntax needs no full RFC check."""
    match = _PLAIN_EMAIL.fullmatch(email)
    return (
        match is not None
        and match.group(1) not in _SPECIAL_USE_TLDS
        and "--" not in email.partition("@")[2]
        and len(email.partition("@")[0]) <= 64
        and len(email) <= EMAIL_MAX_LENGTH
    )


@lru_cache(maxsize=4_096)
def _checked_email(email: str) -> str:
    if len(email) > EMAIL_MAX_LENGTH or "\x00" in email:
        raise ContactError(INVALID_EMAIL, email)
    if is_plain_email(email):
        return email
    try:
        result = validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        raise ContactError(INVALID_EMAIL, email) from None
    return result.normalized.lower()


def report_email(value: Any) -> str:
    """What an error operation echoes as its email: the trimmed, lower-cased input, if text."""
    return value.strip().lower() if isinstance(value, str) else ""


class _EmailOnly(msgspec.Struct):
    email: Any = None


def _email_hint(raw: bytes | msgspec.Raw) -> str:
    """The email of a contact that failed decoding, reading nothing but that key."""
    try:
        return report_email(msgspec.json.decode(raw, type=_EmailOnly).email)
    except (msgspec.DecodeError, RecursionError):
        return ""


def _text(name: str, value: str) -> str:
    value = value.strip()
    if len(value) > TEXT_MAX_LENGTH:
        raise ContactError(f"{name}: must be at most {TEXT_MAX_LENGTH} characters")
    if "\x00" in value:
        raise ContactError(f"{name}: must not contain NUL characters")
    if name == "timezone" and value not in _time_zones():
        raise ContactError(f"timezone: unknown time zone {value!r} (expected an IANA name)")
    return value


def _number(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ContactError(f"{name}: must be a finite number")
    return value


def _datetime(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ContactError(f"{name}: date-time must include a time zone offset (RFC 3339)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ContactError(f"{name}: date-time out of range in UTC") from None


def _json(name: str, value: dict[str, Any] | list[Any]) -> str:
    encoded = msgspec.json.encode(value)
    # Counting brackets (strings included) bounds the depth from above, cheaply.
    may_be_deep = encoded.count(b"[") + encoded.count(b"{") > JSON_MAX_DEPTH
    if may_be_deep and _depth(value) > JSON_MAX_DEPTH:
        raise ContactError(f"{name}: nested deeper than {JSON_MAX_DEPTH} levels")
    if len(encoded) > JSON_MAX_BYTES:
        raise ContactError(f"{name}: larger than {JSON_MAX_BYTES} bytes")
    if b"\\u0000" in encoded:
        raise ContactError(f"{name}: must not contain NUL characters")
    return encoded.decode()


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value (a scalar is 0), stopping once past the limit."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > JSON_MAX_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


_Check = Callable[[str, Any], Any]

#: (field, check) in the order of ContactStruct's fields after `email`.
_CHECKS: tuple[tuple[str, _Check], ...] = (
    *((name, _text) for name in TEXT_FIELDS),
    *((name, _number) for name in NUMBER_FIELDS),
    *((name, _datetime) for name in DATETIME_FIELDS),
    *((name, _json) for name in JSON_FIELDS),
)
assert tuple(n for n, _ in _CHECKS) == ContactStruct.__struct_fields__[1:]


def _describe(message: str) -> str:
    """A msgspec validation message rewritten as `field: reason`."""
    match = _PATH.search(message)
    if match is None:
        return "contact must be a JSON object"
    field = match.group(1)
    if "out of range" in message:
        return f"{field}: number out of range (must be a finite number)"
    if field in NUMBER_FIELDS:
        return f"{field}: expected a number"
    if field in DATETIME_FIELDS:
        return f"{field}: expected an RFC 3339 date-time with a time zone offset"
    if field in JSON_FIELDS:
        return f"{field}: expected a JSON object or array"
    if field in TEXT_FIELDS:
        return f"{field}: expected a string"
    return f"{field}: invalid value"
