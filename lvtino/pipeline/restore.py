"""``lvtino restore``: restore a degraded video of any length, file to file, in windows.

The measurement is decoded as the windows need it; each window is restored on
its own (by this process or, under ``accelerate launch``/``torchrun``, by its
share's process) and kept in the run's state folder; the main process joins the
windows in order, hides the seams (``pipeline.windows``) and encodes each frame
as soon as it is final. Memory depends on the window and frame size, not on
the video's length.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import torch

from lvtino.config import MAX_WINDOW, ProblemConfig, apply_overrides, from_dict, known_problems, load_raw
from lvtino.distributed import Processes
from lvtino.errors import DiskFull, UserError, is_disk_full
from lvtino.files import write_json
from lvtino.physics.problems import chain_factors, validate_chain
from lvtino.pipeline.common import build_checked_physics, check_device, peak_memory_mb, reset_peak_memory
from lvtino.pipeline.outputs import Output, check_outputs
from lvtino.pipeline.priors import PRIORS, ModelOptions, describe_models, make_prior
from lvtino.pipeline.state import RunState, input_identity, run_digest
from lvtino.pipeline.windows import Joiner, Plan, Window, plan_windows
from lvtino.runtime import StageTimer
from lvtino.validation import Number, Text, whole
from lvtino.video.convert import frames_to_tensor, tensor_to_frames
from lvtino.video.reader import VideoInfo, probe, read_frames
from lvtino.video.writer import VideoWriter, output_kind

_TIMESTAMP = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")
MAX_FRAMES = 10_000_000  # ~93 hours at 30 fps
MAX_SIDE = 16_384
log = logging.getLogger("lvtino")


RECORDED = {"problem": Text(), "frames": whole(1, MAX_FRAMES), "height": whole(1, MAX_SIDE),
            "width": whole(1, MAX_SIDE), "noise_std": Number(ge=0, le=1)}


def read_recorded(info: VideoInfo, ignore: set[str] = frozenset()) -> dict:
    """The degradation a measurement file records, checked like a preset: the file is input, not trusted.

    Entries named in ``ignore`` (overridden by the user) are left out unchecked.
    """
    meta = info.metadata
    out = {}
    for key in [k for k in ("problem", "operator", *RECORDED) if k in meta and k not in ignore]:
        try:
            if key == "operator":
                out[key] = validate_chain(meta[key], "operator")
            elif key != "problem" or "problem" not in out:
                out[key] = RECORDED[key].parse(meta[key], key)
        except UserError as err:
            hint = "--frames" if key == "frames" else "--problem (and --frames)"
            raise UserError(f"{info.path}: its recorded degradation is not valid ({err}); pass {hint} to restore "
                            "it without the recording") from None
    return out


def resolve_problem(info: VideoInfo, problem: str | None, config, overrides, frames: int | None,
                    ) -> tuple[ProblemConfig, tuple[int, int, int]]:
    """The preset and the restored video's (T, H, W).

    A measurement written by ``degrade`` records its problem, operator and the
    clean video's size; those are used unless ``--problem``/``--config`` name
    another degradation or ``--frames`` another length (each with a notice). The
    result is checked against the frames and size the file actually holds.
    """
    named = _recorded_name(info)
    explicit = config is not None or (problem is not None and problem != named)
    ignore = set(RECORDED) | {"operator"} if explicit else ({"frames"} if frames is not None else set())
    recorded = read_recorded(info, ignore)
    name = recorded.get("problem")
    if problem is None and config is None:
        if name is None or "operator" not in recorded:
            raise UserError(f"{info.path}: carries no lvtino metadata; name the degradation with --problem")
        if name not in known_problems():
            raise UserError(f"{info.path}: records problem {name!r}, which is not a packaged preset; give its "
                            "preset with --config FILE")
        problem = name
    raw = load_raw(problem, config)
    if "operator" in recorded:
        raw["operator"] = recorded["operator"]
    elif explicit and info.metadata:
        given = f"--problem {problem}" if config is None else f"--config {config}"
        log.info("%s overrides the degradation recorded in %s (problem %s) and the sizes it records", given,
                 info.path, named)
    cfg = from_dict(ProblemConfig, apply_overrides(raw, overrides or [])).validate()
    factors = chain_factors(cfg.operator)
    if frames is not None and not explicit and info.metadata.get("frames") not in (None, frames):
        log.info("--frames %d overrides the %s frames recorded in %s", frames, info.metadata["frames"], info.path)
    t = frames or recorded.get("frames") or factors[0] * info.frames
    h = recorded.get("height") or factors[1] * info.height
    w = recorded.get("width") or factors[2] * info.width
    return cfg, (t, h, w)


def _recorded_name(info: VideoInfo) -> str | None:
    name = info.metadata.get("problem")
    return name if isinstance(name, str) else None


def frame_position(value, job_fps: Fraction, info: VideoInfo, factor: int, what: str) -> int | None:
    """An output frame index from ``--start``/``--end``: a whole number, or a time [HH:]MM:SS[.fff]."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    m = _TIMESTAMP.match(text)
    if not m:
        raise UserError(f"{what} {text}: expected a frame number or a time such as 00:01:02.5")
    seconds = Fraction(int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60) + Fraction(m.group(3))
    if info.variable_rate:
        return info.index_at(float(seconds)) * factor
    return round(seconds * job_fps)


def source_seconds(info: VideoInfo, factor: int, k: int) -> float:
    """Where output frame ``k`` sits on the input's own timeline (its timestamps, for audio)."""
    m, r = divmod(k, factor)
    t0 = info.time_of(min(m, info.frames))
    if r == 0:
        return t0
    return t0 + r * (info.time_of(min(m + 1, info.frames)) - t0) / factor


def window_seed(seed: int, index: int) -> int:
    """The sampler's seed for window ``index``: the same whichever process restores it."""
    return (seed * 1_000_003 + index) % (2**63)


class MeasuredFrames:
    """Measured frames decoded on demand, in increasing order, kept while a window or seam may need them."""

    def __init__(self, info: VideoInfo, device: torch.device, timer: StageTimer):
        self.info, self.device, self.timer = info, device, timer
        self.cache: dict[int, torch.Tensor] = {}
        self._frames = None
        self._next = None

    def get(self, rows: list[int], keep_from: int | None = None) -> torch.Tensor:
        """Frames ``rows`` as (1, 3, n, h, w); frames below ``keep_from`` are forgotten."""
        with self.timer("read"):
            return self._get(rows, keep_from)

    def _get(self, rows: list[int], keep_from: int | None) -> torch.Tensor:
        if keep_from is not None:
            for r in [r for r in self.cache if r < keep_from]:
                del self.cache[r]
        missing = [r for r in rows if r not in self.cache]
        if missing:
            first = missing[0]
            if self._frames is None or self._next is None or first < self._next or first > self._next + 8:
                self._frames = read_frames(self.info, first)  # seek
                self._next = first
            while self._next <= missing[-1]:
                self.cache[self._next] = frames_to_tensor([next(self._frames)])
                self._next += 1
        return torch.cat([self.cache[r] for r in rows], dim=2).to(self.device)


@dataclass
class Job:
    """What a restoration is, once its inputs are checked: operator, sizes, range, windows."""

    info: VideoInfo
    cfg: ProblemConfig
    physics: object
    shape: tuple[int, int, int]
    fps: Fraction
    start: int
    end: int
    supports: list  # per measured frame, the signal frames [lo, hi) it depends on (None: wraps around)
    plan: Plan
    selected: list[Window]


def prepare(input, output, problem, config, overrides, start, end, frames, fps, stats=None, models=None,
            overwrite: str = "ask", accept_truncated: bool = False) -> tuple[Job, Path]:
    """Check the inputs and every output path; settle the operator, the output's size, the range and the windows.

    Nothing is written here: a mistake found now leaves no file behind.
    """
    if frames is not None:
        frames = whole(1, MAX_FRAMES).parse(frames, "--frames")
    info = probe(input, fps, accept_truncated=accept_truncated)
    output = Path(output)
    kind = output_kind(output)
    check_outputs([Output("-o", output, "frames" if kind == "frames" else "video"),
                   *([Output("--stats", Path(stats))] if stats is not None else [])],
                  [("the input", input), ("--config", config),
                   ("--models", models if models not in (None, "tiny") else None)], overwrite)
    note = info.rate_note()
    if note:
        log.info("%s", note)
    cfg, shape = resolve_problem(info, problem, config, overrides, frames)
    physics = build_checked_physics(cfg, shape)
    measured = physics.output_shape(shape)
    held = (info.frames, info.height, info.width)
    if measured != held:
        source = "recorded in the file" if info.metadata and frames is None else "asked for"
        raise UserError(f"{input}: holds {info.frames} frames of {info.width}x{info.height}, but problem {cfg.name} "
                        f"on {shape[0]} frames of {shape[2]}x{shape[1]} ({source}) measures {measured[0]} frames of "
                        f"{measured[2]}x{measured[1]}; check --problem and --frames")
    return _plan(info, cfg, shape, start, end, physics), output


def _plan(info: VideoInfo, cfg: ProblemConfig, shape, start, end, physics=None) -> Job:
    """The output's frame rate and range, and the windows it needs."""
    physics = physics or build_checked_physics(cfg, shape)
    factor = physics.factors[0]
    out_fps = info.fps * factor
    start = frame_position(start, out_fps, info, factor, "--start")
    end = frame_position(end, out_fps, info, factor, "--end")
    start = 0 if start is None else start
    end = shape[0] if end is None else end
    if not 0 <= start < end <= shape[0]:
        raise UserError(f"--start {start} --end {end}: the range must satisfy 0 <= start < end <= {shape[0]} "
                        "(output frames)")
    supports = physics.time_supports(shape[0])
    plan = plan_windows(supports, shape[0], factor, cfg.window.frames, cfg.window.overlap)
    return Job(info, cfg, physics, shape, out_fps, start, end, supports, plan, plan.select(start, end))


class WindowRestorer:
    """Restores one window at a time with the prior (its networks loaded at the first window) into the state."""

    def __init__(self, job: Job, prior: str, models: ModelOptions | None, seed: int, state: RunState,
                 measured: MeasuredFrames, device: torch.device, timer: StageTimer):
        self.job, self.prior_name, self.models, self.seed = job, prior, models, seed
        self.state, self.measured, self.device, self.timer = state, measured, device, timer
        self.prior = None
        self.count = 0
        self.iterations: list[int] = []

    def __call__(self, w: Window) -> torch.Tensor:
        job = self.job
        if self.prior is None:
            with self.timer("load"):
                self.prior = make_prior(self.prior_name, job.cfg, self.models, self.device)
        physics_w, rows = job.physics.restrict_time(w.start, w.end)
        before = job.plan.windows[max(0, w.index - 1)].start  # its measured frames serve the coming seam too
        y = self.measured.get(rows, keep_from=job.physics.restrict_time(before, w.end)[1][0])
        with self.timer("prior"):
            x, facts = self.prior(physics_w, y, window_seed(self.seed, w.index))
        if facts.get("solver_iterations") is not None:
            self.iterations.append(facts["solver_iterations"])
        self.count += 1
        with self.timer("state"):
            return self.state.save(w.index, x)

    def facts(self) -> dict:
        if self.prior is None:
            return {}
        facts = self.prior.facts()
        nfe = facts.pop("nfe")
        facts["nfe"] = {k: v // max(1, self.count) for k, v in nfe.items()}  # per window (per clip when one)
        if self.iterations:
            facts["solver_iterations"] = max(self.iterations)
        return facts


def restore(input: str | Path, output: str | Path, problem: str | None = None, prior: str = "tv",
            config: str | Path | None = None, overrides: list[str] | None = None, start=None, end=None,
            frames: int | None = None, stats: str | Path | None = None, fps=None, crf: int = 18,
            preset: str = "medium", no_audio: bool = False, device: str = "cpu", models: ModelOptions | None = None,
            seed: int = 0, resume: bool = False, keep_state: bool = False, window: int | None = None,
            overlap: int | None = None, processes: Processes | None = None, overwrite: str = "ask",
            accept_truncated: bool = False) -> dict | None:
    """Restore a degraded video with ``prior`` and write output frames [start, end).

    Returns the run's facts (as ``--stats`` writes them) on the main process,
    None on the other processes of a multi-process launch.
    """
    t_start = time.perf_counter()
    reset_peak_memory()
    # 1. Check inputs and outputs; settle the operator, sizes, range and windows
    if prior not in PRIORS:
        raise UserError(f"--prior {prior}: unknown prior (known: {', '.join(PRIORS)})")
    procs = processes or Processes(check_device(device))
    overrides = [*(overrides or []), *_window_overrides(window, overlap)]
    job, output = prepare(input, output, problem, config, overrides, start, end, frames, fps, stats=stats,
                          models=(models or ModelOptions()).models, overwrite="yes" if resume else overwrite,
                          accept_truncated=accept_truncated)
    # 2. The state folder (one run per output), and which windows are left to restore
    settings = run_settings(job, prior, seed, models)
    identity = input_identity(Path(input))
    state = RunState(output, identity, settings, procs, resume, keep_state).open()
    reused = {w.index for w in job.selected if state.has(w.index, window_shape(job, w))}
    todo = [w for w in job.selected if w.index not in reused]
    timer = StageTimer(procs.device)
    timer.seconds.update(dict.fromkeys(("read", "load", "prior", "join", "write", "state", "residual"), 0.0))
    measured = MeasuredFrames(job.info, procs.device, timer)
    restore_window = WindowRestorer(job, prior, models, seed, state, measured, procs.device, timer)
    try:
        with procs.split(todo) as mine:
            if not procs.is_main:  # 3a. Other processes: their share of the windows, into the state folder
                for w in mine:
                    restore_window(w)
                state.flush()
                procs.wait()
                return None
            # 3b. Main process: its share, then every selected window joined in order, frames encoded when final
            meter = ResidualMeter(job, measured, timer)
            audio = None if no_audio or not job.info.has_audio else input
            factor = job.physics.factors[0]
            made_by = {"problem": job.cfg.name, "prior": prior, "settings": output_digest(job, settings, identity),
                       **describe_models(prior, models)}
            span = (source_seconds(job.info, factor, job.start), source_seconds(job.info, factor, job.end))
            with VideoWriter(output, job.fps, crf=crf, preset=preset, audio_from=audio, rotation=job.info.rotation,
                             metadata={"restored_by": made_by}, audio_range=span) as writer:
                mine = {w.index for w in mine}
                waiting = {w.index for w in todo if w.index not in mine}  # the other processes' windows

                def window_of(w):
                    if w.index in mine:
                        return restore_window(w)
                    x = _load(state, job, w, timer)
                    return restore_window(w) if x is None else x  # a damaged file: restore the window again
                _join(job, window_of, measured, writer, meter, timer, procs, waiting)
            result = _facts(job, input, output, prior, models, seed, procs, timer, restore_window, meter, reused,
                            t_start)
            if stats is not None:
                write_json(stats, result)
    except BaseException as err:
        state.abandon()
        if is_disk_full(err):
            where = getattr(err, "filename", None)
            where = where if where and state.folder in Path(where).parents else output  # not a temporary name
            raise DiskFull(where, _space_needed(job), resumable=state.folder.is_dir() and bool(state.finished())
                           ) from None
        raise
    state.finish()
    return result


def run_settings(job: Job, prior: str, seed: int, models: ModelOptions | None) -> dict:
    """Everything that decides the windows' pixels (what a resumed run must share with the first)."""
    return {"config": asdict(job.cfg), "prior": prior, "seed": seed, "frames": job.shape[0],
            "models": asdict(models) if models else None, "windows": [(w.start, w.end) for w in job.plan.windows]}


def output_digest(job: Job, settings: dict, identity: dict) -> str:
    """The digest an output records: its input, settings and frame range (``batch`` compares it to skip work)."""
    return run_digest({**settings, "range": [job.start, job.end], "input": identity["digest"]})


def restore_digest(input, problem=None, prior="tv", config=None, overrides=None, start=None, end=None,
                   frames=None, fps=None, models: ModelOptions | None = None, seed: int = 0, window=None,
                   overlap=None) -> str:
    """The digest that ``restore`` with these arguments would record in its output (nothing is written)."""
    info = probe(input, fps)
    cfg, shape = resolve_problem(info, problem, config, [*(overrides or []), *_window_overrides(window, overlap)],
                                 frames)
    job = _plan(info, cfg, shape, start, end)
    return output_digest(job, run_settings(job, prior, seed, models), input_identity(Path(input)))


def _window_overrides(window, overlap) -> list[str]:
    """``--window``/``--overlap`` as preset entries, checked under the flags' own names."""
    out = []
    if window is not None:
        out.append(f"window.frames={whole(1, MAX_WINDOW).parse(window, '--window')}")
    if overlap is not None:
        out.append(f"window.overlap={whole(0, MAX_WINDOW).parse(overlap, '--overlap')}")
    return out


def window_shape(job: Job, w: Window) -> tuple[int, ...]:
    return (1, 3, w.frames, job.shape[1], job.shape[2])


def _space_needed(job: Job) -> int:
    """About how many bytes the rest of a run writes: three windows of state (float16) and the output."""
    t, h, w = job.shape
    window = 3 * 2 * h * w * job.plan.windows[0].frames
    return 3 * window + (job.end - job.start) * h * w  # ~1 byte a pixel: the output, with room to spare


def _facts(job, input, output, prior, models, seed, procs, timer, restore_window, meter, reused, t_start) -> dict:
    facts = restore_window.facts()
    stages = {**timer.rounded(), **facts.pop("seconds_per_stage", {})}
    return {
        "input": str(input), "output": str(output), "problem": job.cfg.name, "prior": prior,
        "frames": job.end - job.start, "start": job.start, "end": job.end, "height": job.shape[1],
        "width": job.shape[2], "fps": str(job.fps), "seconds": round(time.perf_counter() - t_start, 3),
        "seconds_per_stage": stages, "windows": len(job.selected), "windows_reused": len(reused),
        "windows_total": len(job.plan.windows), "window_frames": job.plan.windows[0].frames,
        "processes": procs.count, "peak_memory_mb": peak_memory_mb(), "device": str(procs.device), "seed": seed,
        "nfe": {"video": 0, "image": 0, "total": 0}, **describe_models(prior, models), **facts,
        "relative_residual": meter.value(), "config": asdict(job.cfg),
    }


def _load(state: RunState, job: Job, w: Window, timer: StageTimer) -> torch.Tensor | None:
    with timer("state"):
        return state.load(w.index, window_shape(job, w))


def _join(job: Job, window_of, measured, writer, meter, timer: StageTimer, procs: Processes,
          waiting: set[int]) -> None:
    """Blend the windows in order, correct the seams, encode and measure each frame once it is final.

    ``window_of(w)`` gives window w's restored frames; ``waiting`` names the
    windows that other processes restore (in the state folder once all wait).
    """
    seam = _seam_step(job.physics, measured, job.cfg.pinv.eps) if job.physics.linear else None
    joiner = Joiner(job.plan, seam)
    bar = _progress(len(job.selected), procs)
    waited = False

    def emit(final):
        with timer("write"):
            frames = [frame for t, frame in final if job.start <= t < job.end]
            if frames:
                for f in tensor_to_frames(torch.cat(frames, dim=2)):
                    writer.write(f)
        meter.add(final)

    for w in job.selected:
        if w.index in waiting and not waited:
            procs.wait()
            waited = True
        x = window_of(w).to(procs.device)
        with timer("join"):
            final = list(joiner.add(w, x))
        emit(final)
        if bar:
            bar.update(1)
    with timer("join"):
        final = list(joiner.finish())
    emit(final)
    if not waited:
        procs.wait()  # every process passes this point once
    if bar:
        bar.close()


class ResidualMeter:
    """||A x - y|| / ||y|| over the measured frames that depend on written frames only, as frames become final."""

    def __init__(self, job: Job, measured_frames: MeasuredFrames, timer: StageTimer):
        self.physics, self.measured, self.timer = job.physics, measured_frames, timer
        self.pending = sorted(((s[1], s[0], r) for r, s in enumerate(job.supports)
                               if s is not None and job.start <= s[0] and s[1] <= job.end), reverse=True)
        self.frames: dict[int, torch.Tensor] = {}
        self.num = self.den = 0.0

    def add(self, final) -> None:
        with self.timer("residual"):
            self._add(final)

    def _add(self, final) -> None:
        for t, frame in final:
            self.frames[t] = frame
        done = max(self.frames, default=-1)
        ready = []
        while self.pending and self.pending[-1][0] - 1 <= done:
            ready.append(self.pending.pop())
        if ready:  # one operator application for every measured frame that became computable
            lo, hi = min(r[1] for r in ready), max(r[0] for r in ready)
            physics_r, rows = self.physics.restrict_time(lo, hi)
            x = torch.cat([self.frames[t] for t in range(lo, hi)], dim=2)
            index = {r: i for i, r in enumerate(rows)}
            picked = [row for _, _, row in ready]
            ax = physics_r.A(x)[:, :, [index[r] for r in picked]]
            y = self.measured.get(picked)
            self.num += float((ax - y).pow(2).sum())
            self.den += float(y.pow(2).sum())
        low = min((lo for _, lo, _ in self.pending), default=done + 1)
        for t in [t for t in self.frames if t < low]:
            del self.frames[t]

    def value(self) -> float | None:
        return (self.num / max(self.den, 1e-24)) ** 0.5 if self.den > 0 else None


def _seam_step(physics, measured_frames: MeasuredFrames, eps: float):
    """The join's seam correction: least norm on the region [a, b), fitting every measured frame touching it."""
    def step(a: int, b: int, lo: int, hi: int, x: torch.Tensor) -> torch.Tensor:
        region, rows = physics.restrict_time(a, b, within=(lo, hi))
        if not rows:
            return x[:, :, a - lo:b - lo]
        around, around_rows = physics.restrict_time(lo, hi)  # every row in [lo, hi), computable from x
        index = {r: i for i, r in enumerate(around_rows)}
        residual = measured_frames.get(rows) - around.A(x)[:, :, [index[r] for r in rows]]
        correction = region.linear_surrogate().A_dagger(residual, eps=eps)
        return (x[:, :, a - lo:b - lo] + correction).clamp(-1, 1)
    return step


def _progress(total: int, procs: Processes):
    if not (procs.is_main and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="window", desc="lvtino restore", leave=False)
