"""Facts about the machine and the source that a result depends on."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def nproc() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" (nproc {nproc()})"


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    for line in _read("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _read(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def summary() -> str:
    """CPUs, model, memory, kernel: one line."""
    return (
        f"{os.cpu_count()} CPUs (`nproc` {nproc()}), {cpu_model()}, "
        f"{memory_gib():.0f} GiB RAM, {platform.system()} {platform.release()}"
    )


def python_version() -> str:
    return f"Python {platform.python_version()}"


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=False)


def git_state() -> str:
    """The commit, and a digest of uncommitted changes in src/ if there are any."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        commit = head.stdout.decode().strip()
        dirty = _git("status", "--porcelain", "src").stdout.strip()
        digest = _git("diff", "HEAD", "--", "src").stdout if dirty else b""
    except OSError:
        return "unknown"
    if not dirty:
        return f"commit {commit}"
    short = hashlib.sha256(digest).hexdigest()[:8]
    return f"commit {commit} with uncommitted changes in src/ (diff {short})"
