"""The state folder of a restoration: what makes ``--resume`` and sharding possible.

It sits next to the output (``.NAME.lvtino-state``) and holds ``state.json``
(the input's identity and a digest of everything that decides the windows'
pixels) and one file per finished window, written atomically. A resumed run
reuses those files; a run with another input or configuration is refused.
Window outputs are kept as float16 whether or not the run is ever resumed, so a
resumed, a sharded and an uninterrupted run join the very same numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lvtino.errors import UserError


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
        self.record = {"version": 1, "input": input_id, "run": run_digest(run), "settings": run}
        self.processes, self.resume, self.keep = processes, resume, keep
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list = []

    def open(self) -> "RunState":
        """Check an existing folder against this run (every process), create a new one (main process)."""
        self.processes.wait()
        existed = (self.folder / "state.json").is_file()
        if existed:
            self._check()
        self.processes.wait()
        if not existed and self.processes.is_main:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / "state.json.partial"
            tmp.write_text(json.dumps(self.record, indent=1, default=str))
            os.replace(tmp, self.folder / "state.json")
        self.processes.wait()
        return self

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

    def _path(self, index: int) -> Path:
        return self.folder / f"window-{index:06d}.npy"

    def finished(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.folder.glob("window-*.npy"))

    def has(self, index: int) -> bool:
        return self._path(index).is_file()

    def save(self, index: int, x: Tensor) -> Tensor:
        """Store window ``index`` (in the background) and return what ``load`` will give back:
        the float16-rounded values, as float32."""
        half = x.detach().to("cpu", torch.float16)
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lvtino-state")
        while len(self._pending) >= 2:  # at most two windows wait for the disk: memory stays flat
            self._pending.pop(0).result()
        self._pending.append(self._writer.submit(self._write, index, half.numpy()))
        return half.float()

    def _write(self, index: int, array: np.ndarray) -> None:
        tmp = self.folder / f"window-{index:06d}.partial.npy"
        np.save(tmp, array)
        os.replace(tmp, self._path(index))

    def flush(self) -> None:
        """Wait until every window saved so far is on disk (and raise what a write raised)."""
        pending, self._pending = self._pending, []
        for job in pending:
            job.result()

    def load(self, index: int) -> Tensor:
        return torch.from_numpy(np.load(self._path(index))).float()

    def discard_if_empty(self) -> None:
        """After a failure before any window finished: leave nothing behind."""
        try:
            self.flush()
        except OSError:
            pass
        if self.processes.is_main and self.folder.is_dir() and not self.finished():
            shutil.rmtree(self.folder, ignore_errors=True)

    def finish(self) -> None:
        self.flush()
        if not self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)
