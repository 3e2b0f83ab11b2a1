"""The string rules the document states admit only what the server accepts.

Each pattern in /openapi.json (audience/schemas.py, contacts/schemas.py) claims that a value
it matches is one the server takes. These tests hold the claims to the server's own rules
(contacts/validation, the lists models), and check that Python's `re` and the JSON Schema
validator (ECMA-262 regular expressions) read each pattern the same way.
"""

from __future__ import annotations

import math
import re
import string
import sys
import zoneinfo
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema_rs
import pytest
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from audience.contacts import validation
from audience.contacts.schemas import DATETIME_PATTERN, FLOAT_MAX, time_zone_pattern
from audience.contacts.validation import normalize_email, validate_batch
from audience.lists.schemas import CreateListRequest
from audience.schemas import EMAIL_SCHEMA, NO_NUL, NOT_BLANK
from tests.web.support import document

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _both(pattern: str) -> tuple[re.Pattern[str], jsonschema_rs.Validator]:
    schema = {"type": "string", "pattern": pattern}
    return re.compile(pattern), jsonschema_rs.validator_for(schema)


# --- email ---------------------------------------------------------------------------------------

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
_local = st.lists(st.text(ATEXT, min_size=1, max_size=40), min_size=1, max_size=3).map(".".join)
_label = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=70)
_tld = st.sampled_from([*sorted(SPECIAL_USE_DOMAIN_NAMES), "com", "COM", "Test", "io"]) | st.text(
    string.ascii_letters + string.digits, min_size=1, max_size=26
)
#: Addresses near the edges of the pattern: long parts, hyphens, digits, special-use TLDs.
CANDIDATES = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    _local,
    st.lists(_label, min_size=1, max_size=4),
    _tld,
)
EMAIL = re.compile(EMAIL_SCHEMA["pattern"])
EMAIL_VALIDATOR = jsonschema_rs.validator_for(
    {k: v for k, v in EMAIL_SCHEMA.items() if k != "format"}
)


@EXAMPLES
@given(CANDIDATES)
def test_every_address_the_email_pattern_admits_is_accepted(candidate: str) -> None:
    documented = EMAIL_VALIDATOR.is_valid(candidate)
    assert documented == (EMAIL.match(candidate) is not None and len(candidate) <= 254)
    if documented:
        assert normalize_email(candidate)  # raises ContactError when refused


@pytest.mark.parametrize(
    "address",
    ["john.doe+tag@example.com", "A@B.CO", "x_y@sub-domain.example.org", "o'neil@mail.io"],
)
def test_common_addresses_match_the_email_pattern(address: str) -> None:
    assert EMAIL_VALIDATOR.is_valid(address)


@pytest.mark.parametrize(
    "address",
    ["a@b.test", "a@b.LOCAL", "a..b@example.com", "a@ab--c.com", "a@b", "a@" + "b" * 64 + ".io"],
)
def test_addresses_the_server_refuses_do_not_match(address: str) -> None:
    assert not EMAIL_VALIDATOR.is_valid(address)
    with pytest.raises(validation.ContactError):
        normalize_email(address)


# --- time zones, date-times, numbers, JSON -------------------------------------------------------


def test_the_time_zone_pattern_is_exactly_the_zones_the_server_knows() -> None:
    python, validator = _both(time_zone_pattern())
    zones = sorted(zoneinfo.available_timezones())
    assert all(python.match(zone) and validator.is_valid(zone) for zone in zones)
    checked = validate_batch(
        [f'{{"email": "a@b.io", "timezone": "{zone}"}}'.encode() for zone in zones]
    )
    assert checked.errors == {}
    for other in ("Mars/Olympus", "utc", "Europe/Paris ", "Etc/GMT+", ""):
        assert not python.match(other) and not validator.is_valid(other), other


_offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@EXAMPLES
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    _offsets,
    st.sampled_from(["T", "t"]),
)
def test_every_date_time_the_pattern_admits_is_accepted(
    moment: datetime, offset: timezone, separator: str
) -> None:
    text = moment.replace(tzinfo=offset).isoformat(sep=separator)
    python, validator = _both(DATETIME_PATTERN)
    assert (python.match(text) is not None) == validator.is_valid(text)
    if validator.is_valid(text):
        checked = validate_batch([f'{{"email": "a@b.io", "custom_datetime_1": "{text}"}}'.encode()])
        assert checked.errors == {}, text


def test_the_date_time_pattern_excludes_what_the_server_refuses() -> None:
    python, _ = _both(DATETIME_PATTERN)
    for refused in (
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:00:00-02:00",
        "2020-01-01T23:59:60Z",
    ):
        checked = validate_batch(
            [f'{{"email": "a@b.io", "custom_datetime_1": "{refused}"}}'.encode()]
        )
        assert checked.errors, refused
        assert python.match(refused) is None, refused
    assert datetime.fromisoformat("0001-01-02T00:00:00+23:59").astimezone(UTC)


def test_the_number_bounds_are_the_largest_finite_floats() -> None:
    assert sys.float_info.max == FLOAT_MAX
    schema = document()["components"]["schemas"]["ContactInput"]["properties"]["custom_number_1"]
    (number,) = [option for option in schema["anyOf"] if option.get("type") == "number"]
    assert (number["minimum"], number["maximum"]) == (-FLOAT_MAX, FLOAT_MAX)


def test_numbers_beyond_a_double_are_refused_and_not_documented() -> None:
    """1e400 reads as infinity: the server refuses it in a number field and inside JSON,
    and the document's bounds exclude it in both places."""
    root = {"$ref": "#/components/schemas/ContactInput", "components": document()["components"]}
    validator = jsonschema_rs.validator_for(root)
    for field, raw, refused, largest in (
        ("custom_number_1", "1e400", math.inf, FLOAT_MAX),
        ("custom_json_1", '{"n": [-1e400]}', {"n": [-math.inf]}, {"n": [-FLOAT_MAX]}),
    ):
        checked = validate_batch([f'{{"email": "a@b.io", "{field}": {raw}}}'.encode()])
        assert checked.errors, field
        assert not validator.is_valid({"email": "a@b.io", field: refused}), field
        assert validator.is_valid({"email": "a@b.io", field: largest}), field


def test_the_json_fields_state_the_servers_limits() -> None:
    schema = document()["components"]["schemas"]["ContactInput"]["properties"]["custom_json_1"]
    assert f"{validation.JSON_MAX_DEPTH} levels" in schema["description"]
    assert f"{validation.JSON_MAX_BYTES} bytes" in schema["description"]


# --- text -----------------------------------------------------------------------------------------

#: Text a JSON body can carry (no lone surrogate: msgspec refuses them), without NUL.
_nul_free = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20
)
_spaces = st.text(
    " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u3000\ufeff", max_size=5
)


@EXAMPLES
@given(st.builds(lambda a, b, c: a + b + c, _spaces, _nul_free | _spaces, _spaces))
def test_every_list_name_the_pattern_admits_is_accepted(name: str) -> None:
    """By either engine's reading: Python's `\\s` also takes U+001C-U+001F, which ECMA-262's
    does not, and which the server keeps (they are not Unicode White_Space)."""
    python, validator = _both(NOT_BLANK)
    if (python.search(name) or validator.is_valid(name)) and len(name) <= 255:
        request: dict[str, Any] = {"workspace_id": "w", "id": "news", "name": name}
        assert CreateListRequest.model_validate(request).name


@pytest.mark.parametrize("blank", ["", " ", "\t\n", "\u3000\x85", "a\x00"])
def test_list_names_the_server_refuses_do_not_match(blank: str) -> None:
    python, validator = _both(NOT_BLANK)
    assert python.search(blank) is None and not validator.is_valid(blank)
    if "\x00" not in blank:  # NUL is refused before the model (web/bodies.JsonBody)
        with pytest.raises(ValidationError):
            CreateListRequest.model_validate({"workspace_id": "w", "id": "news", "name": blank})


def test_no_nul_is_read_alike_by_both_engines() -> None:
    python, validator = _both(NO_NUL)
    for text, allowed in (("", True), ("abc", True), ("a\x00", False), ("\x00", False)):
        assert (python.match(text) is not None) is allowed is validator.is_valid(text)
