"""Concurrent clients: several threads, each with its own httpx client and its own emails,
send their batches at once; the aggregate rate is contacts over the wall time of all."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from bench.cases import Load
from bench.datasets import Dataset
from bench.paths import Bodies, check_answer, encode, source
from bench.results import LoadRun

_JSON = {"Content-Type": "application/json"}


def share(dataset: Dataset, load: Load, batches: int) -> list[Bodies]:
    """Each client's request bodies: disjoint slices of the dataset, in order."""
    per_client = batches * load.batch
    contacts = source(dataset, load.single)
    return [
        encode(contacts[i * per_client : (i + 1) * per_client], load.batch, lists=False)
        for i in range(load.clients)
    ]


@dataclass
class _Client:
    """What one client thread saw, and where it sends."""

    url: str
    bodies: Bodies
    failures: int = 0
    problems: list[str] = field(default_factory=list)


def run_load(base_urls: Sequence[str], key: str, load: Load, shares: Sequence[Bodies]) -> LoadRun:
    """Release every client at once; wall time until the last answer. Client i sends to
    base_urls[i mod n] (several hosts sharing the database; one URL: every client to it)."""
    clients = [_Client(base_urls[i % len(base_urls)], bodies) for i, bodies in enumerate(shares)]
    hosts = len(set(base_urls))
    start = threading.Barrier(len(clients) + 1)
    threads = [
        threading.Thread(target=_send, args=(key, load, c, start, hosts > 1)) for c in clients
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return LoadRun(
        wall=wall,
        contacts=sum(n for c in clients for _, n in c.bodies),
        requests=sum(len(c.bodies) for c in clients),
        failures=sum(c.failures for c in clients),
        problems=[p for c in clients for p in c.problems],
    )


def _send(key: str, load: Load, client: _Client, start: threading.Barrier, named: bool) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    what = f"{load.label} via {client.url}" if named else load.label
    with httpx.Client(base_url=client.url, timeout=600, headers=headers) as http:
        http.get("/healthz")  # the connection is open before the clock starts
        start.wait()
        for body, count in client.bodies:
            try:
                response = http.post("/api/contacts.import", content=body, headers=_JSON)
            except httpx.HTTPError as exc:
                client.failures += 1
                client.problems.append(f"{what}: {type(exc).__name__}: {exc}")
                continue
            client.failures += response.status_code != 200
            client.problems += check_answer(response, count, load.kind, what)
