"""Keeping a worker's resident memory flat across large requests."""

from __future__ import annotations

import ctypes
import sys

#: glibc's default mmap threshold: allocations from this size up get their own mapping.
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt parameter number (malloc.h)


def return_large_buffers_to_the_os() -> bool:
    """Pin glibc's mmap threshold at its default; True when it was set.

    By default glibc raises the threshold to the size of the largest mapped block freed so
    far, so after the first 10,000-contact request its multi-megabyte buffers (the body, the
    columns) come from the heap, whose freed space stays resident. Pinned, they are mapped
    and unmapped: measured on a worker serving 10k-contact imports, peak RSS 125 MB instead
    of 150 MB, with no change in throughput. No effect (False) off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
