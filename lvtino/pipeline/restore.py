"""``lvtino restore``: restore a degraded video of any length, file to file, in windows.

One run, top to bottom (``restore``):

1. plan     ``Request.check_inputs`` and ``Request.plan``: the operator, the output's size, rate and range, the
            windows (``pipeline.windows.Plan``), every output path checked. Nothing is written before this ends.
2. state    ``RunState.open``: the state folder beside the output (its lock, the run's record). It is the one
            owner of what is written there; ``Segments`` names its ``segments`` folder.
3. left     the main process reads what an interrupted run left (closed segments, whole window files:
            ``what_is_left``) and every process gets the same answer.
4. windows  each window still to restore is restored by the prior (``WindowRestorer``) on the process whose
            turn it is, or read back from the state; its float16 file is written on the state's thread.
5. join     the main process cross-fades the windows in order and makes each seam consistent with the
            measurement (``pipeline.windows.Joiner``, ``seam_step``); the residual meter reads the final frames.
6. encode   the frames that became final go to the encoder's thread as one segment (``video.segments.Encoder``);
            the window files no later frame needs are deleted once those frames lie in closed segments.
7. merge    ``Segments.join``: the closed segments into the output by stream copy, with its sound and metadata.
8. finish   the run's facts (``--stats``); the state folder goes.

The threads of the main process and their hand-offs (no thread calls back into another):

- the main thread: decoding the measured frames, the prior, the join and seams, the residual meter; it hands
  window files to the state's thread and segments to the encoder's, and waits on them;
- ``lvtino-state`` (``RunState.save``): writes window files, at most two pending (``save`` waits for the older);
- ``lvtino-encoder`` (``Encoder``): converts, encodes and merges segments, one open at a time (``submit`` waits
  while one is). Before a window's file is written the main thread waits until the frames joined before that
  window lie in closed segments (``Encoder.wait_closed``) and deletes the window files they needed: the state
  folder holds two windows, and a third while it is written.

Memory and scratch disk depend on the window and frame size, not on the video's length, and ``--resume`` goes
on from the last closed segment.

Under ``torchrun``/``accelerate launch`` the windows still to restore are dealt
out in turn (window i to process i mod N); the other processes save theirs into
the state folder, at most a few windows ahead of the main process's join, which
they read from a small progress file there: a state folder on a path every
machine shares is all a cluster needs.

Frames given in memory (``lvtino.Restorer``) go through the same ``Run`` with an
in-memory source, window store and sink (``restore_frames``): no file, and no
rounding of a float input to 8 bits or of the windows to float16.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from lvtino.distributed import Processes
from lvtino.errors import DiskFull, NotWritten, UserError, arg, is_disk_full, said
from lvtino.files import NotPlaced, claiming, write_json
from lvtino.pipeline.common import STDIN, check_device, peak_memory_mb, reset_peak_memory, spooled
from lvtino.pipeline.job import Job, check_guide, restore_outputs, source_seconds, window_shape
from lvtino.pipeline.measurement import ResidualMeter
from lvtino.pipeline.outputs import claim_outputs
from lvtino.models.options import ModelOptions
from lvtino.pipeline.catalog import networks_of
from lvtino.pipeline.priors import Networks, describe_models, make_prior
from lvtino.pipeline.request import Request
from lvtino.pipeline.digest import input_identity
from lvtino.pipeline.state import RunState
from lvtino.pipeline.words import frame_rule_note, frames_kept
from lvtino.pipeline.windows import Joiner, Window, seam_step
from lvtino.runtime import StageTimer, allocator_keeps, available_memory, resident_memory
from lvtino.video.convert import tensor_to_frames
from lvtino.video.frames import DecodedFrames, MemoryFrames
from lvtino.video.reader import VideoInfo
from lvtino.video.segments import Encoder, Segments

log = logging.getLogger("lvtino")
AHEAD = 2  # windows each other process may restore ahead of the main process's join
STAGES = ("read", "load", "prior", "join", "write", "state", "residual")


@claiming
def restore(request: Request, processes: Processes | None = None, networks: Networks | None = None) -> dict | None:
    """Restore ``request.input`` (a file, a folder of frames, or ``-``: standard input) into ``request.output``;
    see ``_restore``."""
    with spooled(request.input, request.output, request.resume) as source:
        piped = source != request.input
        # a pipe's frame count is what it holds: a muxer writing to a pipe cannot go back to write a duration, and
        # FFmpeg then guesses one from the bit rates (PCM sound beside ProRes: 8 s for 2)
        return _restore(replace(request, input=source, accept_truncated=True) if piped else request, processes,
                        networks, piped)


def _restore(request: Request, processes: Processes | None, networks: Networks | None, piped: bool) -> dict | None:
    """Restore ``request.input`` into ``request.output``, output frames [start, end), in windows.

    Returns the run's facts (as ``--stats`` writes them) on the main process,
    None on the other processes of a multi-process launch; with ``dry_run``,
    the plan (range, windows, memory) and nothing written. ``networks``: loaded
    networks to use and keep (a ``Restorer``'s, a batch's); by default the run
    loads its own.
    """
    t_start = time.perf_counter()
    reset_peak_memory()
    # 1. plan: the request checked, the input read, the operator, range and windows settled
    request = request.check_inputs()
    procs = processes or Processes(check_device(request.device))
    job, output = request.plan(claim=False)
    _claim(request, output, procs)
    encoding = request.output_encoding(job)
    if procs.is_main:  # said once, here: the segments' writers are quiet
        notes = encoding.notes(output, job.shape[2], job.shape[1], job.info.bits)
        if request.words is not None and request.words.given():
            notes.append(frame_rule_note(request.words, job.cfg.operator))
        for note in filter(None, notes):
            log.info("%s", note)
    # the memory plan, while what this process holds is not yet the networks (unless a caller's are loaded)
    held = networks.held_before if networks is not None and networks.loaded else resident_memory()
    plan = memory_plan(job, request.prior, request.models or ModelOptions(), procs.device, held)
    upscaler = load_upscaler(request, job, procs.device)  # refused here, in one line, before anything is written
    if request.dry_run:
        return _dry_run(request, job, output, procs, plan)
    # 2. state: the folder beside the output and its segments
    settings = request.settings(job)
    identity = input_identity(Path(request.input))
    state = RunState(output, identity, settings, procs, request.resume, request.keep_state, not piped).open()
    segments = Segments(state.segments_folder, output, job.fps, job.start, job.end, encoding, job.info.rotation)
    timer = StageTimer(procs.device)
    timer.seconds.update(dict.fromkeys(STAGES, 0.0))
    measured = DecodedFrames(job.info, procs.device, timer)
    restore_window = WindowRestorer(job, request.prior, request.models, request.seed, measured, procs.device, timer,
                                    networks, upscaler)
    run = None
    try:
        # 3. left: decided by the main process, the same for every process
        left = procs.broadcast(what_is_left(job, state, segments) if procs.is_main else None)
        run = Run(job, procs, timer, measured, restore_window, state, left)
        if not procs.is_main:  # 4. the other processes: their turns of the windows, into the state folder
            run.others()
            return None
        # 4-6. windows restored or read back, joined in order, final frames encoded into closed segments
        guide = DecodedFrames(job.guide, procs.device, timer) if job.guide is not None else None
        meter = ResidualMeter(job.physics, job.supports, job.start, job.end, measured, timer, first=left.covered,
                              guide=guide, guide_offset=job.guide_offset)
        run.main(Encoder(segments, left.covered).start(), meter, _progress(job.end - left.covered, procs))
        # 7. merge: the segments into the output, by stream copy
        factor = job.physics.factors[0]
        made_by = {"problem": job.cfg.name, "operator": job.cfg.operator, "prior": request.prior,
                   "settings": request.digest(job), **describe_models(request.prior, request.models)}
        audio = None if request.no_audio or not job.info.has_audio else request.input
        moved = None
        with timer("write"):
            try:
                segments.join(metadata={"restored_by": made_by}, audio_from=audio, rotation=job.info.rotation,
                              audio_range=(source_seconds(job.info, factor, job.start),
                                           source_seconds(job.info, factor, job.end)))
            except NotPlaced as err:  # a file appeared at the output meanwhile: kept; the result is beside it
                moved = err
        result = _facts(job, request, moved.kept if moved else output, procs, timer, restore_window, run, t_start,
                        plan)
        if piped:
            result["input"] = STDIN  # not the spooled copy, which goes when the run ends
    except BaseException as err:
        if run is not None:
            run.stop()
        state.abandon()
        if is_disk_full(err):
            where = getattr(err, "filename", None)
            where = where if where and state.folder in Path(where).parents else output  # not a temporary name
            raise DiskFull(where, _space_needed(job), resumable=state.folder.is_dir()) from None
        raise
    # 8. finish
    state.finish()
    if request.stats is not None:
        try:
            write_json(request.stats, result)
        except OSError as err:
            raise NotWritten(arg("stats"), request.stats, err, f"the output {output} was written whole") from None
    if moved is not None:
        raise moved
    return result


def plan_frames(request: Request, shape: tuple[int, int, int], fps: Fraction) -> Job:
    """The job of ``request`` (checked) on frames in memory: ``shape`` (T, h, w) at ``fps``."""
    t, h, w = shape
    info = VideoInfo(Path("the frames given"), "memory", Fraction(fps), int(t), int(w), int(h))
    job = Job.plan(request, info)
    if request.guide is not None:
        job.guide, job.guide_offset = check_guide(request.guide, job)
    return job


def restore_frames(video, fps: Fraction, request: Request, networks: Networks | None = None,
                   job: Job | None = None, upscaler=None):
    """Restore frames given in memory at ``fps``: (T, h, w, 3) uint8, or a (1, 3, T, h, w) float tensor in [0, 1];
    the restoration in the same layout. ``request`` gives the problem, prior and settings (its input, output and
    file settings are not used); ``job``: its plan for frames of this shape and rate (``plan_frames``), made here
    when not given (a ``Restorer`` keeps one per shape); ``upscaler``: ``request.upscaler``'s model, loaded
    (``load_upscaler``; loaded here when not given).

    The run of ``restore`` (windows, seams, the measured frames' own operator) with the frames read from
    ``video`` as the windows need them and the restored ones kept in memory: no file is written, and a float
    input is not rounded.
    """
    tensor = isinstance(video, torch.Tensor)
    shape = tuple(int(n) for n in (video.shape[2:] if tensor else video.shape[:3]))
    if job is None:
        request = request.check_inputs()
        job = plan_frames(request, shape, fps)
    elif (job.info.frames, job.info.height, job.info.width, job.info.fps) != (*shape, Fraction(fps)):
        raise ValueError(f"restore_frames: a plan for {job.info.frames} frames of {job.info.width}x"
                         f"{job.info.height} at {job.info.fps} fps, given {shape[0]} of {shape[2]}x{shape[1]} at {fps}")
    procs = Processes.alone(check_device(request.device))
    sink = MemorySink(job.start, float_output=tensor)
    _check_memory(job, sink)
    timer = StageTimer(procs.device)
    measured = MemoryFrames(video, job.info, procs.device, timer)
    restore_window = WindowRestorer(job, request.prior, request.models, request.seed, measured, procs.device, timer,
                                    networks, upscaler or load_upscaler(request, job, procs.device))
    windows = [w.index for w in job.selected]
    run = Run(job, procs, timer, measured, restore_window, MemoryWindows(), Left(job.start, windows, [], windows))
    run.main(sink, None, None)
    return sink.frames()


def load_upscaler(request: Request, job: Job, device: torch.device):
    """``--upscaler``'s model, loaded and its scale checked against the operator's; None without one."""
    if request.upscaler is None:
        return None
    from lvtino.models.upscaler import Upscaler

    upscaler = Upscaler.load(request.upscaler, device)
    upscaler.check_scale(tuple(job.physics.factors[1:]))
    return upscaler


def _claim(request: Request, output: Path, procs: Processes) -> None:
    """The main process locks the outputs for this run; every process stops with its refusal."""
    error = None
    if procs.is_main:
        try:
            claim_outputs(restore_outputs(output, request.stats, request.encoding), request.overwrite)
        except UserError as err:
            error = str(err)
    error = procs.broadcast(error)
    if error:
        raise UserError(error)


def _check_memory(job: Job, sink: MemorySink) -> None:
    """Refuse, before any work, a restoration that memory cannot hold (it is returned whole)."""
    need = (job.end - job.start) * job.shape[1] * job.shape[2] * 3 * sink.itemsize
    free = available_memory()
    if free is not None and need > free:
        raise UserError(f"the restored video, {job.end - job.start} frames of {job.shape[2]}x{job.shape[1]}, "
                        f"needs {need / 2**30:.1f} GB of memory and {free / 2**30:.1f} GB are available; restore "
                        "the video from a file with lvtino.restore, or a range of it (start, end)")


def _dry_run(request: Request, job: Job, output: Path, procs: Processes, plan: dict | None) -> dict:
    return {"dry_run": True, "input": str(request.input), "output": str(output), "problem": job.cfg.name,
            "prior": request.prior, "operator": job.cfg.operator, "frames": job.end - job.start, "start": job.start,
            "end": job.end, "height": job.shape[1], "width": job.shape[2], "fps": str(job.fps),
            "windows": len(job.selected), "window_frames": job.layout.windows[0].frames, "device": str(procs.device),
            "memory_plan": plan, "weights_missing": _missing_weights(request)}


def _missing_weights(request: Request) -> str | None:
    """What a generative prior's run would stop at: a weights file that is neither a local file nor cached (the
    dry run's check; a real run says it before loading)."""
    kinds = networks_of(request.prior)
    models = (request.models or ModelOptions()).models
    if not kinds or models == "tiny":
        return None
    from lvtino.models.spec import load_models_spec
    from lvtino.models.weights import MissingWeights, check_available

    try:
        check_available(load_models_spec(models), list(kinds))
    except MissingWeights as missing:
        return str(missing)
    return None


def window_seed(seed: int, index: int) -> int:
    """The sampler's seed for window ``index``: the same whichever process restores it."""
    return (seed * 1_000_003 + index) % (2**63)


class WindowRestorer:
    """Restores one window at a time with the prior (its networks loaded at the first window)."""

    def __init__(self, job: Job, prior: str, models: ModelOptions | None, seed: int, measured, device: torch.device,
                 timer: StageTimer, networks: Networks | None = None, upscaler=None):
        self.job, self.prior_name, self.models, self.seed, self.networks = job, prior, models, seed, networks
        self.upscaler = upscaler
        self.measured, self.device, self.timer = measured, device, timer
        self.prior = None
        self.count = 0
        self.iterations: list[int] = []
        self._operators: dict[int, tuple] = {}  # window index -> (its operator, its measured frames)

    def operator(self, w: Window) -> tuple[object, list[int]]:
        """Window ``w``'s operator and the measured frames it explains (``restrict_time``), kept for the next
        window (whose start reads the previous one's rows) and dropped after."""
        if w.index not in self._operators:
            self._operators[w.index] = self.job.physics.restrict_time(w.start, w.end)
            for old in [i for i in self._operators if i < w.index - 1]:
                del self._operators[old]
        return self._operators[w.index]

    def __call__(self, w: Window) -> torch.Tensor:
        job = self.job
        if self.prior is None:
            with self.timer("load"):
                guide = DecodedFrames(job.guide, self.device, self.timer) if job.guide is not None else None
                self.prior = make_prior(self.prior_name, job.cfg, self.models, self.device, self.networks,
                                        guide=guide, guide_offset=job.guide_offset, upscaler=self.upscaler)
        previous = self.operator(job.layout.windows[max(0, w.index - 1)])[1]  # its rows serve the coming seam too
        physics_w, rows = self.operator(w)
        y = self.measured.get(rows, keep_from=min(previous + rows, default=None))
        with self.timer("prior"):
            x, facts = self.prior(physics_w, y, window_seed(self.seed, w.index), span=(w.start, w.end))
        if facts.get("solver_iterations") is not None:
            self.iterations.append(facts["solver_iterations"])
        self.count += 1
        return x

    def facts(self) -> dict:
        if self.prior is None:
            return {}
        facts = self.prior.facts()
        nfe = facts.pop("nfe")
        facts["nfe"] = {k: v // max(1, self.count) for k, v in nfe.items()}  # per window (per clip when one)
        if self.iterations:
            facts["solver_iterations"] = max(self.iterations)
        return facts


@dataclass
class Left:
    """What is left of a run: decided by the main process, the same for every process."""

    covered: int         # output frames [start, covered) lie in closed segments
    needed: list[int]    # the windows the rest of the output depends on, in order
    reused: list[int]    # of those, the ones whose files in the state are whole
    todo: list[int]      # the others, restored by the processes in turn


def what_is_left(job: Job, state: RunState, segments: Segments) -> Left:
    """The closed segments kept (damaged ones and those of another range removed: ``Segments.open``), and the
    windows the frames after them need."""
    covered = segments.open().covered()
    needed = [w.index for w in job.layout.select(covered, job.end)] if covered < job.end else []
    reused = [i for i in needed if state.has(i, window_shape(job, job.layout.windows[i]))]
    return Left(covered, needed, reused, [i for i in needed if i not in set(reused)])


class WindowStore(Protocol):
    """Where a run keeps its finished windows until the join has used them (``RunState``: float16 files in the
    state folder; ``MemoryWindows``)."""

    def save(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Keep window ``index``; return what ``load`` will give back (a file store's rounding included)."""

    def load(self, index: int, shape: tuple[int, ...]) -> torch.Tensor | None:
        """Window ``index`` as saved, or None when it is not there whole with this shape."""

    def discard(self, index: int) -> None:
        """No later frame needs window ``index``: let it go."""

    def flush(self) -> None:
        """Until every saved window is kept for good (and raise what keeping one raised)."""

    def scratch_bytes(self) -> int:
        """The disk it holds now, windows being written included (0 in memory)."""


class SharedWindowStore(WindowStore, Protocol):
    """A store the processes of one launch share (``RunState`` on a folder they all see): the main process says how
    far it has joined, the others wait on that and on each other's windows."""

    def set_progress(self, position: int) -> None: ...

    def wait_progress(self, position: int) -> None: ...

    def wait_window(self, index: int) -> None: ...


class FrameSink(Protocol):
    """Where the main process's final frames go, in order (``video.segments.Encoder``: segments of the output
    file; ``MemorySink``)."""

    closed: int  # output frames before this one are final in the sink (for a file: in closed segments)

    def submit(self, first: int, frames: torch.Tensor) -> None:
        """Frames (1, 3, n, H, W) in [-1, 1], output frames ``first`` .. ``first + n - 1``."""

    def wait_closed(self, frame: int) -> None:
        """Until ``closed`` has reached ``frame`` (or the sink failed: then ``wait`` raises it)."""

    def wait(self) -> None:
        """Until every submitted frame is final; raises what the sink's work raised."""

    def stop(self) -> None:
        """After a failure elsewhere: end the sink's work, keeping what is final."""

    def scratch_bytes(self) -> int:
        """The disk it holds now beside the output (closed segments; 0 in memory)."""


class Run:
    """The windows of one run, shared out between the processes, and the main process's join.

    ``store`` keeps finished windows; the main process's ``main`` joins them into ``sink``, and the other
    processes of a launch (``others``) restore their turns into the shared store. A process's role is its
    ``procs.is_main``.
    """

    def __init__(self, job: Job, procs: Processes, timer: StageTimer, measured, restore_window: WindowRestorer,
                 store: WindowStore, left: Left):
        self.job, self.procs, self.timer, self.measured = job, procs, timer, measured
        self.restore_window, self.store, self.left = restore_window, store, left
        self.todo = [job.layout.windows[i] for i in left.todo]
        self.position = {w.index: k for k, w in enumerate(self.todo)}
        self.restored: list[int] = []
        self.scratch_peak = 0
        self.sink: FrameSink | None = None
        self.meter: ResidualMeter | None = None
        self._dropped = 0  # windows before this one have no file any more

    def mine(self, w: Window) -> bool:
        return self.position.get(w.index, -1) % self.procs.count == self.procs.index

    def others(self) -> None:
        """Restore this process's turns, never more than AHEAD windows past the main process's join."""
        assert not self.procs.is_main, "the main process joins (main)"
        for w in self.todo:
            if not self.mine(w):
                continue
            self.store.wait_progress(self.position[w.index] - AHEAD * self.procs.count)
            self._restore(w)
            self.store.flush()
        self.procs.wait()

    def main(self, sink: FrameSink, meter: ResidualMeter | None, bar) -> None:
        """Every needed window, in order: restored or read back, joined; the final frames into ``sink``."""
        assert self.procs.is_main, "another process restores its turns (others)"
        job = self.job
        self.sink, self.meter = sink, meter
        seam = seam_step(job.physics, self.measured, job.cfg.pinv.eps) if job.physics.linear else None
        joiner = Joiner(job.layout, seam)
        for w in (job.layout.windows[i] for i in self.left.needed):
            x = self._window(w)
            with self.timer("join"):
                final = list(joiner.add(w, x))
            self._emit(final, bar)
            if self.procs.count > 1 and w.index in self.position:
                self.store.set_progress(self.position[w.index])
            self._discard_upto(job.layout.first_needed(max(sink.closed, job.start)))
            self._measure_scratch()
        with self.timer("join"):
            final = list(joiner.finish())
        self._emit(final, bar)
        with self.timer("write"):
            sink.wait()
        self.store.flush()
        self.procs.wait()  # every process passes this point once
        if bar:
            bar.close()

    def _window(self, w: Window) -> torch.Tensor:
        if w.index in self.position and self.mine(w):
            return self._restore(w).to(self.procs.device)
        if w.index in self.position:  # another process's turn: wait for its file
            self.store.wait_window(w.index)
        with self.timer("state"):
            x = self.store.load(w.index, window_shape(self.job, w))
        if x is None:  # damaged: restore it here
            return self._restore(w).to(self.procs.device)
        return x.to(self.procs.device)

    def _restore(self, w: Window) -> torch.Tensor:
        """Window ``w`` by the prior, stored; what the store gives back (the float16 a resumed run would read)."""
        x = self.restore_window(w)
        self.restored.append(w.index)
        self._make_room(w)
        with self.timer("state"):
            return self.store.save(w.index, x)

    def _make_room(self, w: Window) -> None:
        """Before window ``w`` is stored: wait until the frames joined before it (through window w - 1) lie in
        closed segments, and drop the window files no later frame needs."""
        if not self.procs.is_main:  # the main process drops files
            return
        plan = self.job.layout
        target = plan.seam_context(w.index - 1)[0] if 0 < w.index < len(plan.windows) else 0
        with self.timer("write"):
            self.sink.wait_closed(min(target, self.job.end))
        self._discard_upto(plan.first_needed(max(self.sink.closed, self.job.start)))

    def _discard_upto(self, first_needed: int) -> None:
        for i in range(self._dropped, first_needed):
            self.store.discard(i)
        self._dropped = max(self._dropped, first_needed)

    def _emit(self, final, bar) -> None:
        """Frames that became final: the new ones in the range go to the sink as one segment."""
        job = self.job
        keep = [(t, f) for t, f in final if max(job.start, self.left.covered) <= t < job.end]
        if keep:
            with self.timer("write"):
                self.sink.submit(keep[0][0], torch.cat([f for _, f in keep], dim=2))
            if bar:
                bar.update(len(keep))
        if self.meter is not None:
            self.meter.add([(t, f) for t, f in final if job.start <= t < job.end])

    def _measure_scratch(self) -> None:
        self.scratch_peak = max(self.scratch_peak, self.store.scratch_bytes() + self.sink.scratch_bytes())

    def stop(self) -> None:
        if self.sink is not None:
            self.sink.stop()


class MemoryWindows:
    """The store of a run in memory: finished windows kept as they are until the join has used them."""

    def __init__(self):
        self._windows: dict[int, torch.Tensor] = {}

    def save(self, index: int, x: torch.Tensor) -> torch.Tensor:
        self._windows[index] = x
        return x

    def load(self, index: int, shape: tuple[int, ...]) -> torch.Tensor | None:
        return self._windows.get(index)

    def discard(self, index: int) -> None:
        self._windows.pop(index, None)

    def flush(self) -> None:
        pass

    def scratch_bytes(self) -> int:
        return 0


class MemorySink:
    """The sink of a run in memory: the final frames in order, as (T, H, W, 3) uint8 (rounded as a file's) or
    as a (1, 3, T, H, W) float tensor in [0, 1]."""

    def __init__(self, start: int, float_output: bool):
        self.closed, self.float_output = start, float_output
        self.itemsize = 4 if float_output else 1
        self._parts: list = []

    def submit(self, first: int, frames: torch.Tensor) -> None:
        frames = frames.detach().to("cpu", torch.float32)
        self._parts.append(frames.add(1).div_(2).clamp_(0, 1) if self.float_output
                           else np.stack(list(tensor_to_frames(frames))))
        self.closed = first + frames.shape[2]

    def wait_closed(self, frame: int) -> None:
        pass

    def wait(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def scratch_bytes(self) -> int:
        return 0

    def frames(self):
        return torch.cat(self._parts, dim=2) if self.float_output else np.concatenate(self._parts)


def _space_needed(job: Job) -> int:
    """About how many bytes the rest of a run writes: three windows of state (float16) and the output."""
    t, h, w = job.shape
    window = 3 * 2 * h * w * job.layout.windows[0].frames
    return 3 * window + (job.end - job.start) * h * w  # ~1 byte a pixel: the output, with room to spare


def _facts(job: Job, request: Request, output: Path, procs: Processes, timer: StageTimer,
           restore_window: WindowRestorer, run: Run, t_start: float, plan: dict | None) -> dict:
    facts = restore_window.facts()
    stages = {**timer.rounded(), **facts.pop("seconds_per_stage", {})}
    prior, models, left = request.prior, request.models, run.left
    return {
        "input": str(request.input), "output": str(output), "problem": job.cfg.name, "prior": prior,
        "frames": job.end - job.start, "start": job.start, "end": job.end, "height": job.shape[1],
        "width": job.shape[2], "fps": str(job.fps), "seconds": round(time.perf_counter() - t_start, 3),
        "seconds_per_stage": stages, "windows": len(left.needed), "windows_reused": len(left.reused),
        "windows_total": len(job.layout.windows), "window_frames": job.layout.windows[0].frames,
        "resumed_at_frame": left.covered if left.covered > job.start else None,
        "scratch_peak_mb": round(run.scratch_peak / 2**20, 1),
        "processes": procs.count, "peak_memory_mb": peak_memory_mb(), "device": str(procs.device),
        "seed": request.seed,
        "nfe": {"video": 0, "image": 0, "total": 0}, **describe_models(prior, models), **facts,
        "relative_residual": run.meter.value() if run.meter else None,
        "naive_residual": run.meter.naive() if run.meter else None, "fit": _fit(job, run.meter),
        "memory_plan": plan, "frames_kept": frames_kept(job.cfg.operator),
        "config": _config(job),
    }


# A player's picture re-degraded differs from the input by 4-8 % under the operator that made it (Adobe240 street,
# ffmpeg- and PIL-shrunk, every resampler), by 13 % under the paper's grid: above this, say the operator is suspect
SUSPECT_NAIVE = 0.10
SUSPECT_GUIDE = 1.5  # a guide's misfit above this many times the player's picture's: warned about (see _fit)


def memory_plan(job: Job, prior: str, models: ModelOptions, device: torch.device, held: int | None) -> dict | None:
    """Where the real networks sit at each stage of one window and the expected peak (generative priors). ``held``:
    the bytes this process holds besides the networks, counted on the CPU, whose memory the networks share."""
    from lvtino.models.prompts import prompts_cached
    from lvtino.models.spec import load_models_spec
    from lvtino.pipeline import memory
    from lvtino.pipeline.priors import network_dtypes

    if not networks_of(prior):
        return None
    kinds = list(networks_of(prior))
    if models.models == "tiny":
        return {"note": f"{said('models', 'tiny')}: no plan (the plan is for the real networks)"}
    spec = load_models_spec(models.models)
    video_dtype, image_dtype = network_dtypes(models.dtype, device)
    stages = memory.plan(kinds, job.layout.windows[0].frames, job.shape[1], job.shape[2], models.offload,
                         video_dtype.itemsize, image_dtype.itemsize, spec.image.batch_size,
                         all(prompts_cached(spec, k) for k in kinds))
    # on the CPU the networks share the process's memory with what it holds besides (interpreter, torch, diffusers,
    # the frames read: ~0.6 GB) and with the freed blocks the allocator keeps for reuse (up to 1 GiB with the CLI's
    # setting): memory that a GPU's does not carry. Measured (scripts/real_size.py): within 4 % of the peak.
    process = {} if device.type != "cpu" else {
        "what this process holds": (held or 0) / memory.GB,
        "freed blocks kept for reuse": allocator_keeps() / memory.GB}
    process = {what: gb for what, gb in process.items() if gb}
    return {**memory.as_facts(stages, process), "lines": memory.describe(stages, process), "offload": models.offload}


def _fit(job: Job, meter: ResidualMeter | None) -> dict:
    """How the restoration and a player's picture explain the input once re-degraded, in grey levels (RMS), beside
    the input's compression noise read from its quantiser."""
    from lvtino.video.quality import compression_noise

    from lvtino.pipeline.measurement import unmeasured_frames

    fit = {"rms_grey": meter.rms() if meter else {}, "compression": None, "suspect_operator": False,
           "frames": job.end - job.start, "unmeasured_frames": unmeasured_frames(job.physics, job.start, job.end)}
    if meter is not None and meter.naive() is not None and "operator" not in job.info.metadata:
        # a measurement lvtino made records its operator: only a guessed one (words, a preset) can be wrong
        fit["suspect_operator"] = meter.naive() > SUSPECT_NAIVE
    rms = fit["rms_grey"]
    # a guide that explains the input clearly worse than a player's picture of it is likely not aligned with it
    # (another first frame or rate, a crop) or not of it. Measured on the street frames (ffmpeg-shrunk 4x, 7.5 fps,
    # crf 23): ffmpeg's minterpolate of the file, aligned, 3.10 grey levels (3.60 once H.264-encoded) against the
    # player's 3.22; the same guide one frame off, 12.45
    fit["suspect_guide"] = "guide" in rms and "naive" in rms and rms["guide"] > SUSPECT_GUIDE * rms["naive"]
    if job.info.kind == "video":
        found = compression_noise(job.info.path, stream=job.info.stream)
        if found is not None:
            fit["compression"] = {"mean_qp": round(found.qp, 2), "noise_std": round(found.noise_std, 5),
                                  "noise_grey": round(127.5 * found.noise_std, 3), "frames_read": found.frames}
    return fit


def _config(job: Job) -> dict:
    from dataclasses import asdict

    return asdict(job.cfg)


def _progress(total: int, procs: Processes):
    if not (procs.is_main and sys.stderr.isatty()) or log.getEffectiveLevel() > logging.INFO:  # -q: no bar
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="lvtino restore", leave=True)
