"""Per-contact rules of the import (docs/import.md): email normalisation, field types, duplicates.

A contact is decoded from its own JSON bytes, so one bad contact never fails its batch, and
every failure names the field and the reason. The result is a ContactBatch: columns ready
for the repository's set-based SQL, with no per-contact dictionaries in between.
"""

from __future__ import annotations

import hashlib
import math
import re
import zoneinfo
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from itertools import accumulate, compress, islice, repeat
from operator import add, gt, is_not, ne, not_
from typing import Any

import msgspec
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from msgspec import UNSET
from msgspec.structs import astuple

from audience.contacts.schemas import LIST_STATUSES, MERGE_POLICIES, ContactStruct, ListStatus
from audience.db.models import (
    DATETIME_FIELDS,
    EMAIL_MAX_LENGTH,
    FIELDS,
    JSON_FIELDS,
    NUMBER_FIELDS,
    TEXT_FIELDS,
    TEXT_MAX_LENGTH,
)

#: Deepest nesting accepted inside a custom_json_* value.
JSON_MAX_DEPTH = 32
#: Largest custom_json_* value accepted, in bytes of compact JSON.
JSON_MAX_BYTES = 64 * 1024

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
class ContactBatch:
    """Valid contacts with distinct emails, sorted by email: what one statement writes.

    `emails` are distinct and in code point order, the order every import takes row locks
    in. `columns[k][i]` is what FIELDS[k] becomes for emails[i] when given (None when
    absent or null); bit k of `nulls[i]` is set when that field was sent as null.
    `positions[i]` is the input index of that contact, `list_statuses[i]` its own
    `list_status` (None: the request's). Text is trimmed, JSON values are their JSON text as
    sent, in UTF-8 bytes (bytes or msgspec.Raw: no string is made of them; bulk.py hands
    them to each database as it takes them), date-times are aware UTC datetimes.
    """

    emails: list[str]
    columns: list[list[Any]]
    nulls: list[int]
    positions: list[int]
    list_statuses: list[str | None]
    #: input_digest of each contact, stored with its row when written (None: not an import's).
    digests: Sequence[str | None]

    def __len__(self) -> int:
        return len(self.emails)


@dataclass(slots=True)
class Validation:
    """The valid contacts, in rounds, and what became of each input contact.

    Round r holds the r-th contact of each email (rule 8: duplicates are applied in order,
    as if sent one after another); without duplicates there is one round.
    """

    rounds: list[ContactBatch]
    #: Per input contact: its normalised email, or what its error reports as its email.
    emails: list[str]
    #: Input position -> why that contact is skipped.
    errors: dict[int, str]


_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(ContactStruct)
#: Stands for a contact whose fields failed to decode: every field absent.
_BLANK = ContactStruct(email="")
_Column = Sequence[Any]


def validate_batch(raws: Sequence[bytes | msgspec.Raw]) -> Validation:
    """Validate an import's contacts (docs/import.md): decode_contacts, then check_rows of
    all of them at once. The import itself checks them a part at a time (contacts/service.py),
    to write one part while the next is checked."""
    decoded = decode_contacts(raws)
    rounds, errors = check_rows(decoded, 0, len(decoded.emails))
    return Validation(rounds, decoded.reported, {**decoded.errors, **errors})


@dataclass(slots=True)
class Decoded:
    """An import's contacts read as far as their emails, normalised, sorted by email.

    `reported[i]` and `errors[i]` are what input contact i reports as its email and, if it
    failed already, why; `raws`, `emails` and `positions` (input indexes) are those with a
    valid email, in email order (a stable sort: the duplicates of an email stay in input
    order). Their other fields are decoded by check_rows, a part at a time.
    """

    reported: list[str]
    errors: dict[int, str]
    raws: list[bytes | msgspec.Raw]
    emails: list[str]
    positions: list[int]
    #: The merge policy, on which the input digests depend (set by the import; None: the
    #: contacts get no digest).
    merge: str | None = None
    #: The input_digest of each contact once computed (computed when first asked for: the
    #: import asks for a sample's first, and for each part's on the thread that checks it).
    computed: list[str | None] = field(default_factory=list)

    def digest(self, row: int) -> str:
        """The input_digest of the contact at this index of `raws`."""
        assert self.merge is not None
        if not self.computed:
            self.computed = [None] * len(self.raws)
        known = self.computed[row]
        if known is None:
            known = self.computed[row] = input_digest(self.merge, self.raws[row])
        return known

    def digests(self, start: int, stop: int) -> list[str] | None:
        """The input digests of rows [start, stop) (None: no digests)."""
        if self.merge is None:
            return None
        return [self.digest(row) for row in range(start, stop)]

    def without(self, rows: Collection[int]) -> Decoded:
        """The same minus the valid contacts at these indexes of `raws`."""
        if not rows:
            return self
        keep = [i for i in range(len(self.emails)) if i not in rows]
        return Decoded(
            self.reported,
            self.errors,
            [self.raws[i] for i in keep],
            [self.emails[i] for i in keep],
            [self.positions[i] for i in keep],
            self.merge,
            [self.computed[i] for i in keep] if self.computed else [],
        )

    def parts(self, first: int, size: int) -> list[tuple[int, int]]:
        """[start, stop) ranges, the first of about `first` rows and the others of about
        `size`, that never split an email's duplicates."""
        bounds: list[tuple[int, int]] = []
        start, total = 0, len(self.emails)
        while start < total:
            stop = min(start + (size if bounds else first), total)
            while stop < total and self.emails[stop] == self.emails[stop - 1]:
                stop += 1
            bounds.append((start, stop))
            start = stop
        return bounds


class _OwnListStatus(msgspec.Struct):
    list_status: ListStatus | None = None


_OWN_LIST_STATUS = msgspec.json.Decoder(_OwnListStatus)


def own_list_status(raw: bytes | msgspec.Raw) -> str | None:
    """A contact's own list_status (None: it has none), read alone from its bytes; raises
    ContactError where it is not a valid one (check_rows says why)."""
    try:
        return _OWN_LIST_STATUS.decode(raw).list_status
    except msgspec.DecodeError as exc:
        raise ContactError("list_status") from exc


#: Part of every input digest: raise it when a rule changes what a contact's bytes become.
RULES_VERSION = b"1"
_DIGESTS = {m: hashlib.blake2b(RULES_VERSION + m.encode(), digest_size=16) for m in MERGE_POLICIES}


def input_digest(merge: str, raw: bytes | msgspec.Raw) -> str:
    """What identifies a contact's input: its JSON bytes as sent and the merge policy. An
    import stores it with each row it writes (contacts.import_digest); applying the same
    input again to the row it wrote changes nothing (both policies are idempotent), so a
    re-sync of unchanged contacts skips them (contacts/service.py)."""
    digest = _DIGESTS[merge].copy()
    digest.update(raw)
    return digest.hexdigest()


def decode_contacts(raws: Sequence[bytes | msgspec.Raw]) -> Decoded:
    """Each contact's email read from its own JSON bytes (one bad contact never fails its
    batch) and normalised (rule 5), then the contacts sorted by email. Their other fields
    are decoded by check_rows, a part at a time: in step with the writes, and only a part's
    decoded contacts held at once. A contact that fails here is decoded whole at once, so
    that a field of the wrong type is reported before a bad email, as always."""
    try:
        given = [_EMAIL_DECODER.decode(raw).email for raw in raws]
    except (msgspec.DecodeError, RecursionError):
        given = None
    plain = None if given is None else plain_emails(given)
    if plain is not None:  # the common case: every email plain, normalised in one pass
        order = sorted(range(len(plain)), key=plain.__getitem__)
        return Decoded(plain, {}, [raws[i] for i in order], [plain[i] for i in order], order)
    reported: list[str] = []
    errors: dict[int, str] = {}
    kept: list[bytes | msgspec.Raw] = []
    emails: list[str] = []
    positions: list[int] = []  # input index of each contact with a valid email
    for index, raw in enumerate(raws):
        try:
            email = normalize_email(_EMAIL_DECODER.decode(raw).email)
        except (msgspec.DecodeError, RecursionError, ContactError):
            reported.append(_refused(raw, index, errors))
            continue
        reported.append(email)
        kept.append(raw)
        emails.append(email)
        positions.append(index)
    # A stable sort: the duplicates of an email stay in their input order.
    order = sorted(range(len(emails)), key=emails.__getitem__)
    return Decoded(
        reported,
        errors,
        [kept[i] for i in order],
        [emails[i] for i in order],
        [positions[i] for i in order],
    )


def _refused(raw: bytes | msgspec.Raw, index: int, errors: dict[int, str]) -> str:
    """Why contact `index` is refused (into `errors`), and what it reports as its email: its
    first error, a field's type before its email."""
    try:
        struct = _DECODER.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        errors[index], reported = _undecodable(raw, exc)
        return reported
    try:
        normalize_email(struct.email)
    except ContactError as exc:
        errors[index] = exc.message
        return report_email(struct.email)
    raise AssertionError("a contact refused for its email has a valid one")


def _undecodable(raw: bytes | msgspec.Raw, exc: Exception) -> tuple[str, str]:
    """The error of a contact that does not decode, and what it reports as its email."""
    if isinstance(exc, msgspec.ValidationError):
        return _describe(str(exc)), _email_hint(raw)
    return "contact: invalid JSON", ""


def check_rows(
    decoded: Decoded, start: int, stop: int
) -> tuple[list[ContactBatch], dict[int, str]]:
    """The field rules over rows [start, stop) of the decoded contacts, column by column: a
    column that passes as a whole (the common case) costs a few C-level passes, and only a
    column that fails is walked value by value to name the contacts at fault. The valid
    rows in rounds, and input index -> error for the others."""
    whole = start == 0 and stop == len(decoded.emails)
    emails = decoded.emails if whole else decoded.emails[start:stop]
    positions = decoded.positions if whole else decoded.positions[start:stop]
    digests = decoded.digests(start, stop)
    failed: dict[int, str] = {}  # row -> its first error, in field order
    structs = _structs(decoded, start, stop, failed)
    # Transposed in C: every struct as a tuple (email, the fields, list_status), then zipped.
    transposed: list[_Column] = list(zip(*map(astuple, structs), strict=True))
    columns = transposed[1:-1] or [() for _ in FIELDS]
    for k, (name, check) in enumerate(_COLUMN_CHECKS):
        columns[k] = check(name, columns[k], failed)
    errors = {positions[row]: message for row, message in failed.items()}
    statuses = [None if s.list_status is UNSET else s.list_status for s in structs]
    rows = _rounds(emails, failed)
    if len(rows) == 1 and len(rows[0]) == len(emails):  # no duplicate, no failure
        return [_batch(emails, positions, columns, statuses, digests)], errors
    rounds = [
        _batch(
            [emails[r] for r in kept],
            [positions[r] for r in kept],
            [[column[r] for r in kept] for column in columns],
            [statuses[r] for r in kept],
            None if digests is None else [digests[r] for r in kept],
        )
        for kept in rows
    ]
    return rounds, errors


def _structs(decoded: Decoded, start: int, stop: int, failed: dict[int, str]) -> list[Any]:
    """Rows [start, stop) decoded whole; a row whose field has the wrong type fails (into
    `failed`, its operation's email then the input's as typed) and stands as a blank."""
    raws = decoded.raws[start:stop]
    try:
        return list(map(_DECODER.decode, raws))
    except (msgspec.DecodeError, RecursionError):
        pass
    structs: list[Any] = []
    for row, raw in enumerate(raws):
        try:
            structs.append(_DECODER.decode(raw))
        except (msgspec.DecodeError, RecursionError) as exc:
            failed[row], decoded.reported[decoded.positions[start + row]] = _undecodable(raw, exc)
            structs.append(_BLANK)
    return structs


def _rounds(emails: Sequence[str], failed: Mapping[int, str]) -> list[list[int]]:
    """The rows of each round: the r-th valid row of each email goes to round r."""
    rounds: list[list[int]] = [[]]
    occurrence = 0
    for row, email in enumerate(emails):
        occurrence = occurrence + 1 if row and emails[row - 1] == email else 0
        if row in failed:
            occurrence -= 1
            continue
        while len(rounds) <= occurrence:
            rounds.append([])
        rounds[occurrence].append(row)
    return [kept for kept in rounds if kept]


def _batch(
    emails: list[str],
    positions: list[int],
    columns: Sequence[_Column],
    statuses: list[str | None],
    digests: list[str] | None = None,
) -> ContactBatch:
    """Null masks from the explicit nulls, then every column in its final form."""
    nulls = [0] * len(emails)
    final: list[list[Any]] = []
    for k, column in enumerate(columns):
        if None in column:
            bit = 1 << k
            i = column.index(None)
            while True:
                nulls[i] |= bit
                try:
                    i = column.index(None, i + 1)
                except ValueError:
                    break
        final.append(_final(column, k < len(TEXT_FIELDS)))
    return ContactBatch(
        emails,
        final,
        nulls,
        positions,
        statuses,
        [None] * len(emails) if digests is None else digests,
    )


def _final(column: _Column, text: bool) -> list[Any]:
    """A column with None where absent, text trimmed."""
    if column.count(UNSET) == len(column):  # given by no contact (one pass in C)
        return [None] * len(column)
    if text:
        return [v.strip() if v.__class__ is str else None for v in column]
    return [None if v is UNSET else v for v in column]


def normalize_email(value: Any) -> str:
    """Trimmed of Unicode whitespace, lower-cased, syntax-checked (rule 5)."""
    if value is UNSET or value is None:
        raise ContactError(EMAIL_REQUIRED)
    if not isinstance(value, str):
        raise ContactError(INVALID_EMAIL)
    email = value.strip().lower()
    if not email:
        raise ContactError(EMAIL_REQUIRED)
    return email if is_plain_email(email) else _checked_email(email)


#: Plain ASCII addresses that email-validator is known to accept unchanged (a test checks
#: that claim); anything else goes through email-validator itself, ~30 µs an address.
_PLAIN_EMAIL = re.compile(
    r"([a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*)@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,24})"
)
_SPECIAL_USE_TLDS = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def is_plain_email(email: str) -> bool:
    """True for a common address whose syntax needs no full RFC check."""
    match = _PLAIN_EMAIL.fullmatch(email)
    return (
        match is not None
        and match.end(1) <= 64  # the local part
        and len(email) <= EMAIL_MAX_LENGTH
        and match.group(2) not in _SPECIAL_USE_TLDS
        and email.find("--", match.end(1)) < 0  # IDNA labels (xn--) need the full check
    )


@lru_cache(maxsize=4_096)
def _checked_email(email: str) -> str:
    """What email-validator makes of an address that is not plain (or refuses)."""
    if len(email) > EMAIL_MAX_LENGTH or "\x00" in email:
        raise ContactError(INVALID_EMAIL, email)
    try:
        result = validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        raise ContactError(INVALID_EMAIL, email) from None
    return result.normalized.lower()


#: is_plain_email's test of one address (lower-cased, then a newline) as one pattern, but for
#: the limit on its length and the "--" rule (plain_emails checks those on all at once).
_ONE_PLAIN = (
    r"(?=[^@\n]{1,64}@)[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@"
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    rf"(?!(?:{'|'.join(map(re.escape, SPECIAL_USE_DOMAIN_NAMES))})\n)[a-z]{{2,24}}\n"
)
#: Each address atomic: a pass over all of them never backtracks into an earlier one.
_PLAIN_EMAILS = re.compile(rf"(?>{_ONE_PLAIN})*")


def plain_emails(values: list[Any]) -> list[str] | None:
    """Every value normalised (rule 5) when all of them are plain addresses (is_plain_email),
    checked in one pass of the pattern over all of them; None when any is not, or may not
    be (each then goes through normalize_email)."""
    if not all(v.__class__ is str for v in values):
        return None
    lowered = [v.strip().lower() for v in values]
    joined = "\n".join(lowered) + "\n"
    if (
        joined.count("\n") != len(lowered)  # a newline within an address
        or max(map(len, lowered)) > EMAIL_MAX_LENGTH
        or "--" in joined  # perhaps in a domain (xn--: IDNA needs the full check)
        or not _PLAIN_EMAILS.fullmatch(joined)
    ):
        return None
    return lowered


def report_email(value: Any) -> str:
    """What an error operation echoes as its email: the trimmed, lower-cased input, if text."""
    return value.strip().lower() if isinstance(value, str) else ""


class _EmailOnly(msgspec.Struct, gc=False):
    email: Any = None


_EMAIL_DECODER: msgspec.json.Decoder[_EmailOnly] = msgspec.json.Decoder(_EmailOnly)


def _email_hint(raw: bytes | msgspec.Raw) -> str:
    """The email of a contact that failed decoding, reading nothing but that key."""
    try:
        return report_email(_EMAIL_DECODER.decode(raw).email)
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


_NULL = b"null"
_NULL_RAW = msgspec.Raw(_NULL)
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_EMPTY_PAIR = re.compile(rb"\{\}|\[\]")
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_NOT_AN_OPENER_OR_SEPARATOR = bytes(b for b in range(256) if b not in b"[{\x00")
#: A number that may not fit a double has an exponent (a digit then `e`), or 309 digits and
#: more (only in a value that long): with every digit made `0` (one C pass), both are plain
#: substring searches.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789E", b"000000000e")
_EXPONENT = b"0e"
_HUGE_DIGITS = b"0" * 309
#: Never in a JSON value's bytes (a raw NUL is invalid JSON): joins a column's values.
_SEPARATOR = b"\x00"


def _json(name: str, raw: msgspec.Raw | bytes) -> bytes | None:
    """The JSON text of a custom_json value (its UTF-8 bytes), checked on its bytes alone: no
    Python object is built from it (a 32 MiB body of JSON values costs no more than its
    bytes). The value is kept as sent (msgspec has checked its syntax); only one over the
    size limit is compacted to be measured again, as the limit is on the compact form."""
    text = bytes(raw)
    if text == _NULL:
        return None
    first = text[:1]
    if first != b"{" and first != b"[":
        raise ContactError(f"{name}: expected a JSON object or array")
    if len(text) > JSON_MAX_BYTES:
        text = msgspec.json.format(text, indent=-1)
        if len(text) > JSON_MAX_BYTES:
            raise ContactError(f"{name}: larger than {JSON_MAX_BYTES} bytes")
    # Counting brackets (strings included) bounds the depth from above, cheaply.
    may_be_deep = text.count(b"[") + text.count(b"{") > JSON_MAX_DEPTH
    if may_be_deep and _depth(text) > JSON_MAX_DEPTH:
        raise ContactError(f"{name}: nested deeper than {JSON_MAX_DEPTH} levels")
    _check_contents(name, text, len(text))
    return text


def _check_contents(name: str, text: bytes, longest: int) -> None:
    """No NUL character in a string, no number beyond double range (of one value, or of a
    column's values joined: the check is then one pass over all of them); `longest` is the
    length of the longest value."""
    if b"\\u0000" in text:
        raise ContactError(f"{name}: must not contain NUL characters")
    zeroed = text.translate(_DIGITS_AS_ZERO)
    long_enough = longest >= len(_HUGE_DIGITS)
    if _EXPONENT in zeroed or (long_enough and _HUGE_DIGITS in zeroed):
        for value in text.split(_SEPARATOR):
            # Every reader must get finite numbers back: msgspec refuses a float beyond
            # double range, and reads an integer of any size as a Python int.
            try:
                finite = _ints_fit(msgspec.json.decode(value))
            except msgspec.ValidationError:
                finite = False
            if not finite:
                raise ContactError(f"{name}: number out of range (must be a finite number)")


def _ints_fit(value: Any) -> bool:
    """Whether every integer in a decoded JSON value converts to a double (nesting is
    bounded: the depth was checked first)."""
    if value.__class__ is int:
        try:
            float(value)
        except OverflowError:
            return False
        return True
    if value.__class__ is dict:
        return all(map(_ints_fit, value.values()))
    if value.__class__ is list:
        return all(map(_ints_fit, value))
    return True


def _depth(text: bytes) -> int:
    """Nesting depth of compact JSON, stopping once past the limit: with the strings cut out
    and only the brackets kept, each pass removes the innermost (empty) pairs, all in C."""
    brackets = _JSON_STRING.sub(b"", text).translate(None, _NOT_A_BRACKET)
    depth = 0
    while brackets and depth <= JSON_MAX_DEPTH:
        brackets = _EMPTY_PAIR.sub(b"", brackets)
        depth += 1
    return depth


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


# --- column checks: the same rules over every contact of a batch at once ----------------------

_ColumnCheck = Callable[[str, _Column, dict[int, str]], _Column]


def _text_column(name: str, column: _Column, failed: dict[int, str]) -> _Column:
    # On the untrimmed values: trimming only shortens, and a suspect column is rechecked.
    given = list(filter(None, column))  # the non-empty strings
    suspect = bool(given) and (max(map(len, given)) > TEXT_MAX_LENGTH or "\x00" in "".join(given))
    if name == "timezone" and not suspect:
        suspect = not {v for v in column if v.__class__ is str} <= _time_zones()
    if suspect:
        _blame(name, column, failed, _text)
    return column


def _number_column(name: str, column: _Column, failed: dict[int, str]) -> _Column:
    if not all(map(math.isfinite, filter(None, column))):
        _blame(name, column, failed, _number)
    return column


def _datetime_column(name: str, column: _Column, failed: dict[int, str]) -> _Column:
    try:
        return [v.astimezone(UTC) if v.__class__ is datetime else v for v in column]
    except OverflowError:
        _blame(name, column, failed, _datetime)
        return [
            _datetime(name, v) if v.__class__ is datetime and i not in failed else v
            for i, v in enumerate(column)
        ]


def _json_column(name: str, column: _Column, failed: dict[int, str]) -> _Column:
    try:
        return _json_texts(name, column)
    except ContactError:
        _blame(name, column, failed, _json)
        return [
            _json(name, v) if v.__class__ is msgspec.Raw and i not in failed else v
            for i, v in enumerate(column)
        ]


def _json_texts(name: str, column: _Column) -> _Column:
    """The column's JSON texts as sent (their bytes, msgspec.Raw; None for a null, UNSET
    where absent), its values checked together in passes that run in C (the loops over the
    column are iterators of C functions): the shape and size of each, an upper bound of its
    depth (its openers, [ and {, strings included), then the NULs and numbers of all of them
    joined. Only a value with more openers than the depth limit is measured alone.
    Their UTF-8 is the body's, checked as it was read (web/bodies.py)."""
    given = list(map(is_not, column, repeat(UNSET)))
    raws = list(compress(column, given))
    lengths = list(map(len, raws))
    result = column
    if len(_NULL) in lengths:  # perhaps explicit nulls: None, and nothing to check
        values = list(map(ne, raws, repeat(_NULL_RAW)))
        if not all(values):
            rows = list(compress(range(len(column)), given))
            result = list(column)
            for j in compress(range(len(raws)), map(not_, values)):
                result[rows[j]] = None
            raws, lengths = list(compress(raws, values)), list(compress(lengths, values))
    if not raws:
        return result
    joined = _SEPARATOR.join(raws)  # a raw NUL is never inside a JSON value
    starts = islice(accumulate(map(add, lengths, repeat(1)), initial=0), len(raws))
    if bytes(map(joined.__getitem__, starts)).translate(None, b"{[") or (
        max(lengths) > JSON_MAX_BYTES
    ):
        raise ContactError(name)  # the values are checked one by one
    # A value nested deeper than the limit has more openers ([ and {) than the limit.
    openers = joined.translate(None, _NOT_AN_OPENER_OR_SEPARATOR).split(_SEPARATOR)
    counts = list(map(len, openers))
    if max(counts) > JSON_MAX_DEPTH:
        suspects = compress(raws, map(gt, counts, repeat(JSON_MAX_DEPTH)))
        if any(_depth(bytes(raw)) > JSON_MAX_DEPTH for raw in suspects):
            raise ContactError(name)
    _check_contents(name, joined, max(lengths))
    return result


_OPENERS = (b"{", b"[")


def _blame(name: str, column: _Column, failed: dict[int, str], check: Callable[..., Any]) -> None:
    """The slow path: name every row whose value breaks the rule (its first error wins)."""
    for row, value in enumerate(column):
        if value is not None and value is not UNSET:
            try:
                check(name, value)
            except ContactError as exc:
                failed.setdefault(row, exc.message)


#: The check of every field, in FIELDS order (that of ContactStruct after `email`).
_COLUMN_CHECKS: tuple[tuple[str, _ColumnCheck], ...] = (
    *((name, _text_column) for name in TEXT_FIELDS),
    *((name, _number_column) for name in NUMBER_FIELDS),
    *((name, _datetime_column) for name in DATETIME_FIELDS),
    *((name, _json_column) for name in JSON_FIELDS),
)
assert tuple(n for n, _ in _COLUMN_CHECKS) == FIELDS == ContactStruct.__struct_fields__[1:-1]


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
    if field in DATETIME_FIELDS and "timezone component" in message:
        return f"{field}: date-time must include a time zone offset (RFC 3339)"
    if field in DATETIME_FIELDS:
        return f"{field}: expected an RFC 3339 date-time with a time zone offset"
    if field in JSON_FIELDS:
        return f"{field}: expected a JSON object or array"
    if field in TEXT_FIELDS:
        return f"{field}: expected a string"
    if field == "list_status":
        return f"list_status: must be one of {', '.join(LIST_STATUSES)}"
    return f"{field}: invalid value"
