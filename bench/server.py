"""The benchmark's server: `audience serve` (audience.kit.server_process), its workspace,
key and lists, and the memory of its workers."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import httpx

from audience.db.models import MembershipStatus
from audience.kit.server_process import ServerProcess, memory_kib, run_cli

SECRET_KEY = "bench-secret-key-not-for-production"
WORKSPACE = "bench"
LISTS = {"newsletter": "Newsletter", "product_updates": "Product updates"}
#: Every list active: what `subscribe_to_lists` gives a new membership.
STATUSES = dict.fromkeys(LISTS, MembershipStatus.ACTIVE.value)
_OWN = ("AUDIENCE_DATABASE_URL", "AUDIENCE_SECRET_KEY")


def pin_source(root: Path, work_dir: Path) -> Path:
    """Copy src/audience under `work_dir` and put the copy first on every child's PYTHONPATH.

    Each dataset gets a server of its own, started minutes apart: without the copy, an edit
    of src/ in the middle of a run would change (or break) the code being measured.
    """
    copy = work_dir / "source"
    shutil.rmtree(copy, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(root / "src" / "audience", copy / "audience", ignore=ignore)
    paths = [str(copy), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    return copy


def create_workspace(database_url: str) -> str:
    """Create the workspace and an all-permissions key; returns the key."""
    name = f"Bench {WORKSPACE}"
    run_cli(database_url, "workspace", "create", WORKSPACE, "--name", name, secret_key=SECRET_KEY)
    out = run_cli(
        database_url, "key", "create", WORKSPACE, "--name", "bench", secret_key=SECRET_KEY
    ).stdout
    return out.strip().splitlines()[-1].strip()


def passed_env() -> dict[str, str]:
    """The caller's AUDIENCE_* settings (e.g. AUDIENCE_BULK_WRITE) but the database and key,
    which the helper would otherwise drop."""
    return {k: v for k, v in os.environ.items() if k.startswith("AUDIENCE_") and k not in _OWN}


def serve(database_url: str, log_path: Path, workers: int) -> ServerProcess:
    """A server (not started) on the benchmark's secret key, with the caller's settings."""
    log_path.unlink(missing_ok=True)  # the helper appends; problems are read from this run's log
    env = passed_env()
    return ServerProcess(database_url, log_path, workers=workers, secret_key=SECRET_KEY, env=env)


def create_lists(client: httpx.Client) -> None:
    """The two lists that `subscribe_to_lists` names."""
    for list_id, list_name in LISTS.items():
        body = {"workspace_id": WORKSPACE, "id": list_id, "name": list_name}
        response = client.post("/api/lists.create", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"lists.create answered {response.status_code}")


def log_problems(server: ServerProcess) -> list[str]:
    """Lines of the server log that speak of errors (tracebacks, 500s)."""
    markers = ("Traceback", "ERROR", "Exception", " 500 ")
    return [line for line in server.log().splitlines() if any(m in line for m in markers)]


def rss_kib(server: ServerProcess, key: str = "VmRSS") -> int:
    """The largest VmRSS (or VmHWM, the peak) among the workers, in KiB."""
    return max((memory_kib(pid).get(key, 0) for pid in server.worker_pids()), default=0)


def reset_peak_rss(server: ServerProcess) -> None:
    """Start each worker's VmHWM again from its current RSS (Linux: clear_refs 5)."""
    for pid in server.worker_pids():
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")
