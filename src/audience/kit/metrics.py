"""Prometheus metrics of a server process (served at /metrics when AUDIENCE_METRICS=true).

`audience serve` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before its workers start,
so that every worker writes its samples there and /metrics, answered by any worker, adds them
up (prometheus-client's multiprocess mode). No label ever holds a workspace id, a key or an
email: labels are routes, methods, statuses, actions and limit names.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
#: Set before prometheus_client was first imported in this process: samples go to files.
MULTIPROCESS = bool(os.environ.get(MULTIPROC_DIR))

REQUESTS = Counter(
    "audience_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "audience_http_request_duration_seconds",
    "Time from a request's arrival to its answer.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
CONTACTS_WRITTEN = Counter(
    "audience_contacts_written_total",
    "Contacts written by imports and upserts, by action.",
    ["action"],
)
ROWS_REJECTED = Counter(
    "audience_import_rows_rejected_total", "Contacts of an import answered with an error."
)
IMPORT_JOBS = Counter("audience_import_jobs_total", "Import jobs finished, by status.", ["status"])
IMPORT_JOB_ROWS = Counter("audience_import_job_rows_total", "Rows of files imported by jobs.")
REFUSED = Counter(
    "audience_requests_refused_total",
    "Requests refused by a limit (header size, timeouts, concurrency, body size, database).",
    ["limit"],
)
POOL_IN_USE = Gauge(
    "audience_db_pool_connections_in_use",
    "Database connections checked out of the pool.",
    multiprocess_mode="livesum",
)
POOL_WAITS = Counter(
    "audience_db_pool_waits_total", "Connections that could not be had from the pool in time."
)


def exposition() -> tuple[bytes, str]:
    """The text format of every worker's samples (of this process's alone when it serves
    by itself), and its content type."""
    if not MULTIPROCESS:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
