"""Rows into batches, and batches through the server with N in flight, settled in file order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from typing import Any

from audience.contact_files.reader import Row
from audience.file_client.sender import Operation


@dataclass(slots=True)
class Item:
    """One record on its way: its contact, or why it will not be sent."""

    line: int
    raw: list[str] | str
    email: str
    contact: dict[str, Any] | None = None
    reason: str | None = None


@dataclass(slots=True)
class Batch:
    """Consecutive records; `end` counts the file's records up to and including this batch."""

    index: int
    items: list[Item]
    end: int
    emails: frozenset[str] = field(default_factory=frozenset)

    @property
    def contacts(self) -> list[dict[str, Any]]:
        return [item.contact for item in self.items if item.contact is not None]


def email_key(value: Any) -> str:
    """Emails the server would take as one contact (it also trims and lower-cases)."""
    return value.strip().lower() if isinstance(value, str) else repr(value)


def make_batches(
    rows: Iterator[Row], prepare: Callable[[Row], Item], *, size: int, skip: int
) -> Iterator[Batch]:
    """Batches of `size` records, after the first `skip` records (done by an earlier run)."""
    items: list[Item] = []
    records = index = 0
    for row in rows:
        records += 1
        if records <= skip:
            continue
        items.append(prepare(row))
        if len(items) == size:
            yield _batch(index, items, records)
            items, index = [], index + 1
    if items:
        yield _batch(index, items, records)


def _batch(index: int, items: list[Item], end: int) -> Batch:
    emails = frozenset(email_key(item.contact["email"]) for item in items if item.contact)
    return Batch(index, items, end, emails)


Deliver = Callable[[Batch], list[Operation]]
Settle = Callable[[Batch, list[Operation]], None]


class Dispatcher:
    """Keeps up to `concurrency` batches in flight and settles them in file order.

    A batch that shares an email with one in flight waits for it, so duplicates across
    batches are applied in file order, as they would be within one batch. Batches done ahead
    of a slow one are held (at most `window`), so the errors file and the resume point always
    follow the file.
    """

    def __init__(
        self, pool: Executor, deliver: Deliver, settle: Settle, *, concurrency: int
    ) -> None:
        self._pool, self._deliver, self._settle = pool, deliver, settle
        self._concurrency = concurrency
        self._window = 4 * concurrency
        self._in_flight: dict[Future[list[Operation]], Batch] = {}
        self._held: dict[int, tuple[Batch, list[Operation]]] = {}
        self._next = 0

    def submit(self, batch: Batch) -> None:
        """Send the batch once there is room for it (settling finished ones meanwhile)."""
        while self._must_wait(batch):
            self._wait_one()
        if batch.contacts:
            self._in_flight[self._pool.submit(self._deliver, batch)] = batch
        else:
            self._held[batch.index] = (batch, [])
            self._settle_ready()

    def drain(self) -> None:
        """Wait for every batch in flight and settle it."""
        while self._in_flight:
            self._wait_one()

    def cancel(self) -> None:
        """Forget what has not started; what is running finishes on its own."""
        for future in self._in_flight:
            future.cancel()

    def _must_wait(self, batch: Batch) -> bool:
        if not self._in_flight:
            return False
        return (
            len(self._in_flight) >= self._concurrency
            or len(self._in_flight) + len(self._held) >= self._window
            or any(batch.emails & other.emails for other in self._in_flight.values())
        )

    def _wait_one(self) -> None:
        done, _ = wait(self._in_flight, return_when=FIRST_COMPLETED)
        for future in done:
            batch = self._in_flight.pop(future)
            self._held[batch.index] = (batch, future.result())
        self._settle_ready()

    def _settle_ready(self) -> None:
        while self._next in self._held:
            self._settle(*self._held.pop(self._next))
            self._next += 1
