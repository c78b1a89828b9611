"""Process-wide settings for the command line (not applied by importing the library), and stage timing."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import time

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
    global _kept
    tuned = bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES))
    _kept = KEEP_BYTES if tuned else 0
    return tuned


_kept = 0


def allocator_keeps() -> int:
    """Bytes of freed memory the allocator may keep for reuse in this process (``tune_cpu_allocator``'s threshold;
    0 where it was not applied): resident memory that a count of live tensors does not see."""
    return _kept


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation without swapping (Linux's MemAvailable); None elsewhere."""
    return _proc_kb("/proc/meminfo", "MemAvailable:")


def resident_memory() -> int | None:
    """Bytes this process holds in memory now (Linux's VmRSS); None elsewhere."""
    return _proc_kb("/proc/self/status", "VmRSS:")


def peak_resident_memory() -> int | None:
    """Bytes at this process's high-water mark (Linux's VmHWM: its own, where ``ru_maxrss`` can carry the peak of
    the process that launched it across exec); None elsewhere."""
    return _proc_kb("/proc/self/status", "VmHWM:")


def _proc_kb(path: str, key: str) -> int | None:
    try:
        with open(path) as info:
            for line in info:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class StageTimer:
    """Seconds spent per named stage, summed over calls; waits for the GPU before reading the clock.

    >>> timer = StageTimer()
    >>> with timer("video_model"):
    ...     pass
    """

    def __init__(self, device=None):
        self.seconds: dict[str, float] = {}
        self._sync = None
        if device is not None and getattr(device, "type", str(device)) == "cuda":
            import torch

            self._sync = torch.cuda.synchronize

    @contextlib.contextmanager
    def __call__(self, stage: str):
        if self._sync:
            self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._sync:
                self._sync()
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

    def rounded(self, digits: int = 3) -> dict[str, float]:
        return {k: round(v, digits) for k, v in self.seconds.items()}


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM: the run stops cleanly, keeping what ``--resume`` needs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        import signal

        return signal.Signals(self.signum).name


STARTING = "lvtino: interrupted (SIGINT) while starting; nothing was done\n"


@contextlib.contextmanager
def starting():
    """While the libraries load (torch: seconds), Ctrl-C ends the process at once with one line and 130: nothing
    has been done yet, and a KeyboardInterrupt raised inside torch's import can land in one of its C++ callbacks
    (pybind11), which aborts with a 100-line dump instead of unwinding. The previous handler comes back after."""
    import os
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum, frame):
        os.write(2, STARTING.encode())
        os._exit(130)

    previous = signal.signal(signal.SIGINT, on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGINT and SIGTERM raise ``Interrupted`` in the main thread (cleanup runs, state is
    kept); a second one while stopping ends the process at once. The previous handlers come back after."""
    import os
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = []

    def on_signal(signum, frame):
        if stopping:
            os.write(2, b"lvtino: stopped at once (a second signal)\n")
            os._exit(128 + signum)
        stopping.append(signum)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
