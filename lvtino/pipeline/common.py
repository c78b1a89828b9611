"""What degrade and restore share: the operator with user-facing errors, run facts, JSON output."""

from __future__ import annotations

import contextlib
import resource
import shutil
import sys
from pathlib import Path

import torch

from lvtino.config import ProblemConfig
from lvtino.errors import UserError, arg, said
from lvtino.files import partial_name
from lvtino.physics.base import TimeWindows
from lvtino.physics.problems import build_physics
from lvtino.runtime import peak_resident_memory

MIN_MEASURED_SIDE = 4  # a measurement narrower than this holds no picture to restore


def build_checked_physics(cfg: ProblemConfig, shape: tuple[int, int, int]):
    """The problem's operator for a signal of (T, H, W), with user-facing errors; it must have the verbs of
    ``TimeWindows`` (every stage after this one streams the video in windows of time)."""
    try:
        physics = build_physics(cfg.operator, shape)
    except ValueError as err:
        raise UserError(f"problem {cfg.name}: {err}") from None
    if not isinstance(physics, TimeWindows):
        raise TypeError(f"{physics!r} lacks the verbs of physics.base.TimeWindows, which streaming needs")
    t, h, w = physics.output_shape(shape)
    if min(h, w) < MIN_MEASURED_SIDE:
        f = physics.factors
        raise UserError(f"frame size {shape[2]}x{shape[1]} is too small for problem {cfg.name} "
                        f"(spatial factor {f[1]}: the measurement would be {w}x{h})")
    return physics


def peak_memory_mb() -> float:
    """Peak resident memory of this process (and the GPU's peak allocation, if used).

    Linux's VmHWM is this program's own high-water mark; ``ru_maxrss`` (the fallback
    elsewhere) can carry the peak of the process that launched it across exec.
    """
    hwm = peak_resident_memory()
    mb = hwm / 2**20 if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if torch.cuda.is_available():
        mb += torch.cuda.max_memory_allocated() / 2**20
    return round(mb, 1)


def reset_peak_memory() -> None:
    """Start a new high-water mark, so that the next ``peak_memory_mb`` is this run's own (a batch or a
    benchmark restores many videos in one process). Linux only; elsewhere peaks stay cumulative."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def check_device(device: str) -> torch.device:
    """The torch device named by ``--device`` (``auto``: CUDA when present, else the CPU), refused in one line
    when this machine lacks it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"{said('device', device)}: not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{said('device', device)}: CUDA is not available on this machine "
                            f"(use {said('device', 'cpu')})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"{said('device', device)}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type not in ("cpu", "mps"):
        raise UserError(f"{said('device', device)}: unsupported device type {dev.type!r} (cpu or cuda)")
    return dev


STDIN = "-"  # the input named as ffmpeg names a pipe


@contextlib.contextmanager
def spooled(input, output, resume: bool = False):
    """The input as a file: itself, or for ``-`` the bytes of standard input (``ffmpeg ... -f matroska - |``)
    written beside the output as they stream (a video is read more than once: to index it, then per window) and
    removed at the end. A pipe cannot be read again, so ``resume`` is refused for it."""
    if str(input) != STDIN:
        yield input
        return
    if resume:
        raise UserError(f"{arg('resume')} with the input {STDIN}: a pipe cannot be read again to go on; save the "
                        "video to a file to restore it in several runs")
    if sys.stdin is None or sys.stdin.isatty():
        raise UserError(f"the input {STDIN} reads the video from a pipe (ffmpeg -i a.mov -c copy -f matroska - | "
                        "lvtino restore - -o up.mkv ...): nothing is piped in")
    folder = Path(output).parent
    if not folder.is_dir():
        raise UserError(f"{arg('output')} {output}: the folder {folder} does not exist")
    spool = partial_name(Path(output), ".stdin")
    try:
        with open(spool, "wb") as fh:
            shutil.copyfileobj(sys.stdin.buffer, fh, 1 << 20)
        if spool.stat().st_size == 0:
            raise UserError(f"the input {STDIN}: the pipe closed without a byte")
        yield spool
    finally:
        spool.unlink(missing_ok=True)
