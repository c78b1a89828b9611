"""Every path a command writes, checked together before any work, and written so that nothing half-done
ever sits at a final name.

A command lists its outputs (the video, ``--stats``, ``--json``, ``--report``,
``--summary``, ...) and its inputs; ``check_outputs`` refuses, in one line, an
output that is an input (after resolving links and ``..``), lies inside an input
folder, equals or nests in another output, sits in a missing or read-only
folder, or would replace something lvtino did not make. An existing output is
refused unless ``-y`` (ffmpeg's habit); ``-n`` never replaces one.

Side outputs are written like the video (``lvtino.files``): to a temporary name
unique to this process, flushed to disk, then renamed into place in one step;
that rename never replaces what appeared at the name during the run, and each
output is locked for the command (two writers of one output: the second is
refused).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from lvtino.errors import UserError
from lvtino import files
from lvtino.files import MARKER, check_name
from lvtino.video.formats import FRAME_SUFFIXES
from lvtino.video.reader import SIDECAR
from lvtino.validation import parse_json, read_text_file

FRAME_NAME = re.compile(rf"^\d{{6}}(?:{'|'.join(map(re.escape, FRAME_SUFFIXES))})$")  # a frame-folder output's frames


@dataclass(frozen=True)
class Output:
    """A path a command writes. ``kind``: file (JSON, CSV), video (.mp4, .mkv, ...), frames (a folder of image
    frames with its sidecar), or folder (a folder lvtino fills: a report, a demo, a benchmark)."""

    flag: str
    path: Path
    kind: str = "file"
    create_parent: bool = False  # the command makes the folder it goes into


def resolved(path: str | Path) -> Path:
    """The absolute path with links and ``..`` resolved (the parts that exist)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _inside(path: Path, folder: Path) -> bool:
    return path != folder and folder in path.parents


def check_outputs(outputs: list[Output], inputs: list[tuple[str, str | Path]], overwrite: str = "ask",
                  claim: bool = True) -> None:
    """Refuse, in one line, any output that would lose or change something (see the module's text); then, with
    ``claim``, lock each for this command and record what is there (``lvtino.files.claim``: the final rename
    replaces only that, and only with -y). The other processes of a multi-process run check without claiming."""
    ins = [(flag, resolved(p), Path(p)) for flag, p in inputs if p is not None]
    seen: list[tuple[Output, Path]] = []
    for out in outputs:
        check_name(out.path, out.flag)
        _check_length(out)
        real = resolved(out.path)
        for flag, inp, given in ins:
            if real == inp or (out.path.exists() and given.exists() and os.path.samefile(out.path, given)):
                raise UserError(f"{out.flag} {out.path}: would overwrite {flag} {given}; choose another path")
            if inp.is_dir() and _inside(real, inp):
                raise UserError(f"{out.flag} {out.path}: lies inside {flag} folder {given}; choose another path")
            if out.kind in ("frames", "folder") and _inside(inp, real):
                raise UserError(f"{out.flag} {out.path}: would replace the folder holding {flag} {given}")
        for other, other_real in seen:
            if real == other_real:
                raise UserError(f"{out.flag} {out.path}: is also given as {other.flag}; each output needs its own "
                                "path")
            if other.kind in ("frames", "folder") and _inside(real, other_real):
                raise UserError(f"{out.flag} {out.path}: lies inside {other.flag} {other.path}, which is written "
                                "whole; choose a path outside it")
            if out.kind in ("frames", "folder") and _inside(other_real, real):
                raise UserError(f"{other.flag} {other.path}: lies inside {out.flag} {out.path}, which is written "
                                "whole; choose a path outside it")
        seen.append((out, real))
        _check_place(out, real)
        _check_existing(out, overwrite)
    if claim:
        claim_outputs(outputs, overwrite)


def claim_outputs(outputs: list[Output], overwrite: str) -> None:
    """Lock each output for this command and record what is there (see ``check_outputs``)."""
    for out in outputs:
        empty = out.kind in ("frames", "folder") and out.path.is_dir() and not any(out.path.iterdir())
        files.claim(out.path, overwrite == "yes" or empty, f"{out.flag} {out.path}")


PID_DIGITS = 7  # Linux's largest pid (2^22) has 7 digits


def _check_length(out: Output) -> None:
    """An output's name leaves room for the names lvtino writes beside it: the temporary file
    (.NAME.partial-PID.EXT), the lock (.NAME.lvtino-lock), a restore's state folder, a kept result."""
    name = os.fsencode(out.path.name)
    suffix = len(os.fsencode(out.path.suffix))
    extra = max(len(".") + len(".partial-") + PID_DIGITS + suffix, len("..lvtino-state"),
                len(".lvtino-") + PID_DIGITS + len("-99"))
    try:
        limit = os.pathconf(out.path.parent if out.path.parent.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(name) + extra > limit:
        raise UserError(f"{out.flag} {out.path.name}: the name is {len(name)} bytes, and lvtino writes beside it "
                        f"under names up to {extra} bytes longer (temporary and lock files), over this file system's "
                        f"limit of {limit}: use a name of at most {limit - extra} bytes")


def _check_place(out: Output, real: Path) -> None:
    """The folder the output goes into exists (made for folder outputs) and can be written."""
    parent = real.parent
    if out.kind == "folder" or out.create_parent:
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{out.flag} {out.path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{out.flag} {out.path}: the folder {parent} is not writable")


def _check_existing(out: Output, overwrite: str) -> None:
    path = out.path
    if not (path.exists() or path.is_symlink()):
        return
    mode = os.lstat(path).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        raise UserError(f"{out.flag} {path}: not a regular file (a pipe, socket or device), which lvtino never "
                        "replaces, even with -y; give a file name")
    if out.kind in ("file", "video") and path.is_dir():
        raise UserError(f"{out.flag} {path}: is a folder; give a file name")
    if out.kind in ("frames", "folder") and not path.is_dir():
        raise UserError(f"{out.flag} {path}: a file of that name exists; a folder cannot replace it")
    if out.kind in ("frames", "folder") and not any(path.iterdir()):
        return  # an empty folder: nothing to lose
    if out.kind == "frames" and not is_frame_folder(path):
        raise UserError(f"{out.flag} {path}: the folder exists and holds files lvtino did not write; choose a new "
                        "or empty folder")
    if out.kind == "folder" and not (path / MARKER).is_file():
        raise UserError(f"{out.flag} {path}: the folder exists and was not made by lvtino; choose a new or empty "
                        "folder")
    if overwrite == "no":
        raise UserError(f"{out.flag} {path}: exists, and -n never replaces an output")
    if overwrite == "ask":
        raise UserError(f"{out.flag} {path}: exists; add -y to replace it (or -n to never replace)")


def is_frame_folder(path: Path) -> bool:
    """A folder of image frames that lvtino wrote: its sidecar, and nothing but numbered frames beside it."""
    sidecar = path / SIDECAR
    if not sidecar.is_file():
        return False
    try:
        record = parse_json(read_text_file(sidecar, "sidecar", 1 << 20), "sidecar")
    except UserError:
        return False
    if not isinstance(record, dict) or "lvtino" not in record:
        return False
    return all(p.name == SIDECAR or FRAME_NAME.match(p.name) for p in path.iterdir())
