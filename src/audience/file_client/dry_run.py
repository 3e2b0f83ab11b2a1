"""`--dry-run`: show the mapping and check every row without sending anything."""

from __future__ import annotations

from typing import Any

import msgspec

from audience.contacts.validation import validate_batch
from audience.file_client.errors_file import ErrorsFile
from audience.file_client.options import Options, Outcome, Ui
from audience.file_client.plan import Plan, describe_mapping, unmapped_note
from audience.file_client.progress import Tally

#: Failed rows printed by a dry run (all of them go to --errors when given).
SHOWN_FAILURES = 10


def server_rules(contact: dict[str, Any]) -> str | None:
    """What the server would say about this contact (its own rules, run here), or None."""
    return validate_batch([msgspec.json.encode(contact)]).errors.get(0)


def describe_file(plan: Plan) -> str:
    """`CSV, delimiter ';', UTF-8 with BOM, about 1,204 rows`."""
    facts = plan.facts
    bom = "UTF-8 with BOM" if facts.bom else "UTF-8"
    if facts.format == "jsonl":
        return f"JSON Lines, {bom}, about {facts.records:,} rows"
    return f"CSV, delimiter {plan.source.delimiter!r}, {bom}, about {facts.records:,} rows"


def dry_run(options: Options, plan: Plan, ui: Ui) -> Outcome:
    """Print the mapping, check every row, and write the failures to --errors if given."""
    ui.out(f"{options.path}: {describe_file(plan)}")
    for line in describe_mapping(plan):
        ui.out(line)
    note = unmapped_note(plan)
    if note:
        ui.out(note)
    errors = _errors_file(options, plan)
    valid = failed = 0
    for row in plan.source.rows():
        item = plan.prepare(row)
        reason = item.reason or server_rules(item.contact or {})
        if reason is None:
            valid += 1
            continue
        failed += 1
        if failed <= SHOWN_FAILURES:
            ui.out(f"  line {item.line}: {reason}")
        if errors is not None:
            errors.write(item.line, item.email, reason, item.raw)
    if errors is not None:
        errors.close()
    if plan.unknown:
        ui.out(f"keys not imported (no such field): {', '.join(sorted(plan.unknown))}")
    ui.out(f"checked {valid + failed:,} rows: {valid:,} valid, {failed:,} failed; nothing was sent")
    return Outcome(Tally(failed=failed), errors_path=options.errors if failed else None)


def _errors_file(options: Options, plan: Plan) -> ErrorsFile | None:
    if options.errors is None:
        return None
    return ErrorsFile(
        options.errors,
        fmt=plan.facts.format,
        header=plan.mapping.header if plan.mapping else (),
        delimiter=plan.source.delimiter,
        bom=plan.facts.bom,
    )
