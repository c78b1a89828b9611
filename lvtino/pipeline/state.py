"""The state folder of a restoration: what makes ``--resume`` and sharding possible.

It sits next to the output (``.NAME.lvtino-state``) and holds ``lock`` (the
owner of the run: one run per output), ``state.json`` (the input's identity and a
digest of everything that decides the windows' pixels) and one file per finished
window, written to a temporary name, fsynced, then renamed: a file counts only
once it is whole. A window file found damaged (a power loss before the disk
caught up) is removed and its window restored again, never fatal. A resumed run
reuses the rest; a run with another input or configuration is refused.
Window outputs are kept as float16 whether or not the run is ever resumed, so a
resumed, a sharded and an uninterrupted run join the very same numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lvtino.errors import UserError
from lvtino.files import RunLock, fsync_folder, pid_alive, write_text_atomic

WINDOW_FILE = re.compile(r"^window-(\d{6})\.npy$")
log = logging.getLogger("lvtino")


def state_folder(output: Path) -> Path:
    return output.parent / f".{output.name}.lvtino-state"


def input_identity(path: Path) -> dict:
    """Name, size, modification time and a digest of the first and last MiB of the input (or of a folder's files)."""
    path = Path(path).resolve()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    size = 0
    for f in files:
        st = f.stat()
        size += st.st_size
        digest.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        with open(f, "rb") as fh:
            digest.update(fh.read(1 << 20))
            if st.st_size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                digest.update(fh.read())
    return {"path": str(path), "bytes": size, "digest": digest.hexdigest()}


def run_digest(facts: dict) -> str:
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


class RunState:
    def __init__(self, output: Path, input_id: dict, run: dict, processes, resume: bool, keep: bool):
        self.folder = state_folder(Path(output))
        self.output = Path(output)
        self.record = {"version": 1, "input": input_id, "run": run_digest(run), "settings": run}
        self.processes, self.resume, self.keep = processes, resume, keep
        self.lock = RunLock(self.folder / "lock", str(output))
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list = []

    def open(self) -> "RunState":
        """Take the lock and check an existing folder against this run (main process), create a new one."""
        error = None
        if self.processes.is_main:
            try:
                self._open_main()
            except UserError as err:
                error = err
        error = self.processes.broadcast(str(error) if error else None)
        if error:
            raise UserError(error)
        return self

    def _open_main(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lock.acquire(notice=log.info)
        try:
            self._remove_partials()
            if (self.folder / "state.json").is_file():
                self._check()
            else:
                write_text_atomic(self.folder / "state.json", json.dumps(self.record, indent=1, default=str))
        except BaseException:
            self.lock.release()
            raise

    def _remove_partials(self) -> None:
        """Temporary files of processes that are gone (a kill before a rename), and an old run's progress."""
        (self.folder / "progress").unlink(missing_ok=True)
        for p in self.folder.glob("*.partial-*"):
            pid = p.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or not pid_alive(int(pid)) or int(pid) == os.getpid():
                p.unlink(missing_ok=True)

    def _check(self) -> None:
        n = len(self.finished())
        if not self.resume:
            raise UserError(f"{self.folder} holds {n} finished window(s) of an interrupted run: add --resume to "
                            "reuse them, or delete the folder to start over")
        try:
            old = json.loads((self.folder / "state.json").read_text())
        except (OSError, ValueError):
            raise UserError(f"{self.folder}/state.json is unreadable: delete the folder to start over") from None
        if old.get("input", {}).get("digest") != self.record["input"]["digest"]:
            raise UserError(f"--resume: {self.folder} was made for another input ({old.get('input', {}).get('path')},"
                            " or that file has changed): delete the folder to start over")
        if old.get("run") != self.record["run"]:
            settings = old.get("settings", {})
            changed = sorted(k for k in set(settings) | set(self.record["settings"])
                             if json.dumps(settings.get(k), sort_keys=True, default=str)
                             != json.dumps(self.record["settings"].get(k), sort_keys=True, default=str))
            raise UserError(f"--resume: {self.folder} was made with other settings ({', '.join(changed) or 'config'} "
                            "differ): run with the same ones, or delete the folder to start over")

    # -- window files --------------------------------------------------------------------
    def _path(self, index: int) -> Path:
        return self.folder / f"window-{index:06d}.npy"

    def finished(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.folder.glob("window-*.npy") if (m := WINDOW_FILE.match(p.name)))

    def has(self, index: int, shape: tuple[int, ...]) -> bool:
        """Window ``index`` is on disk whole, with this shape (its header and length checked, not its data)."""
        path = self._path(index)
        try:
            with open(path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                header = read(fh)
                offset = fh.tell()
            ok = (tuple(header[0]) == tuple(shape) and header[2] == np.float16 and not header[1]
                  and path.stat().st_size == offset + 2 * int(np.prod(shape)))
        except (OSError, ValueError, EOFError):
            ok = False
        if not ok and path.exists():
            log.info("%s: window %d's file is damaged; it will be restored again", self.output, index)
            path.unlink(missing_ok=True)
        return ok

    def save(self, index: int, x: Tensor, before=None) -> Tensor:
        """Store window ``index`` (in the background) and return what ``load`` will give back:
        the float16-rounded values, as float32 (rounded in place when ``x`` is a float32 CPU tensor).

        ``before()``, if given, runs on the writing thread first (it may wait for older windows to go, so that
        the folder never holds more than a few).
        """
        half = x.detach().to("cpu", torch.float16)
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lvtino-state")
        while len(self._pending) >= 2:  # at most two windows wait for the disk: memory stays flat
            self._pending.pop(0).result()
        self._pending.append(self._writer.submit(self._write, index, half.numpy(), before))
        if x.dtype == torch.float32 and x.device.type == "cpu" and not x.requires_grad:
            return x.detach().copy_(half)
        return half.float()

    def _write(self, index: int, array: np.ndarray, before=None) -> None:
        if before is not None:
            before()
        tmp = self.folder / f"window-{index:06d}.npy.partial-{os.getpid()}"
        try:
            with open(tmp, "wb") as fh:
                # the header, then the data straight from the array: a plain file write, which releases the
                # interpreter during the copy and reports a full disk with its errno (numpy's own writer does not)
                np.lib.format.write_array_header_1_0(fh, np.lib.format.header_data_from_array_1_0(array))
                fh.write(memoryview(np.ascontiguousarray(array)).cast("B"))
                fh.flush()
                os.fsync(fh.fileno())  # on disk before it counts
            os.replace(tmp, self._path(index))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_folder(self.folder)

    def flush(self) -> None:
        """Wait until every window saved so far is on disk (and raise what a write raised)."""
        pending, self._pending = self._pending, []
        for job in pending:
            job.result()

    def load(self, index: int, shape: tuple[int, ...]) -> Tensor | None:
        """Window ``index`` as float32, or None when its file is missing or damaged (then removed)."""
        if not self.has(index, shape):
            return None
        try:
            return torch.from_numpy(np.load(self._path(index))).float()
        except (OSError, ValueError, EOFError):
            log.info("%s: window %d's file is damaged; it will be restored again", self.output, index)
            self._path(index).unlink(missing_ok=True)
            return None

    def discard(self, index: int) -> None:
        """Window ``index`` is in closed segments now: its file goes (the scratch disk stays bounded)."""
        self._path(index).unlink(missing_ok=True)

    # -- several processes ---------------------------------------------------------------
    def set_progress(self, position: int) -> None:
        """How far the main process has joined (a position in the list of windows to restore)."""
        write_text_atomic(self.folder / "progress", str(position))

    def wait_progress(self, position: int, poll: float = 0.05) -> None:
        """Block until the main process has joined up to ``position`` (other processes keep this far ahead)."""
        import time

        while position >= 0:
            try:
                if int((self.folder / "progress").read_text()) >= position:
                    return
            except (OSError, ValueError):
                pass  # not written yet
            time.sleep(poll)
            poll = min(0.5, poll * 1.5)

    def wait_window(self, index: int, shape: tuple[int, ...], poll: float = 0.02) -> None:
        """Block until another process has saved window ``index``."""
        import time

        while not self._path(index).exists():
            time.sleep(poll)
            poll = min(0.5, poll * 1.5)

    # -- the end -------------------------------------------------------------------------
    def abandon(self) -> None:
        """After a failure or an interruption: finished windows stay for --resume; an empty folder goes."""
        try:
            self.flush()
        except OSError:
            pass
        if self.processes.is_main and self.lock.held:
            if self.folder.is_dir() and not self.finished():
                self._remove()
            else:
                self.lock.release()

    def finish(self) -> None:
        self.flush()
        if self.processes.is_main and self.lock.held:
            if self.keep:
                self.lock.release()
            else:
                self._remove()

    def _remove(self) -> None:
        """The folder and the lock inside it go together: no other run can take the lock in between."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.lock.held = False
