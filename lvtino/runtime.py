"""Process-wide settings for the command line (not applied by importing the library)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30


def tune_cpu_allocator() -> bool:
    """Let glibc reuse large freed blocks instead of unmapping them.

    By default glibc serves every allocation above 32 MiB with a fresh mmap and
    unmaps it on free, so each video-sized temporary costs page faults on every
    touch; on a 2-core machine that doubled the time of the TV solver (measured in
    scripts/bench_solvers.py). Raising the mmap and trim thresholds to 1 GiB keeps
    such blocks in the heap. Returns whether the setting took (glibc only).
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES))
