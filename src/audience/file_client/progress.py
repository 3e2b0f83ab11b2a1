"""What a run shows while it works and when it ends: a bar, plain lines, the summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)


@dataclass
class Tally:
    """Rows of this run, by outcome."""

    created: int = 0
    updated: int = 0
    failed: int = 0

    @property
    def done(self) -> int:
        return self.created + self.updated + self.failed


class ProgressView(Protocol):
    """Rows done so far (earlier runs included), with this run's tally; `total`, when given,
    is the number of rows once it is known (a server-side import counts them first)."""

    def update(self, done: int, tally: Tally, total: int | None = None) -> None: ...

    def close(self) -> None: ...


def counts(tally: Tally) -> str:
    return f"created {tally.created:,} · updated {tally.updated:,} · failed {tally.failed:,}"


class BarProgress:
    """A rich progress bar on a terminal."""

    def __init__(self, console: Console, total: int | None, start: int) -> None:
        self._started = time.monotonic()
        self._start = start
        self._bar = Progress(
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[counts]}"),
            console=console,
        )
        self._task: TaskID = self._bar.add_task(
            "import", total=total, completed=start, rate="", counts=_bar_counts(Tally())
        )
        self._bar.start()

    def update(self, done: int, tally: Tally, total: int | None = None) -> None:
        task = self._bar.tasks[0]
        known: float | None = task.total if total is None else total
        known = None if known is None else max(known, done)
        rate = rows_per_second(done - self._start, time.monotonic() - self._started)
        self._bar.update(
            self._task,
            completed=done,
            total=known,
            rate=f"{rate:,.0f} rows/s",
            counts=_bar_counts(tally),
        )

    def close(self) -> None:
        self._bar.stop()


def _bar_counts(tally: Tally) -> str:
    return counts(tally).replace(" · ", " ")


class PlainProgress:
    """A line every `interval` seconds when the output is not a terminal."""

    def __init__(
        self,
        echo: Callable[[str], None],
        total: int | None,
        start: int,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._echo, self._total, self._start = echo, total, start
        self._interval, self._clock = interval, clock
        self._started = self._last = clock()

    def update(self, done: int, tally: Tally, total: int | None = None) -> None:
        if total is not None:
            self._total = total
        now = self._clock()
        if now - self._last < self._interval:
            return
        self._last = now
        self._echo(progress_line(done, self._total, tally, now - self._started, self._start))

    def close(self) -> None:
        pass


def progress_line(done: int, total: int | None, tally: Tally, elapsed: float, start: int) -> str:
    """`12,000/200,000 rows (6%) · 2,345 rows/s · ETA 1m20s · created … · failed …`."""
    rate = rows_per_second(done - start, elapsed)
    parts = [f"{done:,} rows"]
    if total:
        total = max(total, done)
        parts = [f"{done:,}/{total:,} rows ({100 * done // total}%)"]
    parts.append(f"{rate:,.0f} rows/s")
    if total and rate > 0:
        parts.append(f"ETA {duration((total - done) / rate)}")
    return " · ".join([*parts, counts(tally)])


def rows_per_second(rows: int, elapsed: float) -> float:
    return rows / elapsed if elapsed > 0 else 0.0


def duration(seconds: float) -> str:
    """`4.2s`, `1m20s`, `2h05m`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def summary_line(tally: Tally, skipped: int, elapsed: float) -> str:
    """The last line of a run."""
    rate = rows_per_second(tally.done, elapsed)
    return f"{counts(tally)} · skipped {skipped:,} · {duration(elapsed)} · {rate:,.0f} rows/s"
