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
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import torch

from lvtino.config import ProblemConfig, apply_overrides, from_dict, load_raw
from lvtino.distributed import Processes
from lvtino.errors import UserError
from lvtino.physics.problems import chain_factors
from lvtino.pipeline.common import build_checked_physics, check_device, peak_memory_mb, write_json
from lvtino.pipeline.priors import PRIORS, ModelOptions, describe_models, make_prior
from lvtino.pipeline.state import RunState, input_identity
from lvtino.pipeline.windows import Joiner, plan_windows
from lvtino.video.convert import frames_to_tensor, tensor_to_frames
from lvtino.video.reader import VideoInfo, probe, read_frames
from lvtino.video.writer import VideoWriter, check_output_path

log = logging.getLogger("lvtino")
_TIMESTAMP = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")


def resolve_problem(info: VideoInfo, problem: str | None, config, overrides) -> ProblemConfig:
    """The preset to restore with; the measurement's own recorded operator wins over the preset's."""
    meta = info.metadata
    recorded = meta.get("problem")
    if problem is None and config is None:
        if recorded is None:
            raise UserError(f"{info.path}: carries no lvtino metadata; name the degradation with --problem")
        problem = recorded
    if problem is not None and recorded is not None and config is None and problem != recorded:
        raise UserError(f"--problem {problem}: the input was degraded with problem {recorded}")
    raw = load_raw(problem, config)
    if "operator" in meta:
        raw["operator"] = meta["operator"]
    return from_dict(ProblemConfig, apply_overrides(raw, overrides or [])).validate()


def signal_shape(info: VideoInfo, factors, frames: int | None) -> tuple[int, int, int]:
    """(T, H, W) of the restored video: recorded in the input, else factor x the measured size."""
    meta = info.metadata
    t = meta.get("frames") or frames or factors[0] * info.frames
    h = meta.get("height") or factors[1] * info.height
    w = meta.get("width") or factors[2] * info.width
    return int(t), int(h), int(w)


def frame_position(value, fps: Fraction, what: str) -> int | None:
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
    return round(seconds * fps)


def window_seed(seed: int, index: int) -> int:
    """The sampler's seed for window ``index``: the same whichever process restores it."""
    return (seed * 1_000_003 + index) % (2**63)


class MeasuredFrames:
    """Measured frames decoded on demand, in increasing order, kept while a window or seam may need them."""

    def __init__(self, info: VideoInfo, device: torch.device):
        self.info, self.device = info, device
        self.cache: dict[int, torch.Tensor] = {}
        self._frames = None
        self._next = None
        self.seconds = 0.0

    def get(self, rows: list[int], keep_from: int | None = None) -> torch.Tensor:
        """Frames ``rows`` as (1, 3, n, h, w); frames below ``keep_from`` are forgotten."""
        t0 = time.perf_counter()
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
        out = torch.cat([self.cache[r] for r in rows], dim=2).to(self.device)
        self.seconds += time.perf_counter() - t0
        return out


def restore(input: str | Path, output: str | Path, problem: str | None = None, prior: str = "tv",
            config: str | Path | None = None, overrides: list[str] | None = None, start=None, end=None,
            frames: int | None = None, stats: str | Path | None = None, fps=None, crf: int = 18,
            preset: str = "medium", no_audio: bool = False, device: str = "cpu", models: ModelOptions | None = None,
            seed: int = 0, resume: bool = False, keep_state: bool = False, window: int | None = None,
            overlap: int | None = None) -> dict | None:
    """Restore a degraded video with ``prior`` and write output frames [start, end).

    Returns the run's facts (as ``--stats`` writes them) on the main process,
    None on the other processes of a multi-process launch.
    """
    t_start = time.perf_counter()
    # 1. Check inputs
    if prior not in PRIORS:
        raise UserError(f"--prior {prior}: unknown prior (known: {', '.join(PRIORS)})")
    if frames is not None and frames < 1:
        raise UserError(f"--frames {frames}: must be a positive number of frames")
    procs = Processes(check_device(device))
    device = procs.device
    info = probe(input, fps)
    output = check_output_path(output, [input])
    overrides = list(overrides or [])
    overrides += [f"window.frames={window}"] if window is not None else []
    overrides += [f"window.overlap={overlap}"] if overlap is not None else []
    cfg = resolve_problem(info, problem, config, overrides)
    # 2. The operator, sized for the signal the measurement came from
    try:
        factors = chain_factors(cfg.operator)
    except ValueError as err:
        raise UserError(f"problem {cfg.name}: {err}") from None
    shape = signal_shape(info, factors, frames)
    physics = build_checked_physics(cfg, shape)
    measured = physics.output_shape(shape)
    if measured != (info.frames, info.height, info.width):
        raise UserError(f"{input}: holds {info.frames} frames of {info.width}x{info.height}, but problem {cfg.name} "
                        f"on {shape[0]} frames of {shape[2]}x{shape[1]} measures {measured[0]} frames of "
                        f"{measured[2]}x{measured[1]}; check --problem and --frames")
    out_fps = info.fps * physics.factors[0]
    start = frame_position(start, out_fps, "--start")
    end = frame_position(end, out_fps, "--end")
    start = 0 if start is None else start
    end = shape[0] if end is None else end
    if not 0 <= start < end <= shape[0]:
        raise UserError(f"--start {start} --end {end}: the range must satisfy 0 <= start < end <= {shape[0]} "
                        "(output frames)")
    # 3. Windows, the state folder, and this process's share
    plan = plan_windows(physics.time_supports(shape[0]), shape[0], physics.factors[0], cfg.window.frames,
                        cfg.window.overlap)
    selected = plan.select(start, end)
    settings = {"config": asdict(cfg), "prior": prior, "seed": seed, "frames": shape[0],
                "models": asdict(models) if models else None,
                "windows": [(w.start, w.end) for w in plan.windows]}
    state = RunState(output, input_identity(Path(input)), settings, procs, resume, keep_state).open()
    reused = [w.index for w in selected if state.has(w.index)]
    todo = [w for w in selected if w.index not in reused]
    measured_frames = MeasuredFrames(info, device)
    timer = {"load": 0.0, "prior": 0.0, "join": 0.0, "write": 0.0, "state": 0.0}
    restorer = None
    iterations: list[int] = []

    def restore_window(w) -> torch.Tensor:
        nonlocal restorer
        if restorer is None:  # load networks only when a window needs them
            t0 = time.perf_counter()
            restorer = make_prior(prior, cfg, models, device)
            timer["load"] += time.perf_counter() - t0
        physics_w, rows = physics.restrict_time(w.start, w.end)
        prev = plan.windows[w.index - 1].start if w.index > 0 else 0
        y = measured_frames.get(rows, keep_from=physics.restrict_time(prev, w.end)[1][0] if rows else None)
        t0 = time.perf_counter()
        x, info_w = restorer(physics_w, y, window_seed(seed, w.index))
        timer["prior"] += time.perf_counter() - t0
        if info_w.get("solver_iterations") is not None:
            iterations.append(info_w["solver_iterations"])
        t0 = time.perf_counter()
        x = state.save(w.index, x.clamp(-1, 1))
        timer["state"] += time.perf_counter() - t0
        return x

    with procs.split(todo) as mine:
        mine_ids = {w.index for w in mine}
        if not procs.is_main:
            for w in mine:
                restore_window(w)
            procs.wait()
            return None
        # 4. Main process: restore its share, join every selected window in order, encode final frames
        seam = _seam_step(physics, measured_frames, cfg.pinv.eps) if physics.linear else None
        joiner = Joiner(plan, seam)
        meter = ResidualMeter(physics, physics.time_supports(shape[0]), measured_frames, start, end)
        audio = None if no_audio or not info.has_audio else input
        facts = {}
        made_by = {"problem": cfg.name, "prior": prior, **describe_models(prior, models)}
        bar = _progress(len(selected), procs)
        waited = False
        with VideoWriter(output, out_fps, crf=crf, preset=preset, audio_from=audio, rotation=info.rotation,
                         metadata={"restored_by": made_by},
                         audio_range=(float(Fraction(start) / out_fps), float(Fraction(end) / out_fps))) as writer:
            for w in selected:
                if w.index in mine_ids:
                    x = restore_window(w)
                else:
                    if not waited and w.index not in reused:
                        procs.wait()  # the other processes' windows are all in the state folder after this
                        waited = True
                    t0 = time.perf_counter()
                    x = state.load(w.index)
                    timer["state"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                final = list(joiner.add(w, x.to(device)))
                timer["join"] += time.perf_counter() - t0
                _write(writer, final, start, end, timer)
                meter.add(final)
                if bar:
                    bar.update(1)
            t0 = time.perf_counter()
            final = list(joiner.finish())
            timer["join"] += time.perf_counter() - t0
            _write(writer, final, start, end, timer)
            meter.add(final)
            if restorer is not None:
                facts = restorer.facts()
        if not waited:
            procs.wait()
        if bar:
            bar.close()
    state.finish()
    t_end = time.perf_counter()
    # 5. What the run did
    stages = {"read": round(measured_frames.seconds, 3), **{k: round(v, 3) for k, v in timer.items()}}
    stages["residual"] = round(meter.seconds, 3)
    stages.update(facts.pop("seconds_per_stage", {}))
    result = {
        "input": str(input), "output": str(output), "problem": cfg.name, "prior": prior,
        "frames": end - start, "start": start, "end": end, "height": shape[1], "width": shape[2],
        "fps": str(out_fps), "seconds": round(t_end - t_start, 3), "seconds_per_stage": stages,
        "windows": len(selected), "windows_reused": len(reused), "windows_total": len(plan.windows),
        "window_frames": plan.windows[0].frames,
        "processes": procs.count, "peak_memory_mb": peak_memory_mb(), "device": str(device), "seed": seed,
    }
    nfe = facts.pop("nfe", {"video": 0, "image": 0, "total": 0})
    result["nfe"] = {k: v // max(1, len(mine_ids)) for k, v in nfe.items()}  # per window (per clip when one)
    result.update(describe_models(prior, models))
    result.update(facts)
    if iterations:
        result["solver_iterations"] = max(iterations)
    result["relative_residual"] = meter.value()
    result["config"] = asdict(cfg)
    if stats is not None:
        write_json(stats, result)
    return result


class ResidualMeter:
    """||A x - y|| / ||y|| over the measured frames that depend on written frames only, as frames become final."""

    def __init__(self, physics, supports, measured_frames: MeasuredFrames, start: int, end: int):
        self.physics, self.measured = physics, measured_frames
        self.pending = sorted(((s[1], s[0], r) for r, s in enumerate(supports)
                               if s is not None and start <= s[0] and s[1] <= end), reverse=True)
        self.frames: dict[int, torch.Tensor] = {}
        self.num = self.den = 0.0
        self.seconds = 0.0

    def add(self, final) -> None:
        t0 = time.perf_counter()
        for t, frame in final:
            self.frames[t] = frame
        done = max(self.frames, default=-1)
        while self.pending and self.pending[-1][0] - 1 <= done:
            hi, lo, row = self.pending.pop()
            physics_r, rows = self.physics.restrict_time(lo, hi)
            x = torch.cat([self.frames[t] for t in range(lo, hi)], dim=2)
            ax = physics_r.A(x)[:, :, rows.index(row)]
            y = self.measured.get([row])[:, :, 0]
            self.num += float((ax - y).pow(2).sum())
            self.den += float(y.pow(2).sum())
        low = min((lo for _, lo, _ in self.pending), default=done + 1)
        for t in [t for t in self.frames if t < low]:
            del self.frames[t]
        self.seconds += time.perf_counter() - t0

    def value(self) -> float | None:
        return (self.num / max(self.den, 1e-24)) ** 0.5 if self.den > 0 else None


def _write(writer, final, start, end, timer) -> None:
    t0 = time.perf_counter()
    for t, frame in final:
        if start <= t < end:
            for f in tensor_to_frames(frame.clamp(-1, 1)):
                writer.write(f)
    timer["write"] += time.perf_counter() - t0


def _seam_step(physics, measured_frames: MeasuredFrames, eps: float):
    def step(a: int, b: int, x: torch.Tensor) -> torch.Tensor:
        physics_r, rows = physics.restrict_time(a, b)
        if not rows:
            return x
        linear = physics_r.linear_surrogate()
        y = measured_frames.get(rows)
        return (x + linear.A_dagger(y - linear.A(x), eps=eps)).clamp(-1, 1)
    return step


def _progress(total: int, procs: Processes):
    if not (procs.is_main and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="window", desc="lvtino restore", leave=False)
