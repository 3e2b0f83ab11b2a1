"""Field values: what one optional field of one contact holds, drawn from a seeded RNG.

Every value is what the client sends and, as a Python value, what the database must hold
(text already trimmed, date-times aware, custom_json values dicts or lists).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from audience.db.models import DATETIME_FIELDS, FIELDS, JSON_FIELDS, NUMBER_FIELDS
from bench import vocabulary as v

#: Depth below which a json-heavy value may hold further objects or arrays of objects.
JSON_NESTING = 2
#: Fraction of the 33 optional fields a realistic contact gives, on average.
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


def realistic(rng: random.Random, name: str, first: str, last: str, index: int) -> Any:
    """A value of the realistic kind for one field (names given as drawn, lower-case)."""
    if name in NUMBER_FIELDS:
        return round(rng.uniform(0, 10_000), rng.choice((0, 2)))
    if name in DATETIME_FIELDS:
        moment = v.EPOCH + timedelta(seconds=rng.randrange(10 * 365 * 86_400))
        return moment.astimezone(rng.choice(v.OFFSETS))
    if name in JSON_FIELDS:
        return realistic_json(rng)
    return _text(rng, name, first, last, index)


def _text(rng: random.Random, name: str, first: str, last: str, index: int) -> str:
    match name:
        case "external_id":
            return f"crm-{index:08d}-{rng.randrange(1000):03d}"
        case "timezone":
            return rng.choice(v.TIMEZONES)
        case "language":
            return rng.choice(v.LANGUAGES)
        case "first_name":
            return first.capitalize()
        case "last_name":
            return last.capitalize()
        case "full_name":
            return f"{first.capitalize()} {last.capitalize()}"
        case "phone":
            return f"+{rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(100000, 999999)}"
        case "address_line_1":
            return f"{rng.randint(1, 300)} {rng.choice(v.STREETS)}"
        case "address_line_2":
            return f"Apt {rng.randint(1, 99)}"
        case "country":
            return rng.choice(v.COUNTRIES)
        case "postcode":
            return f"{rng.randint(10000, 99999)}"
        case "state":
            return rng.choice(v.STATES)
        case "job_title":
            return rng.choice(v.JOBS)
    return " ".join(rng.choices(v.WORDS, k=rng.randint(1, 4)))


def realistic_json(rng: random.Random) -> dict[str, Any] | list[Any]:
    """A flat account document (sometimes one level of `utm`), or a list of words."""
    if rng.random() < 0.2:
        return rng.sample(v.WORDS, k=rng.randint(1, 5))
    doc: dict[str, Any] = {
        "plan": rng.choice(v.PLANS),
        "seats": rng.randint(1, 500),
        "active": rng.random() < 0.8,
    }
    if rng.random() < 0.5:
        doc["tags"] = rng.sample(v.WORDS, k=rng.randint(1, 4))
    if rng.random() < 0.3:
        doc["utm"] = {"source": rng.choice(v.WORDS), "campaign": f"c{rng.randint(1, 99)}"}
    return doc


def precise_moment(rng: random.Random) -> datetime:
    """A date-time with microseconds at an offset that is often not whole hours."""
    moment = v.EPOCH + timedelta(
        seconds=rng.randrange(10 * 365 * 86_400), microseconds=rng.randrange(1, 1_000_000)
    )
    return moment.astimezone(rng.choice(v.MINUTE_OFFSETS))


def nested_json(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """An object of 2-4 keys whose values may be objects, arrays of objects, or scalars."""
    keys = rng.sample(v.JSON_KEYS, k=rng.randint(2, 4))
    return {key: _json_value(rng, depth) for key in keys}


def _json_value(rng: random.Random, depth: int) -> Any:
    draw = rng.random()
    if depth < JSON_NESTING and draw < 0.2:
        return nested_json(rng, depth + 1)
    if depth < JSON_NESTING and draw < 0.3:
        return [nested_json(rng, depth + 1) for _ in range(rng.randint(1, 2))]
    if draw < 0.45:
        return rng.sample(v.WORDS, k=rng.randint(1, 4))
    if draw < 0.6:
        return rng.randint(-1_000, 1_000_000)
    if draw < 0.7:
        return round(rng.uniform(-100, 100), 3)
    if draw < 0.85:
        return precise_moment(rng).isoformat()
    if draw < 0.95:
        return f"{rng.choice(v.ACCENTED_FIRST_NAMES)} {rng.choice(v.WORDS)}"
    return rng.random() < 0.5
