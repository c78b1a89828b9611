"""A degradation said in plain words: ``--scale 4 --fps-factor 4`` instead of a paper's problem name.

The words build the operator chain of a real low-quality video: frames dropped
(or averaged) by ``--fps-factor`` (or to ``--fps``) by the rule of the tool that
did it (``--fps-mode``, default ffmpeg's fps filter), then shrunk by ``--scale``
(or to ``--size``) with the resampler of the tool that made it (default: ffmpeg's
scaler). The other settings (solvers, sampler, windows) come from the ``scale``
preset, or from ``--config``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from lvtino.config import ProblemConfig, apply_overrides, from_dict, load_raw
from lvtino.errors import UserError, arg, said
from lvtino.physics.resamplers import RESAMPLERS
from lvtino.validation import MAX_FACTOR, whole

PRESET = "scale"


@dataclass(frozen=True)
class FrameRule:
    """How a tool makes a lower frame rate: which frame of each group of K it keeps (or whether it averages them),
    and how many it keeps at the end."""

    exposure: float       # 0: one frame kept; 1: the K frames averaged
    count: str            # "ceil" or "round" (lvtino.physics.temporal.sampled_frames)
    first_kept: str       # "middle": ceil(K/2) - 1, as ffmpeg's fps filter; "first": 0
    says: str
    tool: str             # in a word, for the run's notice

    def phase(self, factor: int) -> int:
        return (-(-factor // 2) - 1) if self.first_kept == "middle" else 0


# checked against PyAV's own fps, select and framestep filters (tests/test_words.py)
FPS_MODES = {
    "ffmpeg": FrameRule(0.0, "round", "middle", "ffmpeg's fps filter (-vf fps=N, regular source timestamps): the last "
                                                "frame of each output slot, frames 1, 5, 9, ... for 30 -> 7.5 fps",
                       "ffmpeg's fps filter"),
    "drop": None,  # the same as ffmpeg (its earlier name)
    "select": FrameRule(0.0, "ceil", "first", "every K-th frame from the first: select='not(mod(n,K))', framestep=K, "
                                              "most frame-dropping scripts and the paper's problems", "select, framestep"),
    "average": FrameRule(1.0, "ceil", "first", "the K frames averaged: a long exposure", "the K frames averaged"),
}
FPS_MODES["drop"] = FPS_MODES["ffmpeg"]


@dataclass(frozen=True)
class Words:
    scale: int | None = None
    fps_factor: int | None = None
    size: str | None = None        # WIDTHxHEIGHT of the larger video
    fps: Fraction | None = None    # frame rate of the faster video
    resampler: str = "ffmpeg"
    fps_mode: str = "ffmpeg"
    fps_phase: int | None = None   # the first frame kept, instead of the mode's

    def given(self) -> bool:
        return any(v is not None for v in (self.scale, self.fps_factor, self.size, self.fps))

    def config(self, config, overrides, small=None, large=None) -> ProblemConfig:
        """The problem: the ``scale`` preset (or ``--config``) with the operator the words build (see ``chain``)
        and ``--set`` overrides applied."""
        raw = load_raw(PRESET if config is None else None, config)
        raw["operator"] = self.chain(small, large)
        if config is None:
            raw["name"] = PRESET
        return from_dict(ProblemConfig, apply_overrides(raw, overrides or [])).validate()

    def chain(self, small: tuple[int, int, Fraction] | None,
              large: tuple[int, int, Fraction] | None = None) -> list[dict]:
        """The operator chain from the large (clean or restored) video to the small (measured) one.

        Restore knows ``small``, (width, height, fps) of the measured video, and the
        words say the large one; degrade knows ``large``, the clean video, and the
        words say the small one.
        """
        if self.scale is not None and self.size is not None:
            raise UserError(f"{arg('scale')} and {arg('size')}: give one of them")
        if self.fps_factor is not None and self.fps is not None:
            raise UserError(f"{arg('fps_factor')} and {arg('fps')}: give one of them")
        if self.resampler not in RESAMPLERS:
            raise UserError(f"{said('resampler', self.resampler)}: unknown (known: {', '.join(RESAMPLERS)})")
        if self.fps_mode not in FPS_MODES:
            raise UserError(f"{said('fps_mode', self.fps_mode)}: expected one of {', '.join(FPS_MODES)}")
        if self.fps_phase is not None and self.fps_factor is None and self.fps is None:
            raise UserError(f"{said('fps_phase', self.fps_phase)}: goes with {arg('fps_factor')} or {arg('fps')}")
        scale = whole(1, MAX_FACTOR).parse(self.scale, arg("scale")) if self.scale is not None else None
        factor = whole(1, MAX_FACTOR).parse(self.fps_factor, arg("fps_factor")) if self.fps_factor is not None else None
        if self.size is not None:
            scale = _size_factor(self.size, small, large)
        if self.fps is not None:
            factor = _rate_factor(self.fps, small, large)
        chain = []
        if factor is not None and factor > 1:
            rule = FPS_MODES[self.fps_mode]
            phase = rule.phase(factor)
            if self.fps_phase is not None:
                phase = whole(0, factor - 1).parse(self.fps_phase, arg("fps_phase"))
            chain.append({"temporal_sample": {"factor": factor, "exposure": rule.exposure, "phase": phase,
                                              "count": rule.count}})
        if scale is not None and scale > 1:
            chain.append({"resize": {"factor": scale, "resampler": self.resampler}})
        if not chain:
            raise UserError(f"{arg('scale')}/{arg('fps_factor')} of 1: nothing to restore (give a factor above 1)")
        return chain


def frames_kept(operator: list[dict]) -> dict | None:
    """Which frames of the restored video the input is taken to hold, from a chain's frame-rate step: its factor,
    phase (the first kept), whether the K frames are averaged, and the first few kept; None without such a step."""
    step = next((s["temporal_sample"] for s in operator if "temporal_sample" in s), None)
    if step is None or step.get("factor", 1) <= 1:
        return None
    factor, phase = int(step["factor"]), int(step.get("phase", 0))
    averaged = float(step.get("exposure", 0.0)) >= 1.0
    return {"factor": factor, "phase": phase, "averaged": averaged,
            "kept": [phase + k * factor for k in range(3)]}


def frame_rule_note(words: "Words", operator: list[dict]) -> str | None:
    """What the run assumes of the frame-rate cut, said once: which restored frames the input's frames are. Which
    frames a tool kept cannot be read from the file, and a wrong rule costs the whole gain with the same fit line
    (a clip cut keeping frames 2, 6, 10, ... restored as 1, 5, 9, ...: 20.79 dB, below the player's 20.95;
    with --fps-phase 2, 22.29 dB)."""
    kept = frames_kept(operator)
    if kept is None or kept["averaged"]:
        return None
    k = kept["factor"]
    frames = ", ".join(map(str, kept["kept"]))
    rule = (said("fps_phase", kept["phase"]) if words.fps_phase is not None else
            f"{said('fps_mode', words.fps_mode)}: {FPS_MODES[words.fps_mode].tool}")
    if words.fps_mode == "select" and words.fps_phase is None:
        p = FPS_MODES["ffmpeg"].phase(k)
        other = f"{said('fps_mode', 'ffmpeg')} (frames {p}, {p + k}, ...)"
    else:
        other = f"{said('fps_mode', 'select')} (frames 0, {k}, {2 * k}, ...)"
    return (f"the input's frames are taken as restored frames {frames}, ... ({rule}); a clip cut another way "
            f"needs {other} or {arg('fps_phase')} N (the first frame it kept), else the restored frames sit a frame off")


def _size_factor(text: str, small, large) -> int:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"{said('size', text)}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    if large is None:  # restore: the size of the restored video
        big, little, what = (w, h), small[:2], "the input's"
    else:  # degrade: the size of the measurement
        big, little, what = large[:2], (w, h), "the clean video's"
    ratios = {b / s if s else 0 for b, s in zip(big, little)}
    ratio = next(iter(ratios))
    if len(ratios) != 1 or not float(ratio).is_integer() or ratio < 1:
        known = little if large is None else big
        raise UserError(f"{said('size', text)}: {what} {known[0]}x{known[1]} does not scale to it by one whole "
                        f"factor (use {arg('scale')})")
    if ratio > MAX_FACTOR:
        raise UserError(f"{said('size', text)}: {int(ratio)} times {what} size; a factor goes up to {MAX_FACTOR}")
    return int(ratio)


def _rate_factor(fps: Fraction, small, large) -> int:
    base = small[2] if large is None else large[2]
    ratio = Fraction(fps) / base if large is None else base / Fraction(fps)
    if ratio.denominator != 1 or ratio < 1:
        relation = "a whole multiple of" if large is None else "a whole fraction of"
        raise UserError(f"{said('fps', fps)}: not {relation} the input's {float(base):g} fps (use {arg('fps_factor')})")
    if ratio > MAX_FACTOR:
        raise UserError(f"{said('fps', fps)}: {int(ratio)} times the input's {float(base):g} fps; a factor goes up "
                        f"to {MAX_FACTOR}")
    return int(ratio)
