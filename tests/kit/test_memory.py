"""A server worker's process tuning: glibc's mmap threshold pinned (peak RSS is measured by the
benchmark, not here), the GIL switch interval."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from audience.kit.memory import return_large_buffers_to_the_os

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_the_mmap_threshold_is_pinned_on_glibc() -> None:
    assert return_large_buffers_to_the_os() is True


@pytest.mark.skipif(GLIBC, reason="off glibc only")
def test_elsewhere_it_does_nothing() -> None:
    assert return_large_buffers_to_the_os() is False


def test_a_server_worker_hands_the_gil_over_within_a_millisecond(tmp_path: Path) -> None:
    """worker_app tunes its process (audience.kit.gil.SWITCH_INTERVAL): an import's writer
    thread waits at most 1 ms for the GIL behind the checks of the next part."""
    probe = (
        "import gc, sys; from audience.app import worker_app; worker_app(); "
        "print(sys.getswitchinterval(), gc.get_freeze_count() > 0)"
    )
    env = {**os.environ, "AUDIENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["0.001", "True"]
