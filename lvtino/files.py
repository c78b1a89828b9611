"""Writing files so that nothing half-done ever sits at a final name, and cleaning up after a kill.

Every output is written to a hidden temporary name unique to this process
(``.NAME.partial-PID``), flushed to disk, and renamed into place in one step.
A process killed with -9 leaves only such temporary names; the next run on
the same output removes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import struct
import zlib
from pathlib import Path
from typing import Iterator

MARKER = ".lvtino"  # a folder lvtino filled (a report, a demo, a benchmark) carries this file


def check_name(path: str | Path, flag: str = "") -> None:
    """A path the video libraries can open: its name must be UTF-8 (a name of other bytes, from an old disk or a
    foreign system, cannot be handed to FFmpeg)."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        from lvtino.errors import UserError

        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise UserError(f"{flag + ' ' if flag else ''}{shown}: the name is not UTF-8 text, which the video libraries "
                        "cannot open; rename it") from None


def partial_name(path: Path, suffix: str = "") -> Path:
    """A temporary name beside ``path``, unique to this process (hidden; the suffix keeps the format)."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}{suffix}")


def fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """The temporary name to write ``path`` under; renamed into place when the block ends without an error (the
    writer fsyncs its file), removed when it fails. ``suffix`` keeps the format for writers that go by it."""
    path = Path(path)
    tmp = partial_name(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_folder(path.parent)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """``data`` at ``path``, all or nothing: a temporary file, fsynced, renamed into place."""
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: str | Path, data: dict) -> None:
    """JSON written atomically, with non-finite numbers (a PSNR of identical frames) as null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(u) for k, u in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(u) for u in v]
        return v
    write_text_atomic(path, json.dumps(clean(data), indent=1) + "\n")


@contextlib.contextmanager
def atomic_folder(path: str | Path, kind: str) -> Iterator[Path]:
    """Fill a new folder under a temporary name; on success it replaces ``path`` (an earlier lvtino folder of
    the same kind, or nothing), on failure it is removed. Yields the temporary folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(path)
    remove_tree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        (tmp / MARKER).write_text(json.dumps({"lvtino": kind}) + "\n")
        replace_folder(tmp, path)
    except BaseException:
        remove_tree(tmp)
        raise


def replace_folder(new: Path, path: Path) -> None:
    """Put folder ``new`` at ``path``: the old one (if any) is moved aside first, then removed."""
    old = None
    if path.exists() or path.is_symlink():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        remove_tree(old)
        os.replace(path, old)
    os.replace(new, path)
    fsync_folder(path.parent)
    if old is not None:
        remove_tree(old)


# -- checksums of the files a run keeps between processes and runs ----------------------------------------------
# A file renamed into place is whole, but a disk may still lose or change what it said it wrote, and a file may be
# damaged later; each state file carries a CRC-32 of its content, checked before use.
TRAILER = struct.Struct("<8sI")  # a binary state file ends with this marker and the CRC-32 of what precedes it
TRAILER_MAGIC = b"lvtcrc32"


def trailer(crc: int) -> bytes:
    return TRAILER.pack(TRAILER_MAGIC, crc & 0xFFFFFFFF)


def read_checked(path: Path) -> bytearray | None:
    """The content of a binary state file without its trailer, or None when it is missing, short or its CRC-32
    differs (damaged)."""
    try:
        with open(path, "rb") as fh:
            data = bytearray(fh.read())
    except OSError:
        return None
    if len(data) < TRAILER.size:
        return None
    magic, crc = TRAILER.unpack_from(data, len(data) - TRAILER.size)
    del data[len(data) - TRAILER.size:]
    if magic != TRAILER_MAGIC or zlib.crc32(data) != crc:
        return None
    return data


def file_crc(path: Path) -> int:
    """CRC-32 of a file's bytes (of every file of a folder, in name order)."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    crc = 0
    for f in files:
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                crc = zlib.crc32(chunk, crc)
    return crc


def sealed_text(text: str) -> str:
    """``text`` with a last line holding its CRC-32, for a small state file (see ``unsealed_text``)."""
    return f"{text}\ncrc32 {zlib.crc32(text.encode()):08x}\n"


def unsealed_text(raw: str | None) -> str | None:
    """The text a ``sealed_text`` carries, or None when it is absent or damaged."""
    if raw is None:
        return None
    text, _, last = raw.rstrip("\n").rpartition("\n")
    if not last.startswith("crc32 ") or last[6:] != f"{zlib.crc32(text.encode()):08x}":
        return None
    return text


def tree_size(folder: Path) -> int:
    """Bytes of the files under ``folder``; a file renamed or removed while it looks (a running job's scratch
    folder) counts as nothing."""
    total = 0
    for root, _, names in os.walk(folder):  # a folder that vanishes while walked is skipped, not an error
        for name in names:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        with contextlib.suppress(OSError):
            path.unlink()


PID_MAX = 1 << 22  # Linux's largest process id (pid_max can be set up to 2^22)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs here; a number that cannot be a process (0, negative, too large: 0 and -1
    would mean this process group and every process to kill) never is."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= PID_MAX:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(path: Path, every: bool = False) -> None:
    """Remove the temporary files (``partial_name``, ``replace_folder``'s old one) that earlier runs left on
    ``path`` (a kill -9 leaves them) whose process is gone; with ``every``, those of every name in the folder
    ``path``. The one cleanup of partial files: outputs, state files."""
    # in a state folder (lvtino's own) also the names of an earlier version, which had no leading dot
    folder, name = (path, r"\.?[^/]+") if every else (path.parent, rf"\.{re.escape(path.name)}")
    pattern = re.compile(rf"^{name}\.(?:partial|old)-(\d+)")
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for p in entries:
        m = pattern.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            remove_tree(p)


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux), to tell it from a later one reusing its pid."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class RunLock:
    """One run at a time on an output: an exclusive lock file holding the owner's pid, host and start time.

    A second run finds the file and is refused in one line naming the owner. A lock
    left by a process that is gone (same host, pid not running, or running but
    started later: a reused pid) is taken over with a notice.
    """

    def __init__(self, path: Path, what: str):
        self.path, self.what = Path(path), what
        self.held = False

    def acquire(self, notice=None) -> "RunLock":
        import socket
        import time

        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "process_start": _process_start(os.getpid())}
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is None and self._age() > 10:  # a lock file never filled in: its writer died
                    owner = {"pid": None, "started": "unknown"}
                if owner is None or not self._stale(owner, me["host"]):
                    from lvtino.errors import UserError

                    who = (f"pid {owner.get('pid')} on {owner.get('host')}, since {owner.get('started')}" if owner
                           else "its lock is being written")
                    raise UserError(f"{self.what}: another lvtino run is writing it ({who}); wait for it to end or "
                                    f"stop it (its lock: {self.path})") from None
                if notice:
                    notice(f"{self.what}: taking over the lock of an earlier run that is gone (pid {owner.get('pid')}, "
                           f"started {owner.get('started')})")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(me))
                fh.flush()
                os.fsync(fh.fileno())
            self.held = True
            self.record = me
            return self
        raise RuntimeError(f"could not take the lock {self.path}")

    def _owner(self) -> dict | None:
        try:
            with open(self.path, "rb") as fh:
                data = json.loads(fh.read(4096))  # lvtino writes about 100 bytes
        except (OSError, ValueError, RecursionError):
            return None  # being written this very moment, or unreadable: treat as held
        return data if isinstance(data, dict) else None

    def _age(self) -> float:
        import time

        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return 0.0

    @staticmethod
    def _stale(owner: dict, host: str) -> bool:
        if owner.get("pid") is None:
            return True
        if owner.get("host") != host:
            return False  # another machine's process: cannot tell, so it holds
        pid = owner.get("pid")
        if not pid_alive(pid):  # gone, or a number no process can have
            return True
        started = owner.get("process_start")
        return started is not None and _process_start(pid) not in (None, started)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        data = self._owner()
        if data is None:
            return
        if data.get("pid") == os.getpid() and data.get("process_start") == self.record.get("process_start"):
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
