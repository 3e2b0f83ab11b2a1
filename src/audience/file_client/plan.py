"""The file as understood before anything is sent: its facts, its source, its mapping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from audience.contact_files.convert import (
    Conversion,
    RowError,
    convert_line,
    convert_row,
    email_of_line,
    time_zone,
)
from audience.contact_files.mapping import Mapping, MappingError, map_header, parse_overrides
from audience.contact_files.reader import (
    FileError,
    FileFacts,
    Row,
    Source,
    detect_format,
    open_source,
    scan,
)
from audience.file_client.batches import Item
from audience.file_client.errors_file import default_errors_path
from audience.file_client.options import Abort, Options


@dataclass
class Plan:
    """The file as understood before anything is sent."""

    facts: FileFacts
    source: Source
    mapping: Mapping | None
    renames: dict[str, str | None]
    conversion: Conversion = field(default_factory=Conversion)
    unknown: set[str] = field(default_factory=set)

    def prepare(self, row: Row) -> Item:
        """The row converted, or its conversion error."""
        try:
            if isinstance(row.raw, str):
                contact = convert_line(row.raw, self.renames, self.unknown)
            else:
                assert self.mapping is not None
                contact = convert_row(row.raw, self.mapping, self.conversion)
        except RowError as exc:
            email = exc.email or (email_of_line(row.raw) if isinstance(row.raw, str) else "")
            return Item(row.line, row.raw, email, reason=exc.reason)
        return Item(row.line, row.raw, str(contact["email"]), contact=contact)


@contextmanager
def open_plan(options: Options) -> Iterator[Plan]:
    """Scan the file, open it and map its columns; usage and file errors become Abort."""
    try:
        overrides = parse_overrides(options.mappings)
        conversion = Conversion(
            empty_clears=options.empty_clears,
            timezone=time_zone(options.timezone) if options.timezone else None,
            decimal_comma=options.decimal_comma,
        )
        fmt = detect_format(options.path)
        facts = scan(options.path, fmt)
        source = open_source(options.path, fmt)
    except (MappingError, FileError, ValueError) as exc:
        raise Abort(str(exc)) from None
    try:
        mapping = map_header(source.header, overrides) if fmt == "csv" else None
        yield Plan(facts, source, mapping, overrides, conversion)
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
    changed: dict[str, str] = {}  # options added later: only when not their default, so
    if options.list_status != "subscribed":  # that a state saved before them still matches
        changed["list_status"] = options.list_status
    if options.merge != "overwrite":
        changed["merge"] = options.merge
    return msgspec.json.encode(
        {
            **changed,
            "format": facts.format,
            "url": options.url.rstrip("/"),
            "workspace": options.workspace,
            "lists": sorted(options.lists),
            "map": list(options.mappings),
            "empty_clears": options.empty_clears,
            "timezone": options.timezone,
            "decimal_comma": options.decimal_comma,
        }
    ).decode()


def errors_path(options: Options, facts: FileFacts) -> Path:
    """Where failed rows go: --errors, or beside the input."""
    path = options.errors or default_errors_path(options.path, facts.format)
    if path.resolve() == options.path.resolve():
        raise Abort("--errors must not be the file being imported")
    return path
