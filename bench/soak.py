"""Soak run of the reliability scenarios, longer than CI can afford.

    .venv/bin/python -m bench.soak --database-url postgresql://postgres@127.0.0.1:5432/soak \\
        --workers 4 --rounds 50 --kill

Each round fires THREADS x REQUESTS overlapping imports at `audience serve` (the scenario of
tests/reliability/test_concurrency.py, on emails of its own); with --kill the server is also
killed with SIGKILL at a random moment of the round and restarted. After every round it checks
that no contact is torn (all fields from one request), that every contact was written by a
request that sent it, that each contact has exactly one membership, and, when nothing was
killed, that every request answered 200 and that one serial order explains the final state.
"""

from __future__ import annotations

import argparse
import graphlib
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from audience.api_keys import service as api_keys
from audience.api_keys.schemas import ALL_PERMISSIONS
from audience.config import Settings
from audience.db.engine import build_engine
from audience.db.migrate import upgrade
from audience.db.models import contact_lists, contacts
from audience.db.session import transaction
from audience.kit.server_process import ServerProcess
from audience.workspaces import service as workspaces
from bench.server import passed_env

SECRET = "soak-secret-key-not-for-production-use"


def setup(engine: Engine) -> tuple[str, str]:
    """A fresh workspace and a key with every permission."""
    workspace = f"soak_{random.randrange(16**8):08x}"
    with transaction(engine, write=True) as conn:
        workspaces.create_workspace(conn, workspace_id=workspace, name="Soak")
        key = api_keys.create_key(
            conn,
            workspace_id=workspace,
            name="soak",
            permissions=ALL_PERMISSIONS,
            secret_key=SECRET,
        ).key
    return workspace, key


def run_round(
    args: argparse.Namespace,
    server: ServerProcess,
    engine: Engine,
    workspace: str,
    key: str,
    number: int,
) -> dict[str, Any]:
    """One round of overlapping imports (and maybe a kill -9), then its checks."""
    rng = random.Random(number)
    pool = [f"r{number}e{i}@example.com" for i in range(args.pool)]
    plan = {
        f"t{t}r{r}": rng.sample(pool, args.batch)
        for t in range(args.threads)
        for r in range(args.requests)
    }
    cases = {rid: [rng.random() < 0.2 for _ in emails] for rid, emails in plan.items()}
    answers: dict[str, int | str] = {}
    headers = {"Authorization": f"Bearer {key}"}

    def client(thread: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=300) as http:
            for r in range(args.requests):
                rid = f"t{thread}r{r}"
                body = {
                    "workspace_id": workspace,
                    "contacts": [
                        {
                            "email": e.upper() if upper else e,
                            "first_name": rid,
                            "custom_string_1": rid,
                        }
                        for e, upper in zip(plan[rid], cases[rid], strict=True)
                    ],
                    "subscribe_to_lists": ["news"],
                }
                try:
                    response = http.post("/api/contacts.import", headers=headers, json=body)
                    answers[rid] = response.status_code
                except httpx.HTTPError as exc:
                    answers[rid] = type(exc).__name__

    threads = [threading.Thread(target=client, args=(t,)) for t in range(args.threads)]
    killed = False
    for thread in threads:
        thread.start()
    if args.kill:
        time.sleep(rng.uniform(0, args.kill_window))
        server.kill()
        killed = True
    for thread in threads:
        thread.join(timeout=600)
    if any(t.is_alive() for t in threads):
        raise SystemExit(f"round {number}: requests still waiting after 600s (deadlock?)")
    if killed:
        server.start()
    return verify(engine, workspace, plan, answers, killed, number)


def verify(
    engine: Engine,
    workspace: str,
    plan: dict[str, list[str]],
    answers: dict[str, int | str],
    killed: bool,
    number: int,
) -> dict[str, Any]:
    touched: dict[str, set[str]] = defaultdict(set)
    for rid, emails in plan.items():
        for email in emails:
            touched[email].add(rid)
    prefix = f"r{number}e"
    with engine.connect() as conn:
        rows = conn.execute(
            select(contacts.c.email, contacts.c.first_name, contacts.c.custom_string_1).where(
                contacts.c.workspace_id == workspace, contacts.c.email.like(f"{prefix}%")
            )
        ).all()
        members = conn.execute(
            select(contact_lists.c.email, func.count())
            .where(contact_lists.c.workspace_id == workspace)
            .where(contact_lists.c.email.like(f"{prefix}%"))
            .group_by(contact_lists.c.email)
        ).all()
    problems = []
    order: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for row in rows:
        if row.first_name != row.custom_string_1:
            problems.append(f"torn {row.email}: {row.first_name} / {row.custom_string_1}")
        if row.first_name not in touched[row.email]:
            problems.append(f"{row.email} written by {row.first_name}, which never sent it")
        for other in touched[row.email] - {row.first_name}:
            order.add(row.first_name, other)
    if any(n != 1 for _, n in members) or len(members) != len(rows):
        problems.append("memberships do not match contacts one to one")
    if not killed:
        if set(answers.values()) != {200}:
            problems.append(f"answers {sorted(map(str, set(answers.values())))}")
        if len(rows) != len(touched):
            problems.append(f"{len(rows)} contacts for {len(touched)} emails")
        try:
            list(order.static_order())
        except graphlib.CycleError:
            problems.append("no serial order explains the final state")
    if problems:
        raise SystemExit(f"round {number}: " + "; ".join(problems[:10]))
    return {"contacts": len(rows), "answers": dict(Counter(map(str, answers.values())))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--pool", type=int, default=400)
    parser.add_argument("--batch", type=int, default=300)
    parser.add_argument("--kill", action="store_true", help="kill -9 the server every round")
    parser.add_argument("--kill-window", type=float, default=2.0, help="seconds")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="audience-soak-"))
    database_url = args.database_url or f"sqlite:///{scratch / 'soak.db'}"
    engine = build_engine(Settings(database_url=database_url, secret_key=SECRET))
    upgrade(engine)
    workspace, key = setup(engine)
    server = ServerProcess(
        database_url,
        scratch / "server.log",
        workers=args.workers,
        secret_key=SECRET,
        env={**passed_env(), "AUDIENCE_AUTO_MIGRATE": "true"},
    )
    server.start()
    headers = {"Authorization": f"Bearer {key}"}
    body = {"workspace_id": workspace, "id": "news", "name": "News"}
    httpx.post(f"{server.base_url}/api/lists.create", headers=headers, json=body).raise_for_status()
    started = time.monotonic()
    try:
        for number in range(args.rounds):
            summary = run_round(args, server, engine, workspace, key, number)
            print(f"round {number}: ok {summary}", flush=True)
    finally:
        server.stop()
        engine.dispose()
    print(
        f"{args.rounds} rounds in {time.monotonic() - started:.0f}s; server log {server.log_path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
