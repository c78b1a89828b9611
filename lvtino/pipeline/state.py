"""The state folder of a restoration: what makes ``--resume`` and sharding possible.

It sits next to the output (``.NAME.lvtino-state``) and holds ``lock`` (the
owner of the run: one run per output), ``state.json`` (the input's identity and a
digest of everything that decides the output's bytes) and one file per finished
window, written to a temporary name, fsynced, then renamed: a file counts only
once it is whole. Every state file carries a CRC-32 of its content, checked
before use: a window file found damaged (cut short by a power loss, or changed
since) is removed and its window restored again, with a notice, never fatal; a
damaged ``state.json`` starts the run over. A resumed run reuses the rest; a run
with another input or settings is refused. A folder of that name that holds
anything lvtino does not write there is refused, never emptied.
Window outputs are kept as float16 whether or not the run is ever resumed, so a
resumed, a sharded and an uninterrupted run join the very same numbers.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import os
import re
import shutil
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lvtino.errors import UserError, arg
from lvtino.files import (RunLock, atomic_file, read_checked, remove_stale_partials, sealed_text,
                          state_folder, trailer, unsealed_text, write_text_atomic)
from lvtino.pipeline.digest import digest_of
from lvtino.video.formats import FRAME_SUFFIXES

WINDOW_FILE = re.compile(r"^window-(\d{6})\.npy$")
# what lvtino writes into a state folder (anything else there is a user's, and the folder is not lvtino's to use)
STATE_ENTRY = re.compile(r"^\.?(?:lock|state\.json|progress|segments|window-\d{6}\.npy)(?:\.partial-\d+)?$")
# what lvtino writes in segments/ (video.segments: closed segments, open ones and their temporary names, the range)
# and inside a frame-folder segment
SEGMENT_ENTRY = re.compile(r"^(?:range\.json|segment-\d{9}-\d{6}-[0-9a-f]{8}(?:\.\w+)?|\.{1,2}open-\d{9}\S*)$")
SEGMENT_FRAME = re.compile(rf"^(?:\d{{6}}(?:{'|'.join(map(re.escape, FRAME_SUFFIXES))})|lvtino\.json)$")
log = logging.getLogger("lvtino")


def _foreign(folder: Path) -> list[str]:
    """What in a state folder lvtino did not write: other names, links, folders where files go, and the same
    inside segments/ and its frame-folder segments."""
    found = []
    for p in folder.iterdir():
        if not STATE_ENTRY.match(p.name) or p.is_symlink() or (p.is_dir() and p.name != "segments"):
            found.append(p.name)
        elif p.is_dir():
            for q in p.iterdir():
                if not SEGMENT_ENTRY.match(q.name) or q.is_symlink():
                    found.append(f"{p.name}/{q.name}")
                elif q.is_dir():
                    found += [f"{p.name}/{q.name}/{r.name}" for r in q.iterdir()
                              if not SEGMENT_FRAME.match(r.name) or r.is_symlink() or not r.is_file()]
    return found


class RunState:
    def __init__(self, output: Path, input_id: dict, run: dict, processes, resume: bool, keep: bool,
                 resumable: bool = True):
        """``resumable`` False (an input read from a pipe, which cannot be read again): a failed or interrupted run
        keeps nothing."""
        self.folder = state_folder(Path(output))
        self.output = Path(output)
        self.record = {"version": 2, "input": input_id, "run": digest_of(run), "settings": run}
        self.processes, self.resume, self.keep, self.resumable = processes, resume, keep, resumable
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
        self._check_folder()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lock.acquire(notice=log.info)
        try:
            (self.folder / "progress").unlink(missing_ok=True)  # an old run's
            remove_stale_partials(self.folder, every=True)
            if not (self.folder / "state.json").is_file() or not self._check():
                self._write_record()
        except BaseException:
            self.lock.release()
            raise

    def _check_folder(self) -> None:
        """Refuse a state folder's name that is taken by a file, a link (never followed: what it points to is not
        lvtino's to fill or empty), or a folder holding, at any depth, what lvtino did not write."""
        if not (self.folder.exists() or self.folder.is_symlink()):
            return
        if self.folder.is_symlink():
            raise UserError(f"{self.output}: {self.folder} is the name of lvtino's state folder for this output, and "
                            "a link of that name exists, which lvtino never follows; remove the link, or choose "
                            "another output")
        if not self.folder.is_dir():
            raise UserError(f"{self.output}: {self.folder} is the name of lvtino's state folder for this output, and "
                            "a file of that name exists; move it, or choose another output")
        foreign = sorted(_foreign(self.folder))
        if foreign:
            raise UserError(f"{self.output}: {self.folder} is the name of lvtino's state folder for this output, and "
                            f"it holds files lvtino did not write ({', '.join(foreign[:3])}); move them, or choose "
                            "another output")

    def _write_record(self) -> None:
        write_text_atomic(self.folder / "state.json", sealed_text(json.dumps(self.record, indent=1, default=str)))

    def _check(self) -> bool:
        """An earlier run's record against this run's: True when it may be resumed, False when it was damaged (the
        run starts over, with a notice); a refusal when it is another run's."""
        n = len(self.finished())
        segments = self.folder / "segments"
        closed = len([p for p in segments.iterdir() if p.name.startswith("segment-")]) if segments.is_dir() else 0
        if not self.resume:
            also = f" and {closed} closed segment(s)" if closed else ""
            raise UserError(f"{self.folder} holds {n} finished window(s){also} of an interrupted run: add "
                            f"{arg('resume')} to reuse them, or delete the folder to start over")
        try:
            old = json.loads(unsealed_text((self.folder / "state.json").read_text(encoding="utf-8")) or "null")
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict) or not isinstance(old.get("input"), dict) or old.get("version") != 2:
            log.info("%s: the record of the interrupted run (state.json) is damaged or from another lvtino "
                     "version: its windows are restored again", self.output)
            self._clear()
            return False
        if old.get("input", {}).get("digest") != self.record["input"]["digest"]:
            raise UserError(f"{arg('resume')}: {self.folder} was made for another input "
                            f"({old.get('input', {}).get('path')}, or that file has changed): delete the folder to "
                            "start over")
        if old.get("run") != self.record["run"]:
            settings = old.get("settings", {})
            changed = sorted(k for k in set(settings) | set(self.record["settings"])
                             if json.dumps(settings.get(k), sort_keys=True, default=str)
                             != json.dumps(self.record["settings"].get(k), sort_keys=True, default=str))
            raise UserError(f"{arg('resume')}: {self.folder} was made with other settings "
                            f"({', '.join(changed) or 'config'} differ): run with the same ones, or delete the "
                            "folder to start over")
        return True

    def _clear(self) -> None:
        """Everything but the lock: windows, segments, the record (what a damaged record cannot vouch for)."""
        for p in self.folder.iterdir():
            if p.name != "lock":
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

    @property
    def segments_folder(self) -> Path:
        """Where the output's closed segments are kept (``video.segments.Segments``)."""
        return self.folder / "segments"

    # -- window files --------------------------------------------------------------------
    def _path(self, index: int) -> Path:
        return self.folder / f"window-{index:06d}.npy"

    def finished(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.folder.glob("window-*.npy") if (m := WINDOW_FILE.match(p.name)))

    def has(self, index: int, shape: tuple[int, ...]) -> bool:
        """Window ``index`` is on disk whole and unchanged, with this shape (a damaged file is removed)."""
        return self._read(index, shape) is not None

    def _read(self, index: int, shape: tuple[int, ...]) -> np.ndarray | None:
        """Window ``index``'s float16 values, when its file is whole, its CRC-32 matches and its shape is
        ``shape``; else None, and a damaged file is removed with a notice."""
        path = self._path(index)
        if not path.exists():
            return None
        data = read_checked(path)
        array = None
        if data is not None:
            try:
                fh = io.BytesIO(data)
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                header = read(fh)
                offset = fh.tell()
                if (tuple(header[0]) == tuple(shape) and header[2] == np.float16 and not header[1]
                        and len(data) == offset + 2 * int(np.prod(shape))):
                    array = np.frombuffer(data, np.float16, offset=offset).reshape(shape)
            except (ValueError, EOFError):
                array = None
        if array is None:
            log.info("%s: window %d's file is damaged; it will be restored again", self.output, index)
            path.unlink(missing_ok=True)
        return array

    def save(self, index: int, x: Tensor) -> Tensor:
        """Store window ``index`` (written on the ``lvtino-state`` thread) and return what ``load`` will give
        back: the float16-rounded values, as a new float32 tensor (``x`` is left as it is)."""
        half = x.detach().to("cpu", torch.float16)
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lvtino-state")
        while len(self._pending) >= 2:  # at most two windows wait for the disk: memory stays flat
            self._pending.pop(0)[0].result()
        # in the caller's context, so that what the writer says keeps the caller's words
        job = self._writer.submit(contextvars.copy_context().run, self._write, index, half.numpy())
        self._pending.append((job, half.numel() * half.element_size()))
        return half.float()

    def _write(self, index: int, array: np.ndarray) -> None:
        with atomic_file(self._path(index)) as tmp, open(tmp, "wb") as fh:
            # the header, then the data straight from the array: a plain file write, which releases the
            # interpreter during the copy and reports a full disk with its errno (numpy's own writer does not);
            # then the CRC-32 of both
            head = io.BytesIO()
            np.lib.format.write_array_header_1_0(head, np.lib.format.header_data_from_array_1_0(array))
            body = memoryview(np.ascontiguousarray(array)).cast("B")
            fh.write(head.getvalue())
            fh.write(body)
            fh.write(trailer(zlib.crc32(body, zlib.crc32(head.getvalue()))))
            fh.flush()
            os.fsync(fh.fileno())  # on disk before it counts

    def flush(self) -> None:
        """Wait until every window saved so far is on disk (and raise what a write raised)."""
        pending, self._pending = self._pending, []
        for job, _ in pending:
            job.result()

    def scratch_bytes(self) -> int:
        """The window files in the folder now (any process's), and the windows still being written by this one."""
        on_disk = 0
        for p in self.folder.glob("window-*"):  # whole files (one being written has a hidden temporary name)
            try:
                on_disk += p.stat().st_size
            except FileNotFoundError:  # discarded or renamed meanwhile
                pass
        return on_disk + sum(nbytes for job, nbytes in self._pending if not job.done())

    def load(self, index: int, shape: tuple[int, ...]) -> Tensor | None:
        """Window ``index`` as float32, or None when its file is missing or damaged (then removed)."""
        array = self._read(index, shape)
        return None if array is None else torch.from_numpy(array).float()

    def discard(self, index: int) -> None:
        """Window ``index`` is in closed segments now: its file goes (the scratch disk stays bounded)."""
        self._path(index).unlink(missing_ok=True)

    # -- several processes ---------------------------------------------------------------
    def set_progress(self, position: int) -> None:
        """How far the main process has joined (a position in the list of windows to restore)."""
        write_text_atomic(self.folder / "progress", sealed_text(str(position)))

    def wait_progress(self, position: int, poll: float = 0.05) -> None:
        """Block until the main process has joined up to ``position`` (other processes keep this far ahead)."""
        import time

        while position >= 0:
            try:
                if int(unsealed_text((self.folder / "progress").read_text()) or "-1") >= position:
                    return
            except (OSError, ValueError):
                pass  # not written yet (or damaged: the main process writes it again after its next window)
            time.sleep(poll)
            poll = min(0.5, poll * 1.5)

    def wait_window(self, index: int, poll: float = 0.02) -> None:
        """Block until another process has saved window ``index``."""
        import time

        while not self._path(index).exists():
            time.sleep(poll)
            poll = min(0.5, poll * 1.5)

    # -- the end -------------------------------------------------------------------------
    def abandon(self) -> None:
        """After a failure or an interruption: finished windows and closed segments stay for --resume; a folder
        with neither goes."""
        try:
            self.flush()
        except OSError:
            pass
        if self.processes.is_main and self.lock.held:
            kept = self.finished() or any(self.segments_folder.glob("segment-*"))  # windows become segments
            if self.folder.is_dir() and (not kept or not self.resumable):
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
