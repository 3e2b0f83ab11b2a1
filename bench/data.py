"""Deterministic, realistic contacts: the same seed gives the same data on every machine.

A contact gives about 40 % of the 33 optional fields (names and country often, custom fields
rarely), some carry `custom_json_*` objects, a few carry explicit nulls. The updates are the
same emails again with an independent draw of fields and values, so they touch a different
subset of columns (absent keeps, null clears: DESIGN §1 rule 7).

Every contact exists twice: as the JSON the client sends (`wire`, with the email as a user
might type it) and as what the database must end up holding (`email` normalised, `values`).
The floor writes `values` directly; the import gets `wire`.
"""

# ruff: noqa: SIM905  (word lists are easier to read and edit as strings)

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from audience.db.models import DATETIME_FIELDS, FIELDS, JSON_FIELDS, NUMBER_FIELDS

DEFAULT_SEED = 20_240_601
#: Fraction of the 33 optional fields a contact gives, on average.
GIVEN_SHARE = 0.40

# Relative likelihood of each field being given; scaled so that the mean is GIVEN_SHARE.
_WEIGHTS: dict[str, float] = {
    "external_id": 0.7,
    "timezone": 0.6,
    "language": 0.7,
    "first_name": 0.95,
    "last_name": 0.95,
    "full_name": 0.6,
    "phone": 0.6,
    "address_line_1": 0.4,
    "address_line_2": 0.12,
    "country": 0.8,
    "postcode": 0.4,
    "state": 0.35,
    "job_title": 0.45,
    "custom_string_1": 0.45,
    "custom_string_2": 0.35,
    "custom_string_3": 0.3,
    "custom_string_4": 0.25,
    "custom_string_5": 0.2,
    "custom_number_1": 0.55,
    "custom_number_2": 0.45,
    "custom_number_3": 0.35,
    "custom_number_4": 0.3,
    "custom_number_5": 0.25,
    "custom_datetime_1": 0.55,
    "custom_datetime_2": 0.45,
    "custom_datetime_3": 0.35,
    "custom_datetime_4": 0.25,
    "custom_datetime_5": 0.2,
    "custom_json_1": 0.2,
    "custom_json_2": 0.12,
    "custom_json_3": 0.08,
    "custom_json_4": 0.05,
    "custom_json_5": 0.05,
}
assert tuple(_WEIGHTS) == FIELDS
_SCALE = GIVEN_SHARE * len(FIELDS) / sum(_WEIGHTS.values())
PROBABILITY: dict[str, float] = {name: min(1.0, w * _SCALE) for name, w in _WEIGHTS.items()}

#: Share of contacts carrying explicit nulls, on create and on update.
CREATE_NULL_SHARE = 0.02
UPDATE_NULL_SHARE = 0.05

FIRST_NAMES = (
    "james mary robert patricia john jennifer michael linda david elizabeth william barbara "
    "richard susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy "
    "matthew betty anthony margaret mark sandra donald ashley steven kimberly paul emily andrew "
    "donna joshua michelle kenneth carol kevin amanda brian melissa george deborah timothy "
    "stephanie ronald rebecca jason sharon edward laura jeffrey cynthia ryan amy jacob kathleen "
    "gary angela nicholas shirley eric anna jonathan brenda stephen pamela larry emma justin "
    "nicole scott helen brandon samantha benjamin katherine samuel christine gregory debra "
    "alexander rachel frank carolyn patrick janet raymond maria jack olivia dennis heather "
    "jerry diane tyler julie aaron joyce jose victoria adam ruth henry virginia nathan lauren "
    "douglas kelly zachary christina peter joan kyle evelyn noah judith ethan andrea jeremy "
    "hannah walter megan christian cheryl keith jacqueline roger martha terry madison austin "
    "teresa sean gloria gerald sara carl janice harold ann dylan kathryn arthur abigail"
).split()
LAST_NAMES = (
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez "
    "gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white "
    "harris sanchez clark ramirez lewis robinson walker young allen king wright scott torres "
    "nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter roberts "
    "gomez phillips evans turner diaz parker cruz edwards collins reyes stewart morris morales "
    "murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos "
    "kim cox ward richardson watson brooks chavez wood james bennett gray mendoza ruiz hughes "
    "price alvarez castillo sanders patel myers long ross foster jimenez powell jenkins perry "
    "russell sullivan bell coleman butler henderson barnes gonzales fisher vasquez simmons"
).split()
DOMAINS = (
    "gmail.com yahoo.com outlook.com hotmail.com icloud.com proton.me gmx.de orange.fr "
    "acme.io example.org initech.com globex.net umbrella.co hooli.xyz mail.ru web.de"
).split()
TIMEZONES = (
    "Europe/Paris Europe/London Europe/Berlin America/New_York America/Chicago "
    "America/Los_Angeles America/Sao_Paulo Asia/Tokyo Asia/Kolkata Australia/Sydney UTC "
    "Africa/Lagos Asia/Singapore America/Toronto Europe/Madrid"
).split()
LANGUAGES = "en fr de es pt it ja nl pl sv".split()
COUNTRIES = "US FR DE GB ES PT IT JP NL PL SE CA BR AU IN".split()
STATES = "CA NY TX WA IL Bavaria Ile-de-France Ontario Queensland".split()
JOBS = (
    "Engineer|Product Manager|Designer|Sales Director|CEO|Accountant|Teacher|Nurse|Consultant|"
    "Marketing Lead|Data Scientist|Support Agent|Founder|Student|Lawyer"
).split("|")
STREETS = "Main St|High Street|Rue de la Paix|Hauptstrasse|Oak Avenue|Elm Road|Calle Mayor".split(
    "|"
)
WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()
PLANS = ("free", "starter", "pro", "business", "enterprise")
OFFSETS = tuple(timezone(timedelta(hours=h)) for h in (-8, -5, 0, 1, 2, 5, 9))
EPOCH = datetime(2015, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Contact:
    """One input contact.

    `email` is what the database holds (normalised); `raw_email` is what the client sends.
    `values` holds the given fields only: None is an explicit null, date-times are aware,
    custom_json values are dicts or lists.
    """

    email: str
    raw_email: str
    values: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        """The JSON object sent to the API."""
        return {"email": self.raw_email, **self.values}


@dataclass(slots=True)
class Dataset:
    creates: list[Contact]
    updates: list[Contact]
    seed: int

    def expected(self, *, with_updates: bool) -> dict[str, dict[str, Any]]:
        """What every contact must hold afterwards: {email: {field: value or None}}."""
        state: dict[str, dict[str, Any]] = {}
        for c in self.creates:
            state[c.email] = dict.fromkeys(FIELDS) | c.values
        if with_updates:
            for c in self.updates:
                state[c.email].update(c.values)
        return state


def generate(count: int, seed: int = DEFAULT_SEED, domain: str | None = None) -> Dataset:
    """`count` distinct contacts to create, and the same emails again as updates."""
    rng = random.Random(seed)
    creates: list[Contact] = []
    for index in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first}.{last}{index}@{domain or rng.choice(DOMAINS)}"
        raw = _as_typed(rng, email)
        values = _fields(rng, first, last, index, CREATE_NULL_SHARE)
        creates.append(Contact(email, raw, values))
    updates_rng = random.Random(seed + 1)
    updates = []
    for index, c in enumerate(creates):
        first, _, rest = c.email.partition(".")
        last = rest.split("@")[0].rstrip("0123456789")
        values = _fields(updates_rng, first, last, index, UPDATE_NULL_SHARE)
        updates.append(Contact(c.email, _as_typed(updates_rng, c.email), values))
    return Dataset(creates, updates, seed)


def batches(items: Sequence[Contact], size: int) -> Iterator[Sequence[Contact]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _as_typed(rng: random.Random, email: str) -> str:
    """The email as a user might send it: sometimes capitalised, sometimes padded."""
    draw = rng.random()
    if draw < 0.08:
        local, _, domain = email.partition("@")
        return f"{local.title()}@{domain.capitalize()}"
    if draw < 0.11:
        return f" {email}\u00a0"
    return email


def _fields(
    rng: random.Random, first: str, last: str, index: int, null_share: float
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in FIELDS:
        if rng.random() < PROBABILITY[name]:
            values[name] = _value(rng, name, first, last, index)
    if rng.random() < null_share:
        absent = [name for name in FIELDS if name not in values]
        for name in rng.sample(absent, k=min(len(absent), rng.randint(1, 3))):
            values[name] = None
    # Column order, as a client generating from a schema would send them.
    return {name: values[name] for name in FIELDS if name in values}


def _value(rng: random.Random, name: str, first: str, last: str, index: int) -> Any:
    if name in NUMBER_FIELDS:
        return round(rng.uniform(0, 10_000), rng.choice((0, 2)))
    if name in DATETIME_FIELDS:
        moment = EPOCH + timedelta(seconds=rng.randrange(10 * 365 * 86_400))
        return moment.astimezone(rng.choice(OFFSETS))
    if name in JSON_FIELDS:
        return _json(rng)
    match name:
        case "external_id":
            return f"crm-{index:08d}-{rng.randrange(1000):03d}"
        case "timezone":
            return rng.choice(TIMEZONES)
        case "language":
            return rng.choice(LANGUAGES)
        case "first_name":
            return first.capitalize()
        case "last_name":
            return last.capitalize()
        case "full_name":
            return f"{first.capitalize()} {last.capitalize()}"
        case "phone":
            return f"+{rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(100000, 999999)}"
        case "address_line_1":
            return f"{rng.randint(1, 300)} {rng.choice(STREETS)}"
        case "address_line_2":
            return f"Apt {rng.randint(1, 99)}"
        case "country":
            return rng.choice(COUNTRIES)
        case "postcode":
            return f"{rng.randint(10000, 99999)}"
        case "state":
            return rng.choice(STATES)
        case "job_title":
            return rng.choice(JOBS)
    return " ".join(rng.choices(WORDS, k=rng.randint(1, 4)))


def _json(rng: random.Random) -> dict[str, Any] | list[Any]:
    if rng.random() < 0.2:
        return rng.sample(WORDS, k=rng.randint(1, 5))
    doc: dict[str, Any] = {
        "plan": rng.choice(PLANS),
        "seats": rng.randint(1, 500),
        "active": rng.random() < 0.8,
    }
    if rng.random() < 0.5:
        doc["tags"] = rng.sample(WORDS, k=rng.randint(1, 4))
    if rng.random() < 0.3:
        doc["utm"] = {"source": rng.choice(WORDS), "campaign": f"c{rng.randint(1, 99)}"}
    return doc
