"""Planner statistics that keep up with imports (PostgreSQL).

Every statement that joins a batch to stored rows looks them up by primary key whatever the
statistics say (contacts/statements.py; tests/db/test_plans.py checks the plans), but other
queries (searches, counts, the console's filters) plan by the statistics, and autovacuum
may take a minute or more to notice that an import grew a table from nothing to a million
rows. So a process checks, every AUDIENCE_STATISTICS_CHECK_SECONDS, whether the rows
changed since a table's last analysis outnumber what its statistics know of (and are at
least MIN_CHANGED), and analyses it then. The check is one catalogue query; ANALYZE reads a
bounded sample (default_statistics_target: 30,000 rows) however large the table; one
process at a time does it (an advisory lock), never inside a request's transaction.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine, text

log = logging.getLogger("audience.db")

#: The tables imports grow.
TABLES = ("contacts", "contact_lists")
#: Fewer changed rows than this never trigger an analysis (autovacuum's business).
MIN_CHANGED = 10_000
_LOCK_KEY = 0x61756469  # "audi": the advisory lock of the analysis, one process at a time

_STALE = text(
    """
    SELECT s.relname
    FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
    WHERE s.relname = ANY(:tables) AND s.schemaname = current_schema()
      AND s.n_mod_since_analyze >= :min_changed
      AND s.n_mod_since_analyze > greatest(c.reltuples, 0)
    ORDER BY s.relname
    """
)


def refresh(engine: Engine) -> list[str]:
    """Analyse the tables whose statistics an import outgrew; the tables analysed."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_KEY}).scalar():
            conn.rollback()
            return []
        try:
            stale = list(
                conn.execute(_STALE, {"tables": list(TABLES), "min_changed": MIN_CHANGED}).scalars()
            )
            conn.commit()
            for table in stale:  # names from TABLES only, never from input
                conn.execute(text(f'ANALYZE "{table}"'))
                conn.commit()
                log.info("statistics: analysed %s (an import outgrew them)", table)
            return stale
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
            conn.commit()


class StatisticsKeeper:
    """A thread that calls refresh() every `seconds` until stopped."""

    def __init__(self, engine: Engine, seconds: float) -> None:
        self.engine = engine
        self.seconds = seconds
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="statistics", daemon=True)

    def start(self) -> None:
        if self.engine.dialect.name == "postgresql":
            self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def _run(self) -> None:
        while not self.stopping.wait(self.seconds):
            try:
                refresh(self.engine)
            except Exception:  # the database is away or busy: next time
                log.warning("statistics: check failed", exc_info=True)
