"""`audience import FILE`: a client of POST /api/contacts.import for CSV and JSON Lines files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from audience.contacts.schemas import ListStatus, Merge
from audience.file_client.options import EXIT_ERROR, EXIT_INTERRUPTED, Abort, Options, Ui
from audience.file_client.progress import BarProgress, PlainProgress, ProgressView
from audience.file_client.run import run_import
from audience.file_client.sender import DEFAULT_DEADLINE
from audience.file_client.untrusted import printable

DEFAULT_URL = "http://127.0.0.1:8000"


def terminal_ui() -> Ui:
    """Results on stdout; notes, and a bar when stderr is a terminal (else plain lines)."""
    console = Console(stderr=True, highlight=False)

    def out(message: str) -> None:
        typer.echo(printable(message))

    def note(message: str) -> None:
        message = printable(message)  # server text is escaped where it is read; this is a net
        if console.is_terminal:  # printed above the progress bar, never through it
            console.print(message, markup=False, soft_wrap=True)
        else:
            typer.echo(message, err=True)

    def progress(total: int | None, start: int) -> ProgressView:
        if console.is_terminal:
            return BarProgress(console, total, start)
        return PlainProgress(note, total, start)

    return Ui(out=out, note=note, progress=progress)


#: Options of the client-side path alone: with --server-side, the server reads the file.
CLIENT_SIDE_ONLY = {
    "batch_size": "--batch-size",
    "concurrency": "--concurrency",
    "resume": "--resume",
}


def refuse_client_side_options(ctx: typer.Context) -> None:
    """--server-side with --batch-size, --concurrency or --resume: a usage error (exit 2)."""
    for name, flag in CLIENT_SIDE_ONLY.items():
        source = ctx.get_parameter_source(name)  # (typer's own click: compared by name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            raise typer.BadParameter(
                "not used with --server-side (the server reads the file in batches of its "
                "own, and resumes its job by itself after a crash)",
                ctx=ctx,
                param_hint=f"'{flag}'",
            )


def import_file(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV (UTF-8, `,` `;` or tab) or JSON Lines (.jsonl/.ndjson) file.",
        ),
    ],
    workspace: Annotated[str, typer.Option("--workspace", "-w", help="Workspace id.")],
    lists: Annotated[
        list[str] | None,
        typer.Option("--list", "-l", metavar="LIST", help="Subscribe every contact (repeat)."),
    ] = None,
    list_status: Annotated[
        ListStatus,
        typer.Option(
            "--list-status",
            help="The status of a new membership of --list (an opt-out is never revived).",
        ),
    ] = "subscribed",
    merge: Annotated[
        Merge,
        typer.Option(
            "--merge",
            help="For a contact that exists: overwrite its fields, or fill only the empty ones.",
        ),
    ] = "overwrite",
    url: Annotated[
        str, typer.Option(envvar="AUDIENCE_URL", help="The server's base URL.")
    ] = DEFAULT_URL,
    key: Annotated[
        str | None, typer.Option(envvar="AUDIENCE_API_KEY", help="API key.", show_default=False)
    ] = None,
    mappings: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="COLUMN=FIELD",
            help="Map a column (or JSON key) to a field; `COLUMN=` leaves it out (repeat).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the mapping and check rows; send nothing.")
    ] = False,
    empty_clears: Annotated[
        bool,
        typer.Option("--empty-clears", help="An empty cell clears the field (default: keeps it)."),
    ] = False,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            metavar="ZONE",
            help="The file's time zone, for date-times written without an offset "
            "(e.g. Europe/Berlin); without it such a value is refused.",
            show_default=False,
        ),
    ] = None,
    decimal_comma: Annotated[
        bool,
        typer.Option("--decimal-comma", help="Numbers are written with a decimal comma (1.234,5)."),
    ] = False,
    errors: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="Where failed rows go (default: FILE's name with .errors.csv or .errors.jsonl); "
            "a name ending in .csv gets CSV for a JSON Lines file too.",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Contacts per request.")
    ] = 1000,
    concurrency: Annotated[int, typer.Option(min=1, max=16, help="Requests in flight.")] = 2,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip what an interrupted run of this file did.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            min=1.0,
            metavar="SECONDS",
            help="Longest a request may take in all (connect, send, whole answer); "
            "then it is retried like a connection error. With --server-side: each look at "
            "the job; the upload and the error report fail after this long without progress.",
        ),
    ] = DEFAULT_DEADLINE,
    server_side: Annotated[
        bool,
        typer.Option(
            "--server-side",
            help="Upload the file as an import job that the server runs by itself, "
            "and follow it (for large files, and clients that cannot stay connected); "
            "Ctrl-C cancels the job.",
        ),
    ] = False,
) -> None:
    """Import contacts from a CSV or JSON Lines file, in batches, through the HTTP API.

    Exit status: 0 every row imported, 1 some rows failed (see the errors file),
    2 usage, file or connection error (or a server-side job that failed), 130 interrupted.
    """
    if server_side:
        refuse_client_side_options(ctx)
    options = Options(
        path=file,
        workspace=workspace,
        url=url,
        key=key,
        lists=tuple(lists or ()),
        list_status=list_status,
        merge=merge,
        mappings=tuple(mappings or ()),
        dry_run=dry_run,
        empty_clears=empty_clears,
        timezone=timezone,
        decimal_comma=decimal_comma,
        errors=errors,
        batch_size=batch_size,
        concurrency=concurrency,
        resume=resume,
        timeout=timeout,
        server_side=server_side,
    )
    ui = terminal_ui()
    try:
        outcome = run_import(options, ui)
    except Abort as exc:
        ui.note(f"error: {exc.message}")
        raise typer.Exit(exc.code) from None
    except OSError as exc:
        ui.note(f"error: {exc}")
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        ui.note("interrupted before anything was sent")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(outcome.exit_code)
