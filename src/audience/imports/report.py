"""What an import leaves behind and shows: the errors file, the resume state, progress, summary."""

from __future__ import annotations

import contextlib
import csv
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from audience.imports.mapping import RESERVED
from audience.imports.reader import Format

STATE_VERSION = 1


@dataclass
class Tally:
    """Rows of this run, by outcome."""

    created: int = 0
    updated: int = 0
    failed: int = 0

    @property
    def done(self) -> int:
        return self.created + self.updated + self.failed


def default_errors_path(source: Path, fmt: Format) -> Path:
    """`contacts.csv` → `contacts.errors.csv`; `contacts.jsonl` → `contacts.errors.jsonl`."""
    return source.with_name(f"{source.stem}.errors.{'csv' if fmt == 'csv' else 'jsonl'}")


def state_path_for(errors_path: Path) -> Path:
    """The resume state lives beside the errors file: `contacts.errors.state.json`."""
    return errors_path.with_name(f"{errors_path.stem}.state.json")


# --- the errors file ----------------------------------------------------------------------------


class ErrorsFile:
    """Failed rows as the original rows, behind `_line`, `_email` and `_error`.

    The file is created at the first failure. Importing it again works as is: those three
    columns (keys, for JSON Lines) are ignored by the importer.
    """

    def __init__(
        self,
        path: Path,
        *,
        fmt: Format,
        header: Sequence[str] = (),
        delimiter: str = ",",
        bom: bool = False,
        keep_bytes: int = 0,
    ) -> None:
        self.path = path
        self.fmt = fmt
        self.header = list(header)
        self.positions = [i for i, name in enumerate(header) if name not in RESERVED]
        self.delimiter = delimiter
        self.bom = bom
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: Any = None
        _keep_prefix(path, keep_bytes)

    def write(self, line: int, email: str, reason: str, raw: list[str] | str) -> None:
        """Append one failed row."""
        if self._file is None:
            self._open()
        assert self._file is not None
        if self.fmt == "csv":
            self._writer.writerow([line, email, reason, *self._original(raw)])
        else:
            self._file.write(_json_line(line, email, reason, raw) + "\n")
        self.count += 1

    def size(self) -> int:
        """Bytes written so far (everything flushed)."""
        if self._file is not None:
            self._file.flush()
        return self.path.stat().st_size if self.path.exists() else 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> None:
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        encoding = "utf-8-sig" if fresh and self.bom else "utf-8"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding=encoding, newline="")
        if self.fmt == "csv":
            self._writer = csv.writer(self._file, delimiter=self.delimiter)
            if fresh:
                self._writer.writerow([*RESERVED[:3], *self._original(self.header)])

    def _original(self, raw: list[str] | str) -> list[str]:
        cells = [raw] if isinstance(raw, str) else raw
        kept = [cells[i] if i < len(cells) else "" for i in self.positions]
        return kept + list(cells[len(self.header) :])


def _keep_prefix(path: Path, keep_bytes: int) -> None:
    """Start over (remove) or keep what a resumed run had already written."""
    if keep_bytes <= 0:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    elif path.exists():
        os.truncate(path, min(keep_bytes, path.stat().st_size))


def _json_line(line: int, email: str, reason: str, raw: list[str] | str) -> str:
    text = raw if isinstance(raw, str) else ",".join(raw)
    head: dict[str, Any] = {"_line": line, "_email": email, "_error": reason}
    try:
        data = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):
        data = None
    if isinstance(data, dict):
        body = {k: v for k, v in data.items() if k not in RESERVED}
        return msgspec.json.encode({**head, **body}).decode()
    return msgspec.json.encode({**head, "_raw": text}).decode()


# --- the resume state ---------------------------------------------------------------------------


class State(msgspec.Struct):
    """How far a run got: the rows of its first `rows_done` records are in."""

    sha256: str
    options: str
    rows_done: int = 0
    errors_bytes: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    version: int = STATE_VERSION


def load_state(path: Path) -> State | None:
    """The saved state, or None when there is none (or it is unreadable)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=State)
    except (OSError, msgspec.DecodeError):
        return None


def save_state(path: Path, state: State) -> None:
    """Write the state atomically: a crash leaves the old one or the new one."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(msgspec.json.encode(state))
    os.replace(temporary, path)


def remove_state(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# --- progress -----------------------------------------------------------------------------------


class ProgressView(Protocol):
    """Rows done so far (earlier runs included), with this run's tally."""

    def update(self, done: int, tally: Tally) -> None: ...

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

    def update(self, done: int, tally: Tally) -> None:
        task = self._bar.tasks[0]
        total = None if task.total is None else max(task.total, done)
        rate = rows_per_second(done - self._start, time.monotonic() - self._started)
        self._bar.update(
            self._task,
            completed=done,
            total=total,
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

    def update(self, done: int, tally: Tally) -> None:
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
