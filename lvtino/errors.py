"""The exceptions that the command line turns into a single line on stderr."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import shutil
from pathlib import Path


# How the person running lvtino names a setting: the library's errors and notices name parameters (``offload``,
# ``window``) through ``arg``/``said``; the command line installs its flags for the length of a run (``naming``),
# so a Python caller of ``lvtino.restore(..., offload=...)`` is told of ``offload='model'`` and a user of the
# command line of ``--offload model``, from the same sentence.
_NAMING: contextvars.ContextVar = contextvars.ContextVar("lvtino_naming", default=None)


def arg(name: str) -> str:
    """The setting ``name`` as its caller wrote it: a flag under the command line (``--fps-factor``), else the
    keyword (``fps_factor``)."""
    flag = _NAMING.get()
    return flag(name) if flag is not None else name


def said(name: str, value) -> str:
    """A setting and its value as its caller wrote them: ``--offload model``, or ``offload='model'``."""
    from fractions import Fraction

    from lvtino.validation import show

    if isinstance(value, Fraction):
        value = float(value) if value.denominator != 1 else int(value)
    if _NAMING.get() is not None:
        return arg(name) if value is True else f"{arg(name)} {show(value)}"  # a switch is its flag alone
    return f"{name}={value!r}" if isinstance(value, str) else f"{name}={show(value)}"


@contextlib.contextmanager
def naming(flag):
    """Within the block, ``arg`` and ``said`` name settings by ``flag(name)`` (the command line's flags)."""
    token = _NAMING.set(flag)
    try:
        yield
    finally:
        _NAMING.reset(token)


class UserError(ValueError):
    """A mistake in what the user asked for: a bad file, name, range or value.

    The message names the argument, the value given and what is allowed. The CLI
    prints it as one line and exits non-zero; it is never shown as a traceback.
    """


class DiskFull(OSError):
    """A write found no space left: says where, how much is free there, and about how much the run needs."""

    def __init__(self, path: str | Path | None, needed_bytes: int | None = None, resumable: bool = False):
        self.path = _shown(Path(path)) if path else None
        where = self.path.parent if self.path else Path(".")
        while not where.exists() and where != where.parent:
            where = where.parent
        try:
            free = shutil.disk_usage(where).free
        except OSError:
            free = None
        parts = [f"no space left on the device writing {self.path or where}"]
        facts = []
        if free is not None:
            facts.append(f"{_mb(free)} free there")
        if needed_bytes:
            facts.append(f"this run needs about {_mb(needed_bytes)} more")
        if facts:
            parts.append(f"({', '.join(facts)})")
        if resumable:
            parts.append(f"; the finished windows are kept: free some space and run again with {arg('resume')}")
        super().__init__(errno.ENOSPC, " ".join(parts[:2]) + "".join(parts[2:]))

    def __str__(self) -> str:
        return self.strerror


class NotWritten(OSError):
    """A side output (``--stats``) the system refused to write, after the main output was written whole: says
    both, so that nobody redoes a finished run."""

    def __init__(self, what: str, path: str | Path, err: OSError, done: str):
        why = "no space left on the device" if is_disk_full(err) else (err.strerror or str(err))
        super().__init__(err.errno, f"{what} {path}: not written ({why}); {done}")

    def __str__(self) -> str:
        return self.strerror


class NetworkError(OSError):
    """A download that the network refused (no connection, a timeout, a server error): not the user's mistake."""

    def __init__(self, message: str):
        super().__init__(errno.ENETUNREACH, message)

    def __str__(self) -> str:
        return self.strerror


def _shown(path: Path) -> Path:
    """The path a user knows: absolute, and an output's own name for its temporary one (.NAME.partial-PID...)."""
    import re

    m = re.match(r"^\.(.+)\.partial-\d+", path.name)
    return (path.with_name(m.group(1)) if m else path).absolute()


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 1024:.0f} kB"
