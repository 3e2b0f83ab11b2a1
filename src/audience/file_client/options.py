"""What `audience import` is asked to do, where it writes, and how a run ends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audience.contacts.schemas import ListStatus, Merge
from audience.file_client.progress import ProgressView, Tally
from audience.file_client.sender import DEFAULT_DEADLINE

EXIT_OK, EXIT_ROWS_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class Abort(Exception):
    """The run stops: `message` for the user, `code` for the shell."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Options:
    """Everything `audience import` was asked to do."""

    path: Path
    workspace: str
    url: str = "http://127.0.0.1:8000"
    key: str | None = None
    lists: tuple[str, ...] = ()
    #: The status of a new membership of `lists`, and how an existing contact's fields merge
    #: (as in contacts.import).
    list_status: ListStatus = "subscribed"
    merge: Merge = "overwrite"
    mappings: tuple[str, ...] = ()
    dry_run: bool = False
    empty_clears: bool = False
    #: The file's time zone, for date-times written without an offset (IANA name).
    timezone: str | None = None
    decimal_comma: bool = False
    errors: Path | None = None
    batch_size: int = 1000
    concurrency: int = 2
    resume: bool = False
    retries: int = 6
    backoff: float = 0.5
    #: Seconds each request may take in all: connect, send and the whole answer.
    timeout: float = DEFAULT_DEADLINE
    #: Upload the file as an import job (imports.create) and follow it (server_side.py).
    server_side: bool = False
    #: The longest wait between two looks at a server-side job (the first ones are shorter).
    poll_seconds: float = 2.0


@dataclass
class Ui:
    """Where a run writes: `out` for results, `note` for everything else (stderr)."""

    out: Callable[[str], None]
    note: Callable[[str], None]
    progress: Callable[[int | None, int], ProgressView]


@dataclass
class Outcome:
    """How a run ended."""

    tally: Tally
    skipped: int = 0
    earlier_failed: int = 0
    errors_path: Path | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_ROWS_FAILED if self.tally.failed or self.earlier_failed else EXIT_OK
