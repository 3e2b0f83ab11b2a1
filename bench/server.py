"""The real server as a subprocess: `audience serve --workers N`, its workspace and API key."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

SECRET_KEY = "bench-secret-key-not-for-production"
AUDIENCE = Path(sys.executable).with_name("audience")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(database_url: str, *args: str) -> str:
    """Run the `audience` command against the database; its stdout."""
    result = subprocess.run(
        [str(AUDIENCE), *args],
        env=_env(database_url),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"audience {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def create_workspace(database_url: str, workspace_id: str) -> str:
    """Create the workspace and an all-permissions key; returns the key."""
    cli(database_url, "workspace", "create", workspace_id, "--name", f"Bench {workspace_id}")
    out = cli(database_url, "key", "create", workspace_id, "--name", "bench")
    return out.strip().splitlines()[-1].strip()


def _env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["AUDIENCE_DATABASE_URL"] = database_url
    env["AUDIENCE_SECRET_KEY"] = SECRET_KEY
    return env


class Server:
    """`audience serve` on a free loopback port; a context manager that stops it."""

    def __init__(self, database_url: str, log_path: Path, workers: int = 2) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.workers = workers
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        command = [str(AUDIENCE), "serve", "--workers", str(self.workers), "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, env=_env(self.database_url), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=5) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited at start; see {self.log_path}")
                try:
                    ready = client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    ready = False
                if ready and len(self.worker_pids()) == self.workers:
                    break
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"server not ready after {timeout}s; see {self.log_path}")
                time.sleep(0.1)
            # Let every worker finish its start-up (the first request warms imports).
            for _ in range(4 * self.workers):
                client.get("/healthz")

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children of `audience serve` running spawn_main)."""
        if self.process is None:
            return []
        pids = []
        for child in _children(self.process.pid):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                pids.append(child)
        return pids

    def stop(self, timeout: float = 20.0) -> None:
        """SIGINT to `audience serve` (uvicorn stops its workers); SIGKILL if it hangs."""
        process = self.process
        if process is None:
            return
        workers = self.worker_pids()
        self.process = None
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in workers:
                _kill(pid)
            process.kill()
            process.wait()

    def log_problems(self) -> list[str]:
        """Lines of the server log that speak of errors (tracebacks, 500s)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        markers = ("Traceback", "ERROR", "Exception", " 500 ")
        return [line for line in lines if any(m in line for m in markers)]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB, read from /proc."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out
