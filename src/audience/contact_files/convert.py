"""Turn one CSV row or JSON Lines line into a ContactInput object, or name what is wrong."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from audience.contact_files.mapping import ALL_FIELDS, EMAIL, RESERVED, Mapping
from audience.db.models import DATETIME_FIELDS, JSON_FIELDS, NUMBER_FIELDS

EMAIL_REQUIRED = "email is required"
#: At most this many characters of a bad cell are quoted back in its error.
SHOWN_CHARS = 40
#: Unknown JSON Lines keys remembered for the report (a file could have a new key each line).
MAX_UNKNOWN_KEYS = 50
#: Keys of a JSON Lines line passed on besides the fields: ContactInput's own list_status
#: (an opt-out in the file must reach the import, not be dropped as an unknown key).
CONTACT_OPTIONS: tuple[str, ...] = ("list_status",)

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
#: A number with a decimal comma, maybe with dots or spaces between thousands: 1.234,5
_DECIMAL_COMMA = re.compile(r"[+-]?\d{1,3}(?:[. ]\d{3})*(?:,\d+)?|[+-]?\d+,\d+")
_DATE_TIME = re.compile(
    r"(?P<y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})"
    r"(?:[T ](?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
    r"\s*(?P<tz>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)


class RowError(ValueError):
    """A row that will not be sent: every problem found, and its email when it has one."""

    def __init__(self, reasons: Sequence[str], email: str = "") -> None:
        super().__init__("; ".join(reasons))
        self.reason = "; ".join(reasons)
        self.email = email


class CellError(ValueError):
    """A cell that cannot become its field's value; the message names the field."""


def shown(value: str) -> str:
    """A cell quoted for an error message, shortened when long."""
    if len(value) > SHOWN_CHARS:
        value = value[: SHOWN_CHARS - 1] + "…"
    return repr(value)


# --- cells --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversion:
    """How cells become values: what an empty cell means, the file's time zone (for
    date-times written without an offset), and whether numbers use a decimal comma."""

    empty_clears: bool = False
    timezone: tzinfo | None = None
    decimal_comma: bool = False


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone of that name; ValueError naming it otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (expected an IANA name such as Europe/Berlin)"
        ) from None


def to_number(name: str, text: str, conversion: Conversion = Conversion()) -> int | float:
    """`42` → 42, `-1.5e3` → -1500.0; anything else (`1,5`, `nan`, `abc`) is an error, but
    with a decimal comma `1.234,5` → 1234.5 and `1,5` → 1.5."""
    if conversion.decimal_comma and _DECIMAL_COMMA.fullmatch(text):
        text = text.replace(".", "").replace(" ", "").replace(",", ".")
    if not _NUMBER.fullmatch(text):
        raise CellError(f"{name}: expected a number, got {shown(text)}")
    if _INTEGER.fullmatch(text) and abs(int(text)) < 2**53:
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise CellError(f"{name}: number out of range, got {shown(text)}")
    return value


def to_datetime(name: str, text: str, conversion: Conversion = Conversion()) -> str:
    """A date or date-time in a common ISO 8601 form, as RFC 3339. A date-time written
    without an offset is in the file's time zone, which must then be given (else: an error);
    a date alone is its midnight (in the file's time zone, UTC when none is given)."""
    try:
        value = _parse_datetime(text)
    except ValueError:
        raise CellError(
            f"{name}: expected a date or date-time such as 2024-05-01 or "
            f"2024-05-01T09:30:00Z, got {shown(text)}"
        ) from None
    if value.tzinfo is None and ":" not in text:  # a date alone
        value = value.replace(tzinfo=conversion.timezone or UTC)
    if value.tzinfo is None:
        if conversion.timezone is None:
            raise CellError(
                f"{name}: {shown(text)} has no time zone offset; give the file's time zone "
                "(--timezone, or the option timezone) or write it with one, e.g. +02:00"
            )
        value = value.replace(tzinfo=conversion.timezone)
    return isoformat_with_offset(value)


def to_json(
    name: str, text: str, conversion: Conversion = Conversion()
) -> dict[str, Any] | list[Any]:
    """A JSON object or array; a scalar or malformed JSON is an error."""
    try:
        value = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise CellError(f"{name}: invalid JSON ({_json_reason(exc)})") from None
    if not isinstance(value, dict | list):
        raise CellError(f"{name}: expected a JSON object or array, got {shown(text)}")
    return value


def to_text(name: str, text: str, conversion: Conversion = Conversion()) -> str:
    """Text is sent as it is (already trimmed; the server checks lengths and time zones)."""
    return text


def isoformat_with_offset(value: datetime) -> str:
    """RFC 3339 text keeping the value's own offset: `2024-05-01T09:30:00+02:00`, or `Z`."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _parse_datetime(text: str) -> datetime:
    """The date-time; naive when the text gives no offset."""
    match = _DATE_TIME.fullmatch(text)
    return datetime.fromisoformat(text) if match is None else _from_match(match)


def _from_match(match: re.Match[str]) -> datetime:
    parts = match.groupdict()
    fraction = (parts["f"] or "").ljust(6, "0")[:6]
    return datetime(
        int(parts["y"]),
        int(parts["m"]),
        int(parts["d"]),
        int(parts["H"] or 0),
        int(parts["M"] or 0),
        int(parts["S"] or 0),
        int(fraction),
        tzinfo=_zone(parts["tz"]),
    )


def _zone(text: str | None) -> timezone | None:
    if text is None:
        return None
    if text.upper() in ("Z", "UTC", "GMT"):
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError("offset out of range")
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _json_reason(exc: Exception) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


_Converter = Callable[[str, str, Conversion], Any]

#: The converter of every field a column can feed.
CONVERTERS: dict[str, _Converter] = {
    name: (
        to_number
        if name in NUMBER_FIELDS
        else to_datetime
        if name in DATETIME_FIELDS
        else to_json
        if name in JSON_FIELDS
        else to_text
    )
    for name in ALL_FIELDS
}


# --- rows ---------------------------------------------------------------------------------------


def convert_row(
    cells: Sequence[str], mapping: Mapping, conversion: Conversion = Conversion()
) -> dict[str, Any]:
    """The contact of one CSV row; raises RowError naming every bad cell."""
    contact: dict[str, Any] = {}
    reasons: list[str] = _ragged(cells, mapping)
    for position, name in mapping.columns:
        text = cells[position].strip() if position < len(cells) else ""
        if not text:
            if conversion.empty_clears and name != EMAIL:
                contact[name] = None
            continue
        try:
            contact[name] = CONVERTERS[name](name, text, conversion)
        except CellError as exc:
            reasons.append(str(exc))
    email = contact.get(EMAIL, "")
    if not email:
        reasons.insert(0, EMAIL_REQUIRED)
    if reasons:
        raise RowError(reasons, email)
    return contact


def _ragged(cells: Sequence[str], mapping: Mapping) -> list[str]:
    """A row with more non-empty values than the header has columns is misaligned."""
    extra = cells[len(mapping.header) :]
    if any(cell.strip() for cell in extra):
        return [f"row has {len(cells)} values but the header has {len(mapping.header)} columns"]
    return []


def convert_line(
    text: str, renames: dict[str, str | None], unknown: set[str] | None = None
) -> dict[str, Any]:
    """The contact of one JSON Lines line, passed on as given (the server checks the types)."""
    try:
        data = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise RowError([f"invalid JSON: {_json_reason(exc)}"]) from None
    if not isinstance(data, dict):
        raise RowError(["line is not a JSON object"])
    contact = _known_keys(data, renames, unknown)
    email = contact.get(EMAIL)
    if email is None or (isinstance(email, str) and not email.strip()):
        raise RowError([EMAIL_REQUIRED])
    return contact


def _known_keys(
    data: dict[str, Any], renames: dict[str, str | None], unknown: set[str] | None
) -> dict[str, Any]:
    contact: dict[str, Any] = {}
    for key, value in data.items():
        name = renames.get(key, key)
        if name in ALL_FIELDS or name in CONTACT_OPTIONS:
            contact[name] = value
        elif (
            name is not None
            and name not in RESERVED
            and unknown is not None
            and len(unknown) < MAX_UNKNOWN_KEYS
        ):
            unknown.add(name)
    return contact


def email_of_line(text: str) -> str:
    """The email a JSON Lines line gives, for the errors file, or ''."""
    try:
        data = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return ""
    email = data.get(EMAIL) if isinstance(data, dict) else None
    return email.strip() if isinstance(email, str) else ""
