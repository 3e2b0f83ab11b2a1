"""The shapes of the datasets (see bench/datasets.py): how each draws names, emails and fields."""

from __future__ import annotations

import random
from typing import Any

from audience.db.models import DATETIME_FIELDS, FIELDS, JSON_FIELDS
from bench import values as draw
from bench import vocabulary as v

#: Share of contacts carrying explicit nulls, on create and on update.
CREATE_NULL_SHARE = 0.02
UPDATE_NULL_SHARE = 0.05
#: Share of json-heavy emails sent padded and/or in mixed case.
UNTIDY_EMAIL_SHARE = 0.10
_NAMES = ("first_name", "last_name", "full_name")


def in_column_order(values: dict[str, Any]) -> dict[str, Any]:
    """The fields in column order, as a client generating from a schema would send them."""
    return {name: values[name] for name in FIELDS if name in values}


def with_nulls(rng: random.Random, values: dict[str, Any], share: float) -> dict[str, Any]:
    """Sometimes 1-3 absent fields sent as explicit nulls; the fields in column order."""
    if rng.random() < share:
        absent = [name for name in FIELDS if name not in values]
        for name in rng.sample(absent, k=min(len(absent), rng.randint(1, 3))):
            values[name] = None
    return in_column_order(values)


def null_share(update: bool) -> float:
    return UPDATE_NULL_SHARE if update else CREATE_NULL_SHARE


class Realistic:
    """~40 % of the fields, weighted by how often real contacts carry each."""

    name = "realistic"
    summary = "~40 % of the 33 optional fields given, some custom_json, a few explicit nulls"

    def person(self, rng: random.Random) -> tuple[str, str]:
        return rng.choice(v.FIRST_NAMES), rng.choice(v.LAST_NAMES)

    def typed(self, rng: random.Random, email: str) -> str:
        """Sometimes capitalised, sometimes padded with a space and a no-break space."""
        chance = rng.random()
        if chance < 0.08:
            local, _, domain = email.partition("@")
            return f"{local.title()}@{domain.capitalize()}"
        if chance < 0.11:
            return f" {email}\u00a0"
        return email

    def fields(
        self, rng: random.Random, person: tuple[str, str], index: int, update: bool
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in FIELDS:
            if rng.random() < draw.PROBABILITY[name]:
                values[name] = draw.realistic(rng, name, *person, index)
        return with_nulls(rng, values, null_share(update))


class JsonHeavy(Realistic):
    """Realistic fields, but 2-5 custom_json values (many nested) and precise date-times."""

    name = "json-heavy"
    summary = (
        "2-5 custom_json per contact, many nested; date-times with microseconds at offsets "
        "like +05:30; accented names; 10 % of emails padded and/or mixed-case"
    )

    def person(self, rng: random.Random) -> tuple[str, str]:
        return rng.choice(v.ACCENTED_FIRST_NAMES), rng.choice(v.ACCENTED_LAST_NAMES)

    def typed(self, rng: random.Random, email: str) -> str:
        """10 %: letters randomly upper-cased, spaces around, or both."""
        if rng.random() >= UNTIDY_EMAIL_SHARE:
            return email
        style = rng.randrange(3)
        if style != 1:
            email = "".join(ch.upper() if rng.random() < 0.5 else ch for ch in email)
        if style != 0:
            email = " " * rng.randint(1, 3) + email + " " * rng.randint(0, 2)
        return email

    def fields(
        self, rng: random.Random, person: tuple[str, str], index: int, update: bool
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in FIELDS:
            if name in JSON_FIELDS or not (name in _NAMES or rng.random() < draw.PROBABILITY[name]):
                continue
            if name in DATETIME_FIELDS:
                values[name] = draw.precise_moment(rng)
            else:
                values[name] = draw.realistic(rng, name, *person, index)
        for name in sorted(rng.sample(JSON_FIELDS, k=rng.randint(2, 5))):
            nested = rng.random() < 0.6
            values[name] = draw.nested_json(rng) if nested else draw.realistic_json(rng)
        return with_nulls(rng, values, null_share(update))


class Minimal(Realistic):
    """The email and two names; an update sends other names."""

    name = "minimal"
    summary = "the email, first_name and last_name only"

    def fields(
        self, rng: random.Random, person: tuple[str, str], index: int, update: bool
    ) -> dict[str, Any]:
        first, last = self.person(rng) if update else person
        return {"first_name": first.capitalize(), "last_name": last.capitalize()}


class Wide(Realistic):
    """Every optional field given, on create and on update (no explicit nulls)."""

    name = "wide"
    summary = "all 33 optional fields given"

    def fields(
        self, rng: random.Random, person: tuple[str, str], index: int, update: bool
    ) -> dict[str, Any]:
        return {name: draw.realistic(rng, name, *person, index) for name in FIELDS}
