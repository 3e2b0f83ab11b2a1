"""The worker pins glibc's mmap threshold (peak RSS is measured by the benchmark, not here)."""

from __future__ import annotations

import platform
import sys

import pytest

from audience.kit.memory import return_large_buffers_to_the_os

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_the_mmap_threshold_is_pinned_on_glibc() -> None:
    assert return_large_buffers_to_the_os() is True


@pytest.mark.skipif(GLIBC, reason="off glibc only")
def test_elsewhere_it_does_nothing() -> None:
    assert return_large_buffers_to_the_os() is False
