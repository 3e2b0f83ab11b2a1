"""The plain-email fast path must accept only what email-validator accepts, unchanged."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.contacts.validation import ContactError, is_plain_email, normalize_email, plain_emails

LOCAL = st.from_regex(r"[a-z0-9_+.-]{1,70}", fullmatch=True)
LABEL = st.from_regex(r"[a-z0-9-]{1,65}", fullmatch=True)
TLD = st.sampled_from(["com", "org", "io", "test", "local", "localhost", "onion", "arpa", "x"])
EMAILS = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join([*labels, tld])}",
    LOCAL,
    st.lists(LABEL, min_size=1, max_size=3),
    TLD,
)


def _validator(email: str) -> str | None:
    """What email-validator makes of an address (lower-cased as the import does), or None."""
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def _ours(email: str) -> str | None:
    try:
        return normalize_email(email)
    except ContactError:
        return None


@settings(max_examples=1000, deadline=None)
@given(EMAILS)
def test_fast_path_agrees_with_email_validator(email: str) -> None:
    """A plain address is one email-validator accepts unchanged; any other address gets
    exactly email-validator's verdict."""
    expected = _validator(email)
    if is_plain_email(email):
        assert expected == email
    assert _ours(email) == expected


@pytest.mark.parametrize(
    "email",
    [
        "a@localhost",
        "a@b",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a@-example.com",
        "a@example-.com",
        "a@xn--zz.com",
        "user@mail.test",
        "user@host.local",
        "a@" + ("b" * 64) + ".com",
    ],
)
def test_fast_path_refusals_match_email_validator(email: str) -> None:
    assert not is_plain_email(email)
    with pytest.raises(ContactError):
        normalize_email(email)
    with pytest.raises(EmailNotValidError):
        validate_email(email, check_deliverability=False)


def test_unicode_addresses_still_validated() -> None:
    assert normalize_email("  Ünï@Exämple.com\u00a0") == "ünï@exämple.com"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(EMAILS, EMAILS.map(lambda e: f"  {e.upper()} ")), min_size=1))
def test_a_batch_is_plain_exactly_when_each_of_its_addresses_is(emails: list[str]) -> None:
    """plain_emails (one pass over a batch) takes the fast path only when is_plain_email
    says every address is plain, and then normalises each as normalize_email does."""
    batch = plain_emails(emails)
    if all(is_plain_email(e.strip().lower()) for e in emails):
        assert batch == [normalize_email(e) for e in emails]
    else:
        assert batch is None


@pytest.mark.parametrize(
    "values",
    [
        ["a@example.com", "b@example.com\nc@example.com"],  # a newline within one value
        ["a@example.com", ""],
        ["a@example.com", 7],
        ["a@example.com", None],
        ["a@example.com", "ünï@exämple.com"],
        ["a@example.com", "x@b.test"],
        ["a@example.com", "x@xn--zz.com"],
        ["a@example.com", ("l" * 65) + "@example.com"],
        ["a@example.com", "x@" + ".".join(["b" * 60] * 5) + ".com"],  # longer than 254
    ],
)
def test_a_batch_with_one_address_not_plain_takes_the_slow_path(values: list[object]) -> None:
    assert plain_emails(values) is None


def test_a_batch_of_plain_addresses_is_normalised_in_one_pass() -> None:
    values = [" Jane.Doe@Example.COM ", "bob+news@mail.example.org", "\tamy_1@x-y.io"]
    assert plain_emails(values) == [normalize_email(v) for v in values]
    assert plain_emails(values) == [
        "jane.doe@example.com",
        "bob+news@mail.example.org",
        "amy_1@x-y.io",
    ]
