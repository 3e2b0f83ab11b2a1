"""The file as understood before anything is sent, and the shapes a run is described by."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from audience.imports.batches import Item
from audience.imports.convert import RowError, convert_line, convert_row, email_of_line
from audience.imports.mapping import Mapping, MappingError, map_header, parse_overrides
from audience.imports.reader import (
    FileError,
    FileFacts,
    Row,
    Source,
    detect_format,
    open_source,
    scan,
)
from audience.imports.report import ProgressView, Tally, default_errors_path

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
    mappings: tuple[str, ...] = ()
    dry_run: bool = False
    empty_clears: bool = False
    errors: Path | None = None
    batch_size: int = 1000
    concurrency: int = 2
    resume: bool = False
    retries: int = 6
    backoff: float = 0.5


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


@dataclass
class Plan:
    """The file as understood before anything is sent."""

    facts: FileFacts
    source: Source
    mapping: Mapping | None
    renames: dict[str, str | None]
    unknown: set[str] = field(default_factory=set)

    def prepare(self, row: Row, *, empty_clears: bool) -> Item:
        """The row converted, or its conversion error."""
        try:
            if isinstance(row.raw, str):
                contact = convert_line(row.raw, self.renames, self.unknown)
            else:
                assert self.mapping is not None
                contact = convert_row(row.raw, self.mapping, empty_clears=empty_clears)
        except RowError as exc:
            email = exc.email or (email_of_line(row.raw) if isinstance(row.raw, str) else "")
            return Item(row.line, row.raw, email, reason=exc.reason)
        return Item(row.line, row.raw, str(contact["email"]), contact=contact)


@contextmanager
def open_plan(options: Options) -> Iterator[Plan]:
    """Scan the file, open it and map its columns; usage and file errors become Abort."""
    try:
        overrides = parse_overrides(options.mappings)
        fmt = detect_format(options.path)
        facts = scan(options.path, fmt)
        source = open_source(options.path, fmt)
    except (MappingError, FileError) as exc:
        raise Abort(str(exc)) from None
    try:
        mapping = map_header(source.header, overrides) if fmt == "csv" else None
        yield Plan(facts, source, mapping, overrides)
    except MappingError as exc:
        raise Abort(str(exc)) from None
    except FileError as exc:
        raise Abort(f"{options.path}: {exc}") from None
    finally:
        source.close()


def describe_mapping(plan: Plan) -> list[str]:
    """The mapping, one column a line, for --dry-run."""
    if plan.mapping is None:
        return ["JSON Lines: each line's keys are ContactInput field names"]
    lines = [f"  {plan.mapping.header[i]!r} → {name}" for i, name in plan.mapping.columns]
    if plan.mapping.ignored:
        lines.append(f"  left out: {', '.join(map(repr, plan.mapping.ignored))}")
    return ["columns:", *lines]


def unmapped_note(plan: Plan) -> str | None:
    """The columns that no field takes, said aloud rather than dropped silently."""
    if plan.mapping is None or not plan.mapping.unmapped:
        return None
    names = ", ".join(map(repr, plan.mapping.unmapped))
    return f"not imported (no matching field): {names}; import one with --map 'COLUMN=field'"


def fingerprint(options: Options, facts: FileFacts) -> str:
    """What must not change for a run to resume another."""
    return msgspec.json.encode(
        {
            "format": facts.format,
            "url": options.url.rstrip("/"),
            "workspace": options.workspace,
            "lists": sorted(options.lists),
            "map": list(options.mappings),
            "empty_clears": options.empty_clears,
        }
    ).decode()


def errors_path(options: Options, facts: FileFacts) -> Path:
    """Where failed rows go: --errors, or beside the input."""
    path = options.errors or default_errors_path(options.path, facts.format)
    if path.resolve() == options.path.resolve():
        raise Abort("--errors must not be the file being imported")
    return path
