"""Contacts: the import (docs/import.md) and the routes around it."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from threading import Event

import msgspec
from sqlalchemy import Connection

from audience.api_keys import service as api_keys
from audience.api_keys.schemas import Caller, Permission
from audience.contacts.bulk import Applied, BulkWriter, Prepared, field_names, list_status_after
from audience.contacts.repository import ContactRepository
from audience.contacts.schemas import (
    BulkAction,
    BulkOutcome,
    Contact,
    ContactListQuery,
    ContactSearch,
    ImportAnswer,
    ImportLimits,
    ImportRequest,
    ListOutcome,
    Membership,
    Operation,
    SearchPage,
    Selection,
    Summary,
)
from audience.contacts.validation import (
    ContactBatch,
    ContactError,
    Decoded,
    check_rows,
    decode_contacts,
    normalize_email,
    own_list_status,
    validate_batch,
)
from audience.db.models import MembershipStatus
from audience.errors import BadRequest, NotFound
from audience.kit import metrics
from audience.kit.clock import utcnow
from audience.kit.gil import hand_over_sooner
from audience.kit.pagination import decode_cursor, encode_cursor
from audience.lists import service as lists

LISTS_WRITE_REQUIRED = "write access to lists required when subscribe_to_lists is provided"
TOO_MANY_MEMBERSHIPS = "too many memberships in one request (contacts × lists > {})"  # noqa: RUF001


def import_contacts(
    conn: Connection, *, caller: Caller, request: ImportRequest, limits: ImportLimits
) -> ImportAnswer:
    """Create or update every valid contact, in input order, in the caller's transaction.

    The request-level rules run first, in the documented order; the contacts' emails are
    then read and sorted, and the contacts decoded, checked and written a part (an email
    range) at a time: while the database writes one part, Python decodes and checks the
    next. Rows are locked in the order every write shares: the contacts by email, then the
    memberships by (email, list).
    A dry run does all of it in a savepoint that is rolled back: the same answer, nothing
    written.
    """
    _check_import(caller, request, limits)
    decoded = decode_contacts(request.contacts)
    decoded.merge = request.merge  # the contacts' input digests depend on it
    lists_wanted = _lock_lists(conn, caller.workspace_id, request.subscribe_to_lists)
    operations = [
        Operation(index, email, "error", decoded.errors.get(index))
        for index, email in enumerate(decoded.reported)
    ]
    writer = BulkWriter(conn, caller.workspace_id)
    now = utcnow()
    # The contacts that the last import of the very same input wrote, untouched since, are
    # answered unchanged without being checked or written again (not even locked: see
    # statements.pg_upsert, skip_unchanged); with lists, those of them whose memberships the
    # import would not change either (read in the same snapshot as their digests).
    stored, known = _stored(writer, decoded, lists_wanted, request.list_status)
    for i, outcomes in known.items():
        op = operations[decoded.positions[i]]
        op.action, op.changed_fields = "update", ()
        if lists_wanted:
            op.lists = list(outcomes)
    decoded = decoded.without(known.keys())
    # Where some contacts came back unchanged, others may be unchanged in other bytes: the
    # upsert then leaves those unlocked too (skip_unchanged, a read of each stored row
    # first). A batch with none is one of changes, which that read would only slow (~6-12 %
    # of a 10k update in process); its unchanged rows are locked, not written. Not with
    # lists: every contact written is locked before its memberships (one deleted meanwhile
    # would have to be created again).
    unchanged_likely = bool(known) and not lists_wanted
    written: list[ContactBatch] = []

    def write(rounds: list[Prepared]) -> Written:
        results: Written = []
        for prepared in rounds:
            batch = prepared.batch
            # A part with no stored contact has none to leave alone: no read before the write.
            skip = unchanged_likely and any(email in stored for email in batch.emails)
            applied = writer.apply(prepared, merge=request.merge, now=now, skip_unchanged=skip)
            results.append((batch, applied))
        return results

    def record(results: Written) -> None:
        for batch, applied in results:
            _record(batch, applied, operations)
            if lists_wanted:  # kept for the memberships, written after every contact
                written.append(batch)

    with _maybe_rolled_back(conn, request.dry_run):
        prepare = partial(writer.prepare, now=now)
        if writer.is_sqlite:
            refused = _in_turn(decoded, LATER_PARTS["sqlite"], prepare, write, record)
        else:
            refused = _overlapped(decoded, LATER_PARTS["postgresql"], prepare, write, record)
        for position, message in refused.items():
            operations[position].error = message
            operations[position].email = decoded.reported[position]  # as check_rows saw it
        # Every contact first, then every membership: the lock order of every write.
        for batch in written:
            _subscribe(writer, batch, operations, request, lists_wanted, now)
    if not request.dry_run:  # a dry run writes nothing: the metrics count what was written
        _count(operations)
    return ImportAnswer(operations, None, _summary(operations), request.dry_run)


#: The stored digests are first looked up for every SAMPLE_EVERY-th contact; unless one of
#: those is known (stored as the same input wrote it), the others are not looked up.
SAMPLE_EVERY = 4


def _stored(
    writer: BulkWriter, decoded: Decoded, lists: Mapping[str, bool], list_status: str
) -> tuple[dict[str, bool], dict[int, Sequence[ListOutcome]]]:
    """The contacts' emails already stored (BulkWriter.stored_digests), and the rows of
    `decoded` whose stored contact the last import of the very same input wrote, untouched
    since, and whose memberships of the `lists` (id -> double opt-in) the import would not
    change (BulkWriter.stored_memberships), each with its lists' outcomes: importing them
    again changes nothing (a re-sync of unchanged contacts). An email sent more than once
    is left to the rules of duplicates.

    A batch of new or changed contacts would pay the lookup for nothing: a sample (every
    SAMPLE_EVERY-th email) is looked up first, and the rest only if the sample found a
    known one. Known contacts the sample misses are only slower (checked and merged as
    usual; the upsert leaves the unchanged ones alone)."""
    emails = decoded.emails
    total = len(emails)
    singles = [i for i in range(total) if not i or emails[i - 1] != emails[i]]
    repeated = {emails[i] for i in range(1, total) if emails[i - 1] == emails[i]}
    list_ids = list(lists)
    memberships: dict[str, dict[str, str]] = {}  # of the contacts known, with lists

    def lookup(rows: list[int]) -> dict[str, bool]:
        chosen = [emails[i] for i in rows]
        digests = [None if emails[i] in repeated else decoded.digest(i) for i in rows]
        if not list_ids:
            return writer.stored_digests(chosen, digests)
        found, of_known = writer.stored_memberships(chosen, digests, list_ids)
        memberships.update(of_known)
        return found

    stored = lookup(singles[::SAMPLE_EVERY])
    if any(stored.values()):
        stored |= lookup([i for n, i in enumerate(singles) if n % SAMPLE_EVERY])
    if not list_ids:
        return stored, dict.fromkeys((i for i, e in enumerate(emails) if stored.get(e)), ())
    known: dict[int, Sequence[ListOutcome]] = {}
    for i, email in enumerate(emails):
        if not stored.get(email):
            continue
        try:
            target = own_list_status(decoded.raws[i]) or list_status
        except ContactError:  # check_rows reports it
            continue
        outcomes = _left_alone(memberships[email], target, lists)
        if outcomes is not None:
            known[i] = outcomes
    return stored, known


def _left_alone(
    statuses: Mapping[str, str], target: str, lists: Mapping[str, bool]
) -> list[ListOutcome] | None:
    """The outcomes of a stored contact's memberships (list id -> status) that a
    list_status of `target` leaves as they are, in the lists' order; None if it changes
    one (or the contact is not in one of the lists)."""
    outcomes: list[ListOutcome] = []
    for list_id, double_optin in lists.items():
        before = statuses.get(list_id)
        if before is None or list_status_after(before, target, double_optin=double_optin) != before:
            return None
        outcomes.append(ListOutcome(list_id, before, before))
    return outcomes


#: An import of 2 * PART_ROWS contacts or more is checked and written in parts: a first one
#: of a tenth of the contacts (at least FIRST_PART_ROWS), so that the database starts writing
#: early, then LATER_PARTS of at least PART_ROWS (10k in process on PostgreSQL: 288-317 ms
#: against 299-319 with four equal parts; 1k batches were faster unsplit; four parts after
#: the first rather than three: one part's columns less held at once). On SQLite, eight: one
#: part at a time is held, and a part costs little more than its rows.
FIRST_PART_ROWS = 250
PART_ROWS = 1_000
LATER_PARTS = {"postgresql": 4, "sqlite": 8}


#: What the write of a part answers: each of its rounds with what was applied.
Written = list[tuple[ContactBatch, Applied]]


def _parts(decoded: Decoded, later_parts: int) -> list[tuple[int, int]]:
    total = len(decoded.emails)
    if total < 2 * PART_ROWS:  # a small batch: splitting would cost it more than it saves
        return [(0, total)]
    first = max(FIRST_PART_ROWS, total // 10)
    return decoded.parts(first, max(PART_ROWS, -(-(total - first) // later_parts)))


def _in_turn(
    decoded: Decoded,
    later_parts: int,
    prepare: Callable[[ContactBatch], Prepared],
    write: Callable[[list[Prepared]], Written],
    record: Callable[[Written], None],
) -> dict[int, str]:
    """Decode, check, prepare, write and record each part in turn, on this thread: SQLite's
    way. SQLite works in this process, a little at a time: each of its steps gives up
    Python's lock, and a thread checking the next part meanwhile would make every step
    wait for it (1,125 upserts: 18 ms alone, 9.7 s beside a thread that never waits)."""
    errors: dict[int, str] = {}
    for start, stop in _parts(decoded, later_parts):
        rounds, refused = check_rows(decoded, start, stop)
        errors.update(refused)
        record(write([prepare(batch) for batch in rounds]))
    return errors


def _overlapped(
    decoded: Decoded,
    later_parts: int,
    prepare: Callable[[ContactBatch], Prepared],
    write: Callable[[list[Prepared]], Written],
    record: Callable[[Written], None],
) -> dict[int, str]:
    """Decode, check and `prepare` each part of the contacts and hand it to `write` on a
    thread of its own while the next part is decoded, checked and prepared (PostgreSQL's
    way: psycopg releases the GIL while the server works); `record` what each write answers
    on this thread, while the next part is written. The writing thread, which the import
    waits for, does little Python but the database's calls. One write at a time, in email
    order: the lock order of every import. Returns input index -> error of the contacts
    the checks refused."""
    parts = _parts(decoded, later_parts)
    if len(parts) <= 1:
        return _in_turn(decoded, later_parts, prepare, write, record)
    hand_over_sooner()
    errors: dict[int, str] = {}
    failed = Event()

    def write_unless_failed(prepared: list[Prepared]) -> Written:
        if failed.is_set():  # an earlier part failed: the import is rolled back
            return []
        try:
            return write(prepared)
        except BaseException:
            failed.set()
            raise

    # Each part is queued behind the one being written, which is then waited for: the
    # writing thread goes from one part to the next without waiting for this one, and no
    # more than two parts are held at once (one written, one queued or being checked).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-write") as writer:
        queued: deque[Future[Written]] = deque()
        for start, stop in parts:
            rounds, refused = check_rows(decoded, start, stop)
            errors.update(refused)
            queued.append(writer.submit(write_unless_failed, [prepare(b) for b in rounds]))
            if len(queued) > 1:
                record(queued.popleft().result())
        while queued:
            record(queued.popleft().result())
    return errors


def _record(batch: ContactBatch, applied: Applied, operations: list[Operation]) -> None:
    """Fill in the action and changed fields of one written round's operations."""
    rows = zip(batch.positions, applied.created, applied.changed, strict=True)
    for position, created, mask in rows:
        op = operations[position]
        op.action = "create" if created else "update"
        op.changed_fields = field_names(mask)


def _subscribe(
    writer: BulkWriter,
    batch: ContactBatch,
    operations: list[Operation],
    request: ImportRequest,
    lists_wanted: dict[str, bool],
    now: datetime,
) -> None:
    """Subscribe one round of contacts to the lists and fill in their operations' lists."""
    targets = [own or request.list_status for own in batch.list_statuses]
    outcomes = writer.subscribe(batch.emails, targets, lists_wanted, now)
    for position, outcome in zip(batch.positions, outcomes, strict=True):
        operations[position].lists = outcome


def _summary(operations: Sequence[Operation]) -> Summary:
    summary = Summary()
    for op in operations:
        if op.action == "create":
            summary.created += 1
        elif op.action == "error":
            summary.errors += 1
        elif op.changed_fields or any(o.status != o.previous_status for o in op.lists or ()):
            summary.updated += 1
        else:
            summary.unchanged += 1
    return summary


@contextmanager
def _maybe_rolled_back(conn: Connection, dry_run: bool) -> Iterator[None]:
    """For a dry run, a savepoint whose work is undone at the end (locks included)."""
    if not dry_run:
        yield
        return
    savepoint = conn.begin_nested()
    try:
        yield
    finally:
        savepoint.rollback()


def _count(operations: list[Operation]) -> None:
    """The metrics of an import: contacts written by action, contacts rejected."""
    actions = Counter(op.action for op in operations)
    for action in ("create", "update"):
        if actions[action]:
            metrics.CONTACTS_WRITTEN.labels(action).inc(actions[action])
    if actions["error"]:
        metrics.ROWS_REJECTED.inc(actions["error"])


def _check_import(caller: Caller, request: ImportRequest, limits: ImportLimits) -> None:
    """The request-level rules that need no database, in their documented order."""
    contacts, lists_given = len(request.contacts), len(request.subscribe_to_lists)
    if contacts > limits.max_contacts:
        raise BadRequest(f"contacts array exceeds the maximum of {limits.max_contacts}")
    if lists_given > limits.max_lists:
        raise BadRequest(f"subscribe_to_lists exceeds the maximum of {limits.max_lists}")
    if contacts * lists_given > limits.max_memberships:
        raise BadRequest(TOO_MANY_MEMBERSHIPS.format(limits.max_memberships))
    if request.subscribe_to_lists:
        api_keys.require(caller, Permission.LISTS_WRITE, LISTS_WRITE_REQUIRED, error=BadRequest)
    api_keys.require(caller, Permission.CONTACTS_WRITE, error=BadRequest)


def upsert_contact(
    conn: Connection, *, workspace_id: str, contact: msgspec.Raw, merge: str = "overwrite"
) -> Operation:
    """One contact by the same rules as one import row; an invalid one is a 400."""
    checked = validate_batch([contact])
    if checked.errors:
        raise BadRequest(checked.errors[0])
    (batch,) = checked.rounds
    applied = BulkWriter(conn, workspace_id).apply(batch, merge=merge, now=utcnow())
    action = "create" if applied.created[0] else "update"
    operation = Operation(0, checked.emails[0], action, None, field_names(applied.changed[0]))
    _count([operation])
    return operation


def get_by_email(
    conn: Connection, *, workspace_id: str, email: str
) -> tuple[Contact, list[Membership]]:
    """A contact with its memberships, by email normalised as on import."""
    normalized = _lookup_email(email)
    repo = ContactRepository(conn, workspace_id)
    found = repo.get(normalized)
    if found is None:
        raise NotFound(f"contact not found: {normalized}")
    return found, repo.memberships([normalized]).get(normalized, [])


def get_by_external_id(
    conn: Connection, *, workspace_id: str, external_id: str
) -> tuple[Contact, list[Membership]]:
    """The contact carrying this external_id (the first by email if several do)."""
    repo = ContactRepository(conn, workspace_id)
    found = repo.get_by_external_id(external_id.strip())
    if found is None:
        raise NotFound(f"contact not found with external_id: {external_id}")
    return found, repo.memberships([found.email]).get(found.email, [])


def list_contacts(
    conn: Connection, *, workspace_id: str, query: ContactListQuery
) -> tuple[list[tuple[Contact, list[Membership] | None]], str | None]:
    """A page of contacts ordered by email, each with its memberships when asked, and the
    cursor of the next page (None at the end)."""
    repo = ContactRepository(conn, workspace_id)
    rows = repo.page(
        after=_after(query.cursor),
        limit=query.limit + 1,
        contains=query.contains(),
        list_id=query.list_id or None,
        status=query.contact_list_status,
    )
    page, more = rows[: query.limit], len(rows) > query.limit
    if not query.with_contact_lists:
        return [(c, None) for c in page], encode_cursor(page[-1].email) if more else None
    memberships = repo.memberships([c.email for c in page])
    items: list[tuple[Contact, list[Membership] | None]] = [
        (c, memberships.get(c.email, [])) for c in page
    ]
    return items, encode_cursor(page[-1].email) if more else None


def count_contacts(conn: Connection, *, workspace_id: str) -> int:
    """How many contacts the workspace holds."""
    return ContactRepository(conn, workspace_id).count()


def delete_contact(conn: Connection, *, workspace_id: str, email: str) -> None:
    """Delete a contact and its memberships."""
    normalized = _lookup_email(email)
    if not ContactRepository(conn, workspace_id).delete(normalized):
        raise NotFound(f"contact not found: {normalized}")


def update_membership_status(
    conn: Connection, *, workspace_id: str, email: str, list_id: str, status: MembershipStatus
) -> None:
    """Set the status of an existing membership."""
    normalized = _lookup_email(email)
    repo = ContactRepository(conn, workspace_id)
    if repo.get(normalized, lock=True) is None:
        raise NotFound(f"contact not found: {normalized}")
    lists.get_list(conn, workspace_id=workspace_id, list_id=list_id)
    if repo.membership(normalized, list_id) is None:
        raise NotFound(f"contact {normalized} is not in list {list_id}")
    repo.set_status(normalized, list_id, status, utcnow())


def _after(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        return decode_cursor(cursor)
    except ValueError:
        raise BadRequest("cursor: invalid cursor") from None


def _lock_lists(conn: Connection, workspace_id: str, list_ids: Sequence[str]) -> dict[str, bool]:
    """{list id: is double opt-in}, in request order, each locked against deletion;
    `list not found: <id>` for an unknown list."""
    if not list_ids:
        return {}
    return lists.lock_for_subscribe(conn, workspace_id=workspace_id, list_ids=list_ids)


def _lookup_email(email: str) -> str:
    try:
        return normalize_email(email)
    except ContactError as exc:
        raise BadRequest(exc.message) from None


# --- the console: search, selections, bulk changes ---------------------------------------------

#: The permission each bulk change needs: the one the API asks for the same change
#: (contactLists.updateStatus, contacts.delete).
BULK_PERMISSIONS: dict[BulkAction, Permission] = {
    "add_to_list": Permission.LISTS_WRITE,
    "remove_from_list": Permission.LISTS_WRITE,
    "unsubscribe": Permission.LISTS_WRITE,
    "delete": Permission.CONTACTS_WRITE,
}


def search_contacts(conn: Connection, *, workspace_id: str, search: ContactSearch) -> SearchPage:
    """A page of the contacts a filter matches, by email, with their memberships, the total
    that match and the cursors of the next and previous pages."""
    repo = ContactRepository(conn, workspace_id)
    after, before = _after(search.after), _after(search.before)
    rows = repo.search_page(search.filter, after=after, before=before, limit=search.limit + 1)
    more = len(rows) > search.limit
    page = rows[: search.limit]
    if before is not None:
        page.reverse()
        next_cursor = encode_cursor(page[-1].email) if page else search.before
        previous_cursor = encode_cursor(page[0].email) if more else None
    else:
        next_cursor = encode_cursor(page[-1].email) if more else None
        previous_cursor = (
            None if after is None else (encode_cursor(page[0].email) if page else search.after)
        )
    memberships = repo.memberships([c.email for c in page])
    items = [(c, memberships.get(c.email, [])) for c in page]
    total = repo.count_matching(search.filter)
    return SearchPage(items, total, next_cursor, previous_cursor)


def count_selected(
    conn: Connection, *, caller: Caller, selection: Selection, action: BulkAction
) -> int:
    """How many stored contacts a bulk change would apply to (what its confirmation names),
    for a caller allowed to make it."""
    api_keys.require(caller, BULK_PERMISSIONS[action])
    repo = ContactRepository(conn, caller.workspace_id)
    if selection.emails is None:
        return repo.count_matching(selection.filter)
    return repo.count_among(selection.emails)


def bulk_change(
    conn: Connection,
    *,
    caller: Caller,
    selection: Selection,
    action: BulkAction,
    list_id: str | None = None,
) -> BulkOutcome:
    """Apply one change to every selected contact, with the permission the API asks for it.

    add_to_list adds the contacts not in the list (active, or pending on a double opt-in list:
    as an import subscribes them); remove_from_list deletes their memberships; unsubscribe
    sets active and pending memberships to unsubscribed; delete deletes the contacts. Locks
    follow the order every write shares: the list, then the contacts by email.
    """
    api_keys.require(caller, BULK_PERMISSIONS[action])
    repo = ContactRepository(conn, caller.workspace_id)
    if action == "delete":
        emails = repo.lock_selected(selection.emails, selection.filter)
        return BulkOutcome(action, len(emails), repo.delete_many(emails))
    if not list_id:
        raise BadRequest("list_id is required")
    double_optin = _lock_lists(conn, caller.workspace_id, [list_id])[list_id]
    emails = repo.lock_selected(selection.emails, selection.filter)
    now = utcnow()
    if action == "add_to_list":
        status = MembershipStatus.PENDING if double_optin else MembershipStatus.ACTIVE
        changed = repo.add_memberships(emails, list_id, status, now)
    elif action == "remove_from_list":
        changed = repo.remove_memberships(emails, list_id)
    else:
        changed = repo.unsubscribe_memberships(emails, list_id, now)
    return BulkOutcome(action, len(emails), changed, list_id)


def edit_contact(
    conn: Connection, *, workspace_id: str, contact: msgspec.Raw
) -> tuple[Contact, list[Membership]]:
    """Save one contact by the rules of contacts.upsert, and read it back as stored."""
    operation = upsert_contact(conn, workspace_id=workspace_id, contact=contact)
    return get_by_email(conn, workspace_id=workspace_id, email=operation.email)
