"""Deterministic datasets: the same seed gives the same contacts on every machine.

A dataset is contacts to create and the same emails again as updates, drawn by a *shape*:

- `realistic`: ~40 % of the 33 optional fields given (names and country often, custom fields
  rarely), some `custom_json_*`, a few explicit nulls; the updates touch another subset of
  columns (absent keeps, null clears: docs/import.md rule 7);
- `json-heavy`: two to five `custom_json_*` values per contact, many nested (objects within
  objects and arrays, 2-4 keys each), date-times with microseconds at offsets such as
  +05:30, accented names, 10 % of emails padded with spaces and/or in mixed case;
- `minimal`: the email, first_name and last_name only;
- `wide`: all 33 optional fields given.

Every contact exists twice: as the JSON the client sends (`wire`, with the email as a user
might type it) and as what the database must end up holding (`email` normalised, `values`).
The floor writes `values` directly; the import gets `wire`.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from audience.db.models import FIELDS
from bench import shapes
from bench import vocabulary as v

DEFAULT_SEED = 20_240_601


@dataclass(slots=True)
class Contact:
    """One input contact: `email` as stored, `raw_email` as sent, `values` the given fields.

    None in `values` is an explicit null; date-times are aware; custom_json values are
    dicts or lists.
    """

    email: str
    raw_email: str
    values: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        """The JSON object sent to the API."""
        return {"email": self.raw_email, **self.values}


@dataclass(slots=True)
class Dataset:
    """Contacts to create, then the same emails (same order) as updates."""

    name: str
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

    def head(self, count: int) -> Dataset:
        """The first `count` contacts (generation is sequential: a prefix of a larger draw)."""
        return Dataset(self.name, self.creates[:count], self.updates[:count], self.seed)


class Shape(Protocol):
    """How one kind of dataset draws a contact."""

    name: str
    summary: str

    def person(self, rng: random.Random) -> tuple[str, str]:
        """A first and a last name, lower-case."""
        ...

    def typed(self, rng: random.Random, email: str) -> str:
        """The email as the client sends it."""
        ...

    def fields(
        self, rng: random.Random, person: tuple[str, str], index: int, update: bool
    ) -> dict[str, Any]:
        """The given fields, in column order."""
        ...


def generate(shape: Shape, count: int, seed: int = DEFAULT_SEED, domain: str = "") -> Dataset:
    """`count` distinct contacts to create, and the same emails again as updates."""
    rng = random.Random(seed)
    people: list[tuple[str, str]] = []
    creates: list[Contact] = []
    for index in range(count):
        person = shape.person(rng)
        email = f"{_ascii(person[0])}.{_ascii(person[1])}{index}@{domain or rng.choice(v.DOMAINS)}"
        raw = shape.typed(rng, email)
        creates.append(Contact(email, raw, shape.fields(rng, person, index, False)))
        people.append(person)
    updates_rng = random.Random(seed + 1)
    updates = []
    for index, c in enumerate(creates):
        values = shape.fields(updates_rng, people[index], index, True)
        updates.append(Contact(c.email, shape.typed(updates_rng, c.email), values))
    return Dataset(shape.name, creates, updates, seed)


def batches(items: Sequence[Contact], size: int) -> Iterator[Sequence[Contact]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ascii(name: str) -> str:
    """A name as it appears in an ASCII email address (josé -> jose, łukasz -> lukasz)."""
    decomposed = unicodedata.normalize("NFKD", name.translate(v.ASCII_LETTERS))
    return "".join(ch for ch in decomposed if ch.isascii())


#: Every shape, by the name `--datasets` takes; the first is the headline one.
SHAPES: dict[str, Shape] = {
    s.name: s for s in (shapes.Realistic(), shapes.JsonHeavy(), shapes.Minimal(), shapes.Wide())
}
