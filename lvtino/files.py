"""Writing files so that nothing half-done ever sits at a final name, and cleaning up after a kill.

Every output is written to a hidden temporary name unique to this process
(``.NAME.partial-PID``), flushed to disk, and renamed into place in one step.
A process killed with -9 leaves only such temporary names; the next run on
the same output removes those whose process is gone.

A command's outputs are claimed when they are checked (``claim``, inside an
``output_claims`` block): each gets a lock beside it (``.NAME.lvtino-lock``, so
two writers of one output are refused) and a record of what was there. The
final rename (``place``) replaces only what was there and allowed to go (-y); a
file or folder that appeared or changed since is kept, the result is left
beside it under another name (``NAME.lvtino-PID.EXT``) and ``NotPlaced`` says
both names.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import logging
import math
import os
import re
import shutil
import stat
import struct
import zlib
from dataclasses import dataclass
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
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and err.filename is None:
            err.filename = str(path)  # a write (fh.write) names no file: this is the one it was for
        raise
    place(tmp, path)


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
        place(tmp, path)
    except BaseException as err:
        remove_tree(tmp)
        if isinstance(err, OSError) and err.filename is None:
            err.filename = str(path)
        raise


def _replace_folder(new: Path, path: Path) -> None:
    """Put folder ``new`` at ``path``: the old one (if any) is moved aside first, then removed (``place`` decides
    whether it may go)."""
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
    """Remove the temporary files (``partial_name``, the old folder ``place`` moves aside) that earlier runs left on
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
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(json.dumps(me))
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as err:  # a full disk: no half-written lock is left to hold the output
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
                if err.filename is None:
                    err.filename = str(self.path)
                raise
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


# -- claimed outputs: locked, and placed without replacing what appeared since ------------------------------------
class NotPlaced(Exception):
    """A finished output not renamed into place because something appeared (or changed) there during the run:
    what appeared is kept, the result sits beside it under ``kept``."""

    def __init__(self, path: Path, kept: Path):
        self.path, self.kept = Path(path), Path(kept)
        super().__init__(f"{path} appeared or changed while this run worked and is kept as it is; the result is "
                         f"{kept} (rename it to use it)")


@dataclass
class _Claim:
    seen: tuple | None  # what was at the path when it was claimed (None: nothing)
    replace: bool       # whether the run may replace what it saw (-y, or an empty folder)
    lock: "RunLock | None"


_scopes: list[dict[str, _Claim]] = []


def _key(path: Path) -> str:
    return os.path.abspath(os.fspath(path))


def snapshot(path: Path) -> tuple | None:
    """What is at ``path`` (not following a link): None for nothing; a file's identity, size and time; a folder's
    identity and each entry's name, size and time (a file added, removed or rewritten inside changes it)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return ("file", st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns)
    entries = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(path):
            with contextlib.suppress(OSError):
                e = entry.stat(follow_symlinks=False)
                entries.append((entry.name, e.st_mode, e.st_size, e.st_mtime_ns))
    return ("folder", st.st_dev, st.st_ino, tuple(sorted(entries)))


@contextlib.contextmanager
def output_claims() -> Iterator[None]:
    """The claims made inside the block last until it ends: their locks are released then."""
    _scopes.append({})
    try:
        yield
    finally:
        for claim in _scopes.pop().values():
            if claim.lock is not None:
                claim.lock.release()


def claiming(fn):
    """``fn`` runs in an ``output_claims`` block of its own (a command's entry point)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with output_claims():
            return fn(*args, **kwargs)
    return wrapper


def lock_name(path: Path) -> Path:
    return Path(path).with_name(f".{Path(path).name}.lvtino-lock")


def state_folder(output: Path) -> Path:
    """Where a restore keeps its windows and segments until the output is placed (``pipeline.state``)."""
    return Path(output).parent / f".{Path(output).name}.lvtino-state"


def claim(path: Path, replace: bool, what: str) -> None:
    """Lock ``path`` for this command and record what is there now; ``replace``: the command may replace it.
    Outside an ``output_claims`` block nothing is recorded (the output is placed as before)."""
    if not _scopes:
        return
    path = Path(path)
    for scope in _scopes:
        if _key(path) in scope:  # claimed by this command already (a batch's item inside the batch)
            scope[_key(path)] = _Claim(snapshot(path), replace, scope[_key(path)].lock)
            return
    lock = None
    if path.parent.is_dir():  # a folder still to be made holds nothing anyone else could be writing yet
        try:
            lock = RunLock(lock_name(path), what).acquire(notice=logging.getLogger("lvtino").info)
        except OSError as err:
            err.filename = str(path)  # the output the lock was for: the name the user gave
            raise
    _scopes[-1][_key(path)] = _Claim(snapshot(path), replace, lock)


def _claim_of(path: Path) -> _Claim | None:
    for scope in reversed(_scopes):
        if _key(path) in scope:
            return scope[_key(path)]
    return None


def place(tmp: Path, path: Path) -> Path:
    """Rename the finished ``tmp`` (a file or a folder) to ``path``. A claimed output replaces only what was there
    when it was claimed, and only with leave to; otherwise the result goes beside it and ``NotPlaced`` is raised.
    Returns where the result is."""
    tmp, path = Path(tmp), Path(path)
    claim = _claim_of(path)
    if claim is None:
        _put(tmp, path)
        return path
    now = snapshot(path)
    try:
        if now is None:
            rename_noreplace(tmp, path)
            fsync_folder(path.parent)
            return path
        if claim.replace and now == claim.seen:
            _put(tmp, path)
            return path
    except FileExistsError:
        pass  # it appeared this very moment
    kept = _kept_name(tmp, path)
    raise NotPlaced(path, kept)


def _put(tmp: Path, path: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        _replace_folder(tmp, path)
    else:
        os.replace(tmp, path)
        fsync_folder(path.parent)


def _kept_name(tmp: Path, path: Path) -> Path:
    """Move the result ``tmp`` to a visible name beside ``path`` that no cleanup removes: NAME.lvtino-PID.EXT."""
    suffix = "" if tmp.is_dir() else path.suffix
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    for n in range(100):
        kept = path.with_name(f"{stem}.lvtino-{os.getpid()}{f'-{n}' if n else ''}{suffix}")
        try:
            rename_noreplace(tmp, kept)
        except FileExistsError:
            continue
        fsync_folder(path.parent)
        return kept
    raise FileExistsError(errno.EEXIST, "no free name beside it", str(path))


_AT_FDCWD, _RENAME_NOREPLACE = -100, 1


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` only if nothing is there (FileExistsError otherwise), in one step where the system
    can (Linux's renameat2); elsewhere a hard link then unlink for files, a new empty folder renamed over for
    folders: nothing at ``dst`` is ever replaced."""
    src, dst = os.fspath(src), os.fspath(dst)
    if _renameat2(src, dst):
        return
    if os.path.isdir(src) and not os.path.islink(src):
        os.mkdir(dst)  # FileExistsError if anything is there
        try:
            os.rename(src, dst)  # over the empty folder just made (a file put in it meanwhile: refused)
        except OSError as err:
            with contextlib.suppress(OSError):
                os.rmdir(dst)
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise FileExistsError(errno.EEXIST, "appeared meanwhile", dst) from None
            raise
        return
    os.link(src, dst)  # FileExistsError if anything is there
    os.unlink(src)


@functools.lru_cache(maxsize=1)
def _libc_renameat2():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


def _renameat2(src: str, dst: str) -> bool:
    """True when renamed; False where renameat2 or its flag is not available (old kernel, some file systems)."""
    fn = _libc_renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), dst)
    raise OSError(err, os.strerror(err), dst)
