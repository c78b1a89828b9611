"""What a restoration is, settled before any work: the operator, the output's size, rate and range, the windows.

A measurement written by ``degrade`` records its degradation; that record is
input, not trusted, and is checked like a preset and against the file itself.
Every output path is checked here too, so a mistake found now leaves no file
behind.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from lvtino.config import ProblemConfig, apply_overrides, from_dict, known_problems, load_raw
from lvtino.errors import UserError, arg, said
from lvtino.physics.problems import chain_factors, validate_chain
from lvtino.pipeline.common import build_checked_physics
from lvtino.pipeline.outputs import Output
from lvtino.pipeline.windows import Plan, Window, plan_windows
from lvtino.pipeline.words import Words, frames_kept
from lvtino.validation import Number, Text, whole
from lvtino.video.reader import MAX_SIDE, VideoInfo, probe
from lvtino.video.formats import Encoding

if TYPE_CHECKING:
    from lvtino.pipeline.request import Request

_TIMESTAMP = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")
MAX_FRAMES = 10_000_000  # ~93 hours at 30 fps
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
            hint = arg("frames") if key == "frames" else f"{arg('problem')} (and {arg('frames')})"
            raise UserError(f"{info.path}: its recorded degradation is not valid ({err}); pass {hint} to restore "
                            "it without the recording") from None
    return out


def resolve_problem(info: VideoInfo, problem: str | None, config, overrides, frames: int | None,
                    words: Words | None = None) -> tuple[ProblemConfig, tuple[int, int, int]]:
    """The preset and the restored video's (T, H, W).

    A measurement written by ``degrade`` records its problem, operator and the
    clean video's size; those are used unless ``--problem``/``--config`` name
    another degradation, the plain words (``--scale``, ``--fps-factor``, ...) say
    it, or ``--frames`` another length (each with a notice). The result is
    checked against the frames and size the file actually holds.
    """
    if words is not None and words.given():
        return _from_words(info, words, problem, config, overrides, frames)
    named = _recorded_name(info)
    explicit = config is not None or (problem is not None and problem != named)
    ignore = set(RECORDED) | {"operator"} if explicit else ({"frames"} if frames is not None else set())
    recorded = read_recorded(info, ignore)
    name = recorded.get("problem")
    if problem is None and config is None:
        if name is None or "operator" not in recorded:
            raise UserError(f"{info.path}: carries no lvtino metadata, so say how it was degraded: "
                            f"{arg('scale')} N (N times smaller) and/or {arg('fps_factor')} K (K times fewer frames), "
                            f"or {arg('size')}/{arg('fps')} for the restored video; {arg('problem')} names one of the "
                            "paper's problems")
        if name not in known_problems():
            raise UserError(f"{info.path}: records problem {name!r}, which is not a packaged preset; give its "
                            f"preset with {arg('config')}")
        problem = name
    raw = load_raw(problem, config)
    if "operator" in recorded:
        raw["operator"] = recorded["operator"]
    elif explicit and info.metadata:
        given = said("problem", problem) if config is None else said("config", str(config))
        log.info("%s overrides the degradation recorded in %s (problem %s) and the sizes it records", given,
                 info.path, named)
    cfg = from_dict(ProblemConfig, apply_overrides(raw, overrides or [])).validate()
    factors = chain_factors(cfg.operator)
    if frames is not None and not explicit and info.metadata.get("frames") not in (None, frames):
        log.info("%s overrides the %s frames recorded in %s", said("frames", frames), info.metadata["frames"],
                 info.path)
    t = frames or recorded.get("frames") or factors[0] * info.frames
    h = recorded.get("height") or factors[1] * info.height
    w = recorded.get("width") or factors[2] * info.width
    return cfg, (t, h, w)


def _from_words(info: VideoInfo, words: Words, problem, config, overrides, frames):
    if problem is not None:
        raise UserError(f"{said('problem', problem)} and {arg('scale')}/{arg('fps_factor')}: the words build the "
                        f"operator; leave out {arg('problem')} ({arg('config')} takes other settings)")
    cfg = words.config(config, overrides, small=(info.width, info.height, info.fps))
    factors = chain_factors(cfg.operator)
    shape = (frames or factors[0] * info.frames, factors[1] * info.height, factors[2] * info.width)
    if info.metadata.get("operator") is not None:
        recorded = _recorded_shape(info, cfg, frames)
        if recorded is not None and recorded != shape:  # a size no whole factor reaches (161x91 shrunk 2x: 80x45)
            log.info("%s/%s override the degradation recorded in %s; its recorded size %dx%d (%d "
                     "frames), which they measure to the input's, is kept", arg("scale"), arg("fps_factor"), info.path,
                     recorded[2], recorded[1], recorded[0])
            return cfg, recorded
        log.info("%s/%s override the degradation recorded in %s", arg("scale"), arg("fps_factor"), info.path)
    return cfg, shape


def _recorded_shape(info: VideoInfo, cfg: ProblemConfig, frames: int | None) -> tuple[int, int, int] | None:
    """The clean (T, H, W) a measurement records, when it is valid and ``cfg``'s operator measures it to the
    frames and size the file holds; else None."""
    try:
        recorded = read_recorded(info, ignore={"operator", "problem"})
    except UserError:
        return None
    if not {"height", "width"} <= set(recorded) or (frames is None and "frames" not in recorded):
        return None
    shape = (frames or recorded["frames"], recorded["height"], recorded["width"])
    try:
        measured = build_checked_physics(cfg, shape).output_shape(shape)
    except UserError:
        return None
    return shape if measured == (info.frames, info.height, info.width) else None


def _recorded_name(info: VideoInfo) -> str | None:
    name = info.metadata.get("problem")
    return name if isinstance(name, str) else None


def frame_position(value, job_fps: Fraction, info: VideoInfo, factor: int, what: str) -> int | None:
    """An output frame index from ``--start``/``--end``: a whole number is a frame; seconds as ``12.5`` or
    ``12.5s`` (ffmpeg's ``-ss``), or a time [HH:]MM:SS[.fff]."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if m := re.fullmatch(r"(\d+\.\d*|\.\d+|\d+)s|(\d+\.\d*|\.\d+)", text):
        seconds = Fraction(m.group(1) or m.group(2))
    elif m := _TIMESTAMP.match(text):
        seconds = Fraction(int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60) + Fraction(m.group(3))
    else:
        raise UserError(f"{what} {text}: expected a frame number, seconds (12.5 or 12.5s) or a time such as "
                        "00:01:02.5")
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
    layout: Plan  # the windows: where each starts and ends, and the seams between them
    selected: list[Window]
    guide: VideoInfo | None = None  # --guide: another tool's restoration, checked against the output
    guide_offset: int = 0           # the output frame of the guide's first frame (check_guide)

    @classmethod
    def plan(cls, request: "Request", info: VideoInfo) -> "Job":
        """The job of ``request`` (checked: ``Request.check_inputs``) on the measurement ``info`` (a file's, or
        frames in memory): its operator, checked against the frames and size the input holds, the output's size,
        rate and range, and the windows."""
        cfg, shape = resolve_problem(info, request.problem, request.config, list(request.overrides), request.frames,
                                     request.words)
        cfg = replace(cfg, window=replace(cfg.window, **{k: v for k, v in (("frames", request.window),
                                                                            ("overlap", request.overlap))
                                                           if v is not None})).validate()
        physics = build_checked_physics(cfg, shape)
        measured = physics.output_shape(shape)
        if measured != (info.frames, info.height, info.width):
            source = "recorded in the file" if info.metadata and request.frames is None else "asked for"
            raise UserError(f"{info.path}: holds {info.frames} frames of {info.width}x{info.height}, but problem "
                            f"{cfg.name} on {shape[0]} frames of {shape[2]}x{shape[1]} ({source}) measures "
                            f"{measured[0]} frames of {measured[2]}x{measured[1]}; check {arg('problem')} and "
                            f"{arg('frames')}")
        # what the user called the window settings, for the planner's messages: the flags (or keywords), or the
        # preset's keys
        names = (arg("window") if request.window is not None else "window.frames",
                 arg("overlap") if request.overlap is not None else "window.overlap")
        return _plan(info, cfg, shape, request.start, request.end, physics, names)


def restore_outputs(output: Path, stats, encoding: Encoding) -> list[Output]:
    """What a restoration writes: its output (a video or a frame folder) and ``--stats``."""
    kind = "frames" if encoding.format.folder else "video"
    return [Output(arg("output"), Path(output), kind), *([Output(arg("stats"), Path(stats))] if stats else [])]


GUIDE_RATE_TOLERANCE = 1e-3  # relative: 29.97 against 30000/1001 passes, 25 against 30 does not


def check_guide(path, job: "Job", accept_truncated: bool = False) -> tuple[VideoInfo, int]:
    """The guide, a restoration of the input by another tool, at the output's size and rate, and the output frame
    its first frame is; one line naming both when it is not.

    A guide of the output's frame count is the output's frames. A shorter one is an interpolator's: it starts at
    the first frame the input holds (the frame rule's first kept frame, ``pipeline.words.frames_kept``) and stops
    at the last, or one interval before it (ffmpeg's minterpolate); the frames before and after it hold its first
    and last (with a notice)."""
    guide = probe(path, accept_truncated=accept_truncated)
    name = said("guide", str(path))
    t, h, w = job.shape
    if (guide.width, guide.height) != (w, h):
        raise UserError(f"{name}: its frames are {guide.width}x{guide.height}, the output's {w}x{h}; give a guide at "
                        "the output's size")
    if abs(float(guide.fps) / float(job.fps) - 1) > GUIDE_RATE_TOLERANCE:
        raise UserError(f"{name}: {float(guide.fps):g} fps, the output {float(job.fps):g} fps; give a guide at the "
                        "output's frame rate")
    k = job.physics.factors[0]
    kept = frames_kept(job.cfg.operator)
    first = kept["phase"] if kept is not None and not kept["averaged"] else 0  # the first output frame measured
    last = first + (job.info.frames - 1) * k  # the last
    offset = 0 if guide.frames == t else first
    end = offset + guide.frames
    if guide.frames > t or end < min(last - k + 1, t):
        raise UserError(f"{name}: {guide.frames} frames, the output {t}; give a guide of the output's frames, or an "
                        f"interpolator's from the first input frame (output frame {first}) to the last (output frame "
                        f"{last}, or one interval before)")
    if offset:
        log.info("%s: %d frames, an interpolator's: its first frame is taken as output frame %d (the first the input "
                 "holds) and held for the %d before", name, guide.frames, offset, offset)
    if end < t:
        log.info("%s: %d frames, the output %d: its last frame is held for the last %d", name, guide.frames, t,
                 t - end)
    return guide, offset


def guide_index(guide: VideoInfo, offset: int, t: int) -> int:
    """The guide's frame for output frame ``t`` (``check_guide``'s offset; its first and last held beyond it)."""
    return min(max(t - offset, 0), guide.frames - 1)


def _plan(info: VideoInfo, cfg: ProblemConfig, shape, start, end, physics=None,
          names: tuple[str, str] = ("window.frames", "window.overlap")) -> Job:
    """The output's frame rate and range, and the windows it needs."""
    physics = physics or build_checked_physics(cfg, shape)
    factor = physics.factors[0]
    out_fps = info.fps * factor
    start = frame_position(start, out_fps, info, factor, arg("start"))
    end = frame_position(end, out_fps, info, factor, arg("end"))
    start = 0 if start is None else start
    end = shape[0] if end is None else end
    if end > shape[0] and 0 <= start < shape[0]:  # as ffmpeg's -to past the end: up to the last frame
        log.info("%s is past the video's %d output frames: restoring up to its end", said("end", end), shape[0])
        end = shape[0]
    if not 0 <= start < end <= shape[0]:
        raise UserError(f"{said('start', start)} {said('end', end)}: the range must satisfy "
                        f"0 <= start < end <= {shape[0]} (output frames)")
    supports = physics.time_supports(shape[0])
    plan = plan_windows(supports, shape[0], factor, cfg.window.frames, cfg.window.overlap, names)
    return Job(info, cfg, physics, shape, out_fps, start, end, supports, plan, plan.select(start, end))


def window_shape(job: Job, w: Window) -> tuple[int, ...]:
    return (1, 3, w.frames, job.shape[1], job.shape[2])
