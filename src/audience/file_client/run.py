"""One import run: send the file in batches, report, and remember how far it got."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx

from audience.contact_files.reader import FileError, FileFacts
from audience.file_client.batches import Batch, Dispatcher, Item, make_batches
from audience.file_client.dry_run import dry_run
from audience.file_client.errors_file import ErrorsFile
from audience.file_client.options import EXIT_INTERRUPTED, Abort, Options, Outcome, Ui
from audience.file_client.plan import Plan, errors_path, fingerprint, open_plan, unmapped_note
from audience.file_client.progress import ProgressView, Tally, summary_line
from audience.file_client.resume import State, load_state, remove_state, save_state, state_path_for
from audience.file_client.sender import (
    UNEXPECTED,
    Operation,
    Sender,
    Stopped,
    build_http_client,
    check_url,
    plain_http_warning,
)
from audience.file_client.server_side import run_server_side
from audience.file_client.untrusted import describe

# --- a real run ---------------------------------------------------------------------------------


class Run:
    """Settles batches: counts, errors file, resume state and progress."""

    def __init__(
        self, errors: ErrorsFile, state: State, state_path: Path, view: ProgressView
    ) -> None:
        self.errors, self.state, self.state_path, self.view = errors, state, state_path, view
        self.earlier = Tally(state.created, state.updated, state.failed)
        self.tally = Tally()

    def settle(self, batch: Batch, operations: list[Operation]) -> None:
        """Record a finished batch, in file order."""
        answers = iter(operations)
        for item in batch.items:
            if item.contact is None:
                self._fail(item, item.reason or "not sent")
                continue
            op = next(answers)
            if op.action == "create":
                self.tally.created += 1
            elif op.action == "update":
                self.tally.updated += 1
            elif op.action == "error":
                self._fail(item, op.error or "rejected by the server")
            else:  # the sender lets no other action through; never count one as imported
                self._fail(item, f"{UNEXPECTED}: action {describe(op.action)}")
        self._save(batch.end)
        self.view.update(batch.end, self.tally)

    def _fail(self, item: Item, reason: str) -> None:
        self.tally.failed += 1
        self.errors.write(item.line, item.email, reason, item.raw)

    def _save(self, rows_done: int) -> None:
        state, earlier, tally = self.state, self.earlier, self.tally
        state.rows_done = rows_done
        state.errors_bytes = self.errors.size()
        state.created = earlier.created + tally.created
        state.updated = earlier.updated + tally.updated
        state.failed = earlier.failed + tally.failed
        save_state(self.state_path, state)


def run_import(options: Options, ui: Ui, http: httpx.Client | None = None) -> Outcome:
    """Import the file; raises Abort for usage, file and connection errors."""
    if options.server_side:
        return run_server_side(options, ui, http)
    with open_plan(options) as plan:
        if options.dry_run:
            return dry_run(options, plan, ui)
        if not options.key:
            raise Abort("no API key: pass --key or set AUDIENCE_API_KEY")
        problem = check_url(options.url)
        if problem:
            raise Abort(problem)
        warning = plain_http_warning(options.url)
        if warning:
            ui.note(warning)
        note = unmapped_note(plan)
        if note:
            ui.note(note)
        return _send_all(options, plan, ui, http)


def _resume_state(options: Options, facts: FileFacts, state_path: Path, ui: Ui) -> State:
    """The state to start from: the saved one with --resume when it matches, else a fresh one."""
    fresh = State(sha256=facts.sha256, options=fingerprint(options, facts))
    saved = load_state(state_path)
    if not options.resume:
        if saved is not None and saved.rows_done:
            ui.note(f"starting over; an interrupted run's progress is discarded ({state_path})")
        return fresh
    if saved is None:
        ui.note(f"nothing to resume ({state_path} not found): starting from the first row")
        return fresh
    if saved.sha256 != facts.sha256:
        ui.note("the file changed since the interrupted run: starting from the first row")
        return fresh
    if saved.options != fresh.options:
        ui.note("the interrupted run had other options: starting from the first row")
        return fresh
    ui.note(f"resuming after row {saved.rows_done:,} of an earlier run")
    return saved


def _send_all(options: Options, plan: Plan, ui: Ui, http: httpx.Client | None) -> Outcome:
    facts = plan.facts
    path = errors_path(options, facts)
    state_path = state_path_for(path)
    state = _resume_state(options, facts, state_path, ui)
    skipped = state.rows_done
    errors = ErrorsFile(
        path,
        fmt=facts.format,
        header=plan.mapping.header if plan.mapping else (),
        delimiter=plan.source.delimiter,
        bom=facts.bom,
        keep_bytes=state.errors_bytes,
    )
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        save_state(state_path, state)
    except OSError as exc:
        raise Abort(f"cannot write beside the errors file: {exc}") from None
    started = time.monotonic()
    view = ui.progress(facts.records or None, skipped)
    run = Run(errors, state, state_path, view)
    try:
        _dispatch(options, plan, run, ui, http)
    finally:
        view.close()
        errors.close()
    remove_state(state_path)
    failed_before = run.earlier.failed
    kept = errors.count or failed_before
    outcome = Outcome(run.tally, skipped, failed_before, path if kept else None)
    _report(ui, outcome, time.monotonic() - started, plan)
    return outcome


def _dispatch(options: Options, plan: Plan, run: Run, ui: Ui, http: httpx.Client | None) -> None:
    with ExitStack() as stack:
        client = http or stack.enter_context(build_http_client(options.concurrency))
        sender = Sender(
            client,
            options.url,
            options.key or "",
            options.workspace,
            options.lists,
            list_status=options.list_status,
            merge=options.merge,
            retries=options.retries,
            backoff=options.backoff,
            on_retry=ui.note,
            timeout=options.timeout,
        )
        pool = ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="import")
        dispatcher = Dispatcher(
            pool, lambda b: sender.send(b.contacts), run.settle, concurrency=options.concurrency
        )
        batches = make_batches(
            plan.source.rows(),
            plan.prepare,
            size=options.batch_size,
            skip=run.state.rows_done,
        )
        try:
            for batch in batches:
                dispatcher.submit(batch)
            dispatcher.drain()
        except BaseException as exc:
            sender.stop.set()
            dispatcher.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise _abort(exc, run) from None
        pool.shutdown()


def _abort(exc: BaseException, run: Run) -> BaseException:
    """What the user is told when a run stops early; the state file allows --resume."""
    rows = run.state.rows_done
    done = f" ({rows:,} rows done; run again with --resume to continue)" if rows else ""
    if isinstance(exc, Stopped):
        return Abort(exc.message + done)
    if isinstance(exc, KeyboardInterrupt):
        return Abort("interrupted" + done, EXIT_INTERRUPTED)
    if isinstance(exc, FileError | OSError):
        return Abort(f"{exc}{done}")
    return exc


def _report(ui: Ui, outcome: Outcome, elapsed: float, plan: Plan) -> None:
    if plan.unknown:
        ui.note(f"keys not imported (no such field): {', '.join(sorted(plan.unknown))}")
    if outcome.errors_path is not None:
        ui.note(f"failed rows, with their reasons: {outcome.errors_path}")
    if outcome.earlier_failed:
        ui.note(f"{outcome.earlier_failed:,} rows failed in the interrupted run (same file)")
    ui.out(summary_line(outcome.tally, outcome.skipped, elapsed))
