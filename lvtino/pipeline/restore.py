"""``lvtino restore``: restore a degraded video of any length, file to file, in windows.

The measurement is decoded as the windows need it; each window is restored on
its own and kept in the run's state folder. The main process joins the windows
in order and hides the seams (``pipeline.windows``); the frames that became
final after each window are encoded, on a background thread, as one closed
segment of the output (``video.segments``), and the window files no later frame
needs are deleted. At the end the segments are joined into the output by stream
copy. Memory and scratch disk depend on the window and frame size, not on the
video's length, and ``--resume`` goes on from the last closed segment.

Under ``torchrun``/``accelerate launch`` the windows still to restore are dealt
out in turn (window i to process i mod N); the other processes save theirs into
the state folder, at most a few windows ahead of the main process's join, which
they read from a small progress file there: a state folder on a path every
machine shares is all a cluster needs.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import torch

from lvtino.distributed import Processes
from lvtino.errors import DiskFull, NotWritten, UserError, arg, is_disk_full, said
from lvtino.files import write_json
from lvtino.pipeline.common import check_device, peak_memory_mb, reset_peak_memory
from lvtino.pipeline.job import (Job, encoding_settings, output_digest, prepare, run_settings, source_seconds,
                                 window_shape)
from lvtino.pipeline.measurement import ResidualMeter
from lvtino.pipeline.priors import GUIDE, PRIORS, ModelOptions, Networks, describe_models, make_prior
from lvtino.pipeline.state import RunState, input_identity
from lvtino.pipeline.windows import Joiner, Window, seam_step
from lvtino.pipeline.words import Words
from lvtino.runtime import StageTimer
from lvtino.video.frames import DecodedFrames
from lvtino.video.segments import Encoder, Segments
from lvtino.validation import whole
from lvtino.video.writer import check_encoding

log = logging.getLogger("lvtino")
AHEAD = 2  # windows each other process may restore ahead of the main process's join


def window_seed(seed: int, index: int) -> int:
    """The sampler's seed for window ``index``: the same whichever process restores it."""
    return (seed * 1_000_003 + index) % (2**63)


class WindowRestorer:
    """Restores one window at a time with the prior (its networks loaded at the first window) into the state."""

    def __init__(self, job: Job, prior: str, models: ModelOptions | None, seed: int, state: RunState,
                 measured: DecodedFrames, device: torch.device, timer: StageTimer, networks: Networks | None = None):
        self.job, self.prior_name, self.models, self.seed, self.networks = job, prior, models, seed, networks
        self.guide = DecodedFrames(job.guide, device, timer) if job.guide is not None else None
        self.state, self.measured, self.device, self.timer = state, measured, device, timer
        self.prior = None
        self.count = 0
        self.iterations: list[int] = []
        self.before_save = None  # (window) -> callable run before its file is written; see _Run.make_room

    def __call__(self, w: Window) -> torch.Tensor:
        job = self.job
        if self.prior is None:
            with self.timer("load"):
                self.prior = make_prior(self.prior_name, job.cfg, self.models, self.device, self.networks,
                                        guide=self.guide)
        physics_w, rows = job.plan.operator(w)
        previous = job.plan.operator(job.plan.windows[max(0, w.index - 1)])[1]  # its rows serve the coming seam too
        y = self.measured.get(rows, keep_from=min(previous + rows, default=None))
        with self.timer("prior"):
            x, facts = self.prior(physics_w, y, window_seed(self.seed, w.index), span=(w.start, w.end))
        if facts.get("solver_iterations") is not None:
            self.iterations.append(facts["solver_iterations"])
        self.count += 1
        with self.timer("state"):
            return self.state.save(w.index, x, self.before_save(w) if self.before_save else None)

    def facts(self) -> dict:
        if self.prior is None:
            return {}
        facts = self.prior.facts()
        nfe = facts.pop("nfe")
        facts["nfe"] = {k: v // max(1, self.count) for k, v in nfe.items()}  # per window (per clip when one)
        if self.iterations:
            facts["solver_iterations"] = max(self.iterations)
        return facts


def restore(input: str | Path, output: str | Path, problem: str | None = None, prior: str | None = None,
            config: str | Path | None = None, overrides: list[str] | None = None, start=None, end=None,
            frames: int | None = None, stats: str | Path | None = None, fps=None, crf: int = 18,
            preset: str = "medium", no_audio: bool = False, device: str = "cpu", models: ModelOptions | None = None,
            seed: int = 0, resume: bool = False, keep_state: bool = False, window: int | None = None,
            overlap: int | None = None, processes: Processes | None = None, overwrite: str = "ask",
            accept_truncated: bool = False, words: Words | None = None, pix_fmt: str = "yuv420p",
            dry_run: bool = False, networks: Networks | None = None, guide: str | Path | None = None) -> dict | None:
    """Restore a degraded video with ``prior`` (default tv) and write output frames [start, end).

    ``guide``: another tool's restoration of the input (at the output's size, rate and frame count), made
    consistent with the input instead of a prior (``solvers.guide``).

    Returns the run's facts (as ``--stats`` writes them) on the main process,
    None on the other processes of a multi-process launch. ``dry_run``: check
    everything, write nothing, and return the plan (range, windows, memory).
    ``networks``: loaded networks to use and keep (a ``Restorer``'s, a batch's);
    by default the run loads its own.
    """
    t_start = time.perf_counter()
    reset_peak_memory()
    # 1. Check inputs and outputs; settle the operator, sizes, range and windows
    if guide is not None and prior is not None:
        raise UserError(f"{said('prior', prior)} and {said('guide', str(guide))}: the guide takes the prior's place; "
                        "give one")
    prior = GUIDE if guide is not None else (prior or "tv")
    if prior not in PRIORS and guide is None:
        raise UserError(f"{said('prior', prior)}: unknown prior (known: {', '.join(PRIORS)})")
    check_encoding(crf, preset, pix_fmt)
    seed = whole(0, 2**63 - 1).parse(seed, arg("seed"))
    procs = processes or Processes(check_device(device))
    job, output = prepare(input, output, problem, config, overrides, start, end, frames, fps, stats=stats,
                          models=(models or ModelOptions()).models, overwrite="yes" if resume else overwrite,
                          accept_truncated=accept_truncated, window=window, overlap=overlap, words=words,
                          guide=guide)
    if dry_run:
        return {"dry_run": True, "input": str(input), "output": str(output), "problem": job.cfg.name, "prior": prior,
                "operator": job.cfg.operator, "frames": job.end - job.start, "start": job.start, "end": job.end,
                "height": job.shape[1], "width": job.shape[2], "fps": str(job.fps), "windows": len(job.selected),
                "window_frames": job.plan.windows[0].frames, "device": str(procs.device),
                "memory_plan": memory_plan(job, prior, models or ModelOptions(), procs.device)}
    # 2. The state folder (one run per output): closed segments, finished windows, what is left to restore
    settings = run_settings(job, prior, seed, models,
                            encoding_settings(output, job.info, crf, preset, pix_fmt, no_audio))
    identity = input_identity(Path(input))
    state = RunState(output, identity, settings, procs, resume, keep_state).open()
    timer = StageTimer(procs.device)
    timer.seconds.update(dict.fromkeys(("read", "load", "prior", "join", "write", "state", "residual"), 0.0))
    measured = DecodedFrames(job.info, procs.device, timer)
    restore_window = WindowRestorer(job, prior, models, seed, state, measured, procs.device, timer, networks)
    run = _Run(job, state, procs, timer, measured, restore_window)
    try:
        if not procs.is_main:  # 3a. Other processes: their turns of the windows, into the state folder
            run.others()
            return None
        # 3b. Main process: its turns, every needed window joined in order, final frames into closed segments
        segments = Segments(state.folder / "segments", output, job.fps, job.start, job.end, crf, preset, pix_fmt)
        run.main(segments)
        audio = None if no_audio or not job.info.has_audio else input
        factor = job.physics.factors[0]
        made_by = {"problem": job.cfg.name, "operator": job.cfg.operator, "prior": prior,
                   "settings": output_digest(job, settings, identity), **describe_models(prior, models)}
        with timer("write"):
            segments.join(metadata={"restored_by": made_by}, audio_from=audio, rotation=job.info.rotation,
                          audio_range=(source_seconds(job.info, factor, job.start),
                                       source_seconds(job.info, factor, job.end)))
        result = _facts(job, input, output, prior, models, seed, procs, timer, restore_window, run, t_start)
    except BaseException as err:
        run.stop()
        state.abandon()
        if is_disk_full(err):
            where = getattr(err, "filename", None)
            where = where if where and state.folder in Path(where).parents else output  # not a temporary name
            raise DiskFull(where, _space_needed(job), resumable=state.folder.is_dir()) from None
        raise
    state.finish()
    if stats is not None:
        try:
            write_json(stats, result)
        except OSError as err:
            raise NotWritten(arg("stats"), stats, err, f"the output {output} was written whole") from None
    return result


class _Run:
    """The windows of one run, shared out between the processes, and the main process's join."""

    def __init__(self, job: Job, state: RunState, procs: Processes, timer: StageTimer, measured: DecodedFrames,
                 restore_window: WindowRestorer):
        self.job, self.state, self.procs, self.timer = job, state, procs, timer
        self.measured, self.restore_window = measured, restore_window
        self.encoder: Encoder | None = None
        self.meter: ResidualMeter | None = None
        self.reused: list[int] = []
        self.restored: list[int] = []
        self.scratch_peak = 0
        self._dropped = 0  # windows before this one have no file any more
        self._discard_lock = threading.Lock()
        # what is left: decided by the main process, the same list for every process
        self.covered, todo, self.needed, self.reused = procs.broadcast(self._left() if procs.is_main else None)
        self.todo = [job.plan.windows[i] for i in todo]
        self.position = {w.index: k for k, w in enumerate(self.todo)}

    def _left(self):
        job = self.job
        covered = Segments(self.state.folder / "segments", Path(self.state.output), job.fps, job.start, job.end
                           ).covered()
        needed = [w.index for w in job.plan.select(covered, job.end)] if covered < job.end else []
        reused = [i for i in needed if self.state.has(i, window_shape(job, job.plan.windows[i]))]
        todo = [i for i in needed if i not in set(reused)]
        return covered, todo, needed, reused

    def mine(self, w: Window) -> bool:
        return self.position.get(w.index, -1) % self.procs.count == self.procs.index

    def others(self) -> None:
        """Restore this process's turns, never more than AHEAD windows past the main process's join."""
        for w in self.todo:
            if not self.mine(w):
                continue
            self.state.wait_progress(self.position[w.index] - AHEAD * self.procs.count)
            self.restore_window(w)
            self.state.flush()
        self.procs.wait()

    def make_room(self, w: Window):
        """Before window ``w``'s file is written: wait until the frames joined so far (through window w - 1) lie in
        closed segments, and drop the files no later frame needs. The folder then holds two windows, and a third
        only while it is being written."""
        target = self.job.plan.seam_context(w.index - 1)[0] if 0 < w.index < len(self.job.plan.windows) else 0
        target = min(target, self.job.end)

        def wait():
            encoder = self.encoder
            if encoder is None:
                return
            encoder.wait_closed(target)
            self.discard_upto(self.job.plan.first_needed(max(encoder.closed, self.job.start)))
        return wait

    def discard_upto(self, first_needed: int) -> None:
        with self._discard_lock:
            for i in range(self._dropped, first_needed):
                self.state.discard(i)
            self._dropped = max(self._dropped, first_needed)

    def main(self, segments: Segments) -> None:
        job = self.job
        self.encoder = Encoder(segments, self.covered)
        self.restore_window.before_save = self.make_room
        guide = DecodedFrames(job.guide, self.procs.device, self.timer) if job.guide is not None else None
        self.meter = ResidualMeter(job.physics, job.supports, job.start, job.end, self.measured, self.timer,
                                   first=self.covered, guide=guide)
        seam = seam_step(job.physics, self.measured, job.cfg.pinv.eps) if job.physics.linear else None
        joiner = Joiner(job.plan, seam)
        bar = _progress(job.end - self.covered, self.procs)
        for w in (job.plan.windows[i] for i in self.needed):
            x = self._window(w)
            with self.timer("join"):
                final = list(joiner.add(w, x))
            self._emit(final, bar)
            if self.procs.count > 1 and w.index in self.position:
                self.state.set_progress(self.position[w.index])
            self.discard_upto(job.plan.first_needed(max(self.encoder.closed, job.start)))
            self._measure_scratch(self._dropped, w.index)
        with self.timer("join"):
            final = list(joiner.finish())
        self._emit(final, bar)
        with self.timer("write"):
            self.encoder.wait()
        self.state.flush()
        self.procs.wait()  # every process passes this point once
        if bar:
            bar.close()

    def _window(self, w: Window) -> torch.Tensor:
        shape = window_shape(self.job, w)
        if w.index in self.position and self.mine(w):
            self.restored.append(w.index)
            return self.restore_window(w).to(self.procs.device)
        if w.index in self.position:  # another process's turn: wait for its file
            self.state.wait_window(w.index)
        with self.timer("state"):
            x = self.state.load(w.index, shape)
        if x is None:  # damaged: restore it here
            self.restored.append(w.index)
            return self.restore_window(w).to(self.procs.device)
        return x.to(self.procs.device)

    def _emit(self, final, bar) -> None:
        """Frames that became final: the new ones in the range go to the encoder as one segment."""
        job = self.job
        keep = [(t, f) for t, f in final if max(job.start, self.covered) <= t < job.end]
        if keep:
            with self.timer("write"):
                self.encoder.submit(keep[0][0], torch.cat([f for _, f in keep], dim=2))
            if bar:
                bar.update(len(keep))
        self.meter.add([(t, f) for t, f in final if job.start <= t < job.end])

    def _measure_scratch(self, dropped: int, current: int) -> None:
        windows = sum(128 + 2 * 3 * w.frames * self.job.shape[1] * self.job.shape[2]
                      for w in self.job.plan.windows[dropped:current + 1])
        self.scratch_peak = max(self.scratch_peak, windows + self.encoder.segments_bytes)

    def stop(self) -> None:
        if self.encoder is not None:
            self.encoder.stop()


def _space_needed(job: Job) -> int:
    """About how many bytes the rest of a run writes: three windows of state (float16) and the output."""
    t, h, w = job.shape
    window = 3 * 2 * h * w * job.plan.windows[0].frames
    return 3 * window + (job.end - job.start) * h * w  # ~1 byte a pixel: the output, with room to spare


def _facts(job: Job, input, output, prior, models, seed, procs, timer, restore_window, run: _Run, t_start) -> dict:
    facts = restore_window.facts()
    stages = {**timer.rounded(), **facts.pop("seconds_per_stage", {})}
    return {
        "input": str(input), "output": str(output), "problem": job.cfg.name, "prior": prior,
        "frames": job.end - job.start, "start": job.start, "end": job.end, "height": job.shape[1],
        "width": job.shape[2], "fps": str(job.fps), "seconds": round(time.perf_counter() - t_start, 3),
        "seconds_per_stage": stages, "windows": len(run.needed), "windows_reused": len(run.reused),
        "windows_total": len(job.plan.windows), "window_frames": job.plan.windows[0].frames,
        "resumed_at_frame": run.covered if run.covered > job.start else None,
        "scratch_peak_mb": round(run.scratch_peak / 2**20, 1),
        "processes": procs.count, "peak_memory_mb": peak_memory_mb(), "device": str(procs.device), "seed": seed,
        "nfe": {"video": 0, "image": 0, "total": 0}, **describe_models(prior, models), **facts,
        "relative_residual": run.meter.value() if run.meter else None,
        "naive_residual": run.meter.naive() if run.meter else None, "fit": _fit(job, run.meter),
        "memory_plan": memory_plan(job, prior, models or ModelOptions(), procs.device),
        "config": _config(job),
    }


# A player's picture re-degraded differs from the input by 4-8 % under the operator that made it (Adobe240 street,
# ffmpeg- and PIL-shrunk, every resampler), by 13 % under the paper's grid: above this, say the operator is suspect
SUSPECT_NAIVE = 0.10


def memory_plan(job: Job, prior: str, models: ModelOptions, device: torch.device) -> dict | None:
    """Where the real networks sit at each stage of one window and the expected peak (generative priors)."""
    from lvtino.models.loader import load_models_spec, prompts_cached
    from lvtino.pipeline import memory
    from lvtino.pipeline.priors import GENERATIVE, network_dtypes

    if prior not in GENERATIVE:
        return None
    kinds = list(GENERATIVE[prior])
    if models.models == "tiny":
        return {"note": f"{said('models', 'tiny')}: no plan (the plan is for the real networks)"}
    spec = load_models_spec(models.models)
    video_dtype, image_dtype = network_dtypes(models.dtype, device)
    stages = memory.plan(kinds, job.plan.windows[0].frames, job.shape[1], job.shape[2], models.offload,
                         video_dtype.itemsize, image_dtype.itemsize, spec.image.batch_size,
                         all(prompts_cached(spec, k) for k in kinds))
    return {**memory.as_facts(stages), "lines": memory.describe(stages), "offload": models.offload}


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
    if job.info.kind == "video":
        found = compression_noise(job.info.path)
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
