"""`audience serve` as a child process on a free port: started, waited for, stopped.

The one helper that tests and benchmarks use to run the real server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

AUDIENCE = Path(sys.executable).with_name("audience")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def audience_env(
    database_url: str, secret_key: str | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This process's environment without any AUDIENCE_* variable, then the ones given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCE_")}
    env["AUDIENCE_DATABASE_URL"] = database_url
    if secret_key is not None:
        env["AUDIENCE_SECRET_KEY"] = secret_key
    env.update(extra or {})
    return env


def run_cli(
    database_url: str, *args: str, secret_key: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the `audience` command against a database."""
    result = subprocess.run(
        [str(AUDIENCE), *args],
        env=audience_env(database_url, secret_key),
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"audience {' '.join(args)} failed: {result.stderr.strip()}")
    return result


@dataclass
class ServerProcess:
    """`audience serve` in its own process group, so that a signal reaches every worker."""

    database_url: str
    log_path: Path
    workers: int = 1
    secret_key: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    args: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerProcess:
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
        """Start the server and return once every worker answers /healthz."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [str(AUDIENCE), "serve", "--port", str(self.port)]
        command += ["--workers", str(self.workers), *self.args]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                env=audience_env(self.database_url, self.secret_key, self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2) as client:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
                if self._healthy(client) and len(self.worker_pids()) >= self.workers:
                    break
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")
                time.sleep(0.1)
            for _ in range(4 * self.workers):  # let every worker finish its first request
                self._healthy(client)

    @staticmethod
    def _healthy(client: httpx.Client) -> bool:
        try:
            return client.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server is not running"
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        """The worker processes: the children of `audience serve` (itself, with one worker)."""
        if self.proc is None:
            return []
        if self.workers == 1:
            return [self.proc.pid]
        return [pid for pid in child_pids(self.proc.pid) if b"spawn_main" in _cmdline(pid)]

    def signal(self, sig: int) -> None:
        """Send a signal to the whole process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL to every process of the server: no cleanup, no rollback, no flush."""
        if self.proc is None:
            return
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (a graceful shutdown), SIGKILL when it takes longer than `timeout`."""
        proc = self.proc
        if proc is None:
            return None
        self.proc = None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        return proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def child_pids(pid: int) -> list[int]:
    """The direct children of a process, from /proc."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB, read from /proc."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out
