"""The naive path: the same contacts sent one per request to POST /api/contacts.upsert."""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx
import msgspec

from bench.data import Contact


def naive_rate(client: httpx.Client, workspace_id: str, sample: Sequence[Contact]) -> float:
    """Contacts per second, one request at a time over one keep-alive connection."""
    bodies = [
        msgspec.json.encode({"workspace_id": workspace_id, "contact": c.wire()}) for c in sample
    ]
    headers = {"Content-Type": "application/json"}
    start = time.perf_counter()
    for body in bodies:
        response = client.post("/api/contacts.upsert", content=body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(
                f"contacts.upsert answered {response.status_code}: {response.text[:300]}"
            )
    return len(bodies) / (time.perf_counter() - start)
