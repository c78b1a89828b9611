"""lvtino from Python: the three commands on files, and a pipeline object for tensors.

    import lvtino
    lvtino.restore("low.mp4", "up.mp4", scale=4, fps_factor=4)           # as `lvtino restore`
    restorer = lvtino.Restorer.from_preset("A", prior="tv")
    video = restorer(measured)   # (T, H, W, C) uint8 or (B, C, T, H, W) float in [0, 1], same layout back

The functions take the command line's options as keywords (``overwrite=True`` is
``-y``); they return the facts ``--stats``/``--json`` would write. The pipeline
object runs the same streaming restoration as the command (windows, seams, the
measured frames' own operator) on the frames in memory, read as the windows need
them: no temporary file, and a float tensor comes back as floats, unrounded.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from lvtino.errors import UserError
from lvtino.runtime import stop_on_signals


def _overwrite(flag: bool | None) -> str:
    if flag is not None and not isinstance(flag, bool):
        raise UserError(f"overwrite={flag!r}: expected True (replace an existing output, -y), False (never replace "
                        "one, -n) or None (refuse an existing output, the default)")
    return {True: "yes", False: "no", None: "ask"}[flag]


PATH_KEYWORDS = ("stats", "config", "guide", "reference")


def _path(value, name: str):
    """A path keyword as the library reads it: a str or os.PathLike (bytes decoded as the file system does), or one
    line saying what was given."""
    import os

    if isinstance(value, (bytes, bytearray)):
        return os.fsdecode(bytes(value))
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        return os.fsdecode(path) if isinstance(path, bytes) else path
    raise UserError(f"{name}={value!r}: expected a path (a str or a pathlib.Path)")


def _paths(options: dict) -> dict:
    return {k: (_path(v, k) if k in PATH_KEYWORDS and v is not None else v) for k, v in options.items()}


def _words(scale=None, fps_factor=None, size=None, fps=None, resampler="ffmpeg", fps_mode="ffmpeg", fps_phase=None):
    from lvtino.pipeline.words import Words

    words = Words(scale, fps_factor, size, None if fps is None else Fraction(fps), resampler, fps_mode, fps_phase)
    return words if words.given() else None


def restore(input, output, *, problem=None, prior=None, scale=None, fps_factor=None, size=None, fps=None,
            resampler="ffmpeg", fps_mode="ffmpeg", fps_phase=None, models=None, dtype="auto", offload="none",
            vae_tiling="off", device="auto", overwrite: bool | None = None, **options) -> dict:
    """``lvtino restore``: ``overwrite`` True replaces an existing output (-y), False never does (-n), None refuses
    it in one line; ``prior`` None is tv, or the guide's consistency step with ``guide="other-tool.mp4"``. Other
    keywords: config, overrides, start, end, frames, stats, codec, crf, preset, pix_fmt, no_audio, seed, resume,
    keep_state, window, overlap, accept_truncated, dry_run."""
    from lvtino.pipeline.restore import restore as run

    input, output, options = _path(input, "input"), _path(output, "output"), _paths(options)
    request = _request("restore", input, output, problem=problem, prior=prior, device=device,
                       overwrite=_overwrite(overwrite), models=(models, dtype, offload, vae_tiling),
                       words=(scale, fps_factor, size, fps, resampler, fps_mode, fps_phase), options=options)
    with stop_on_signals():  # Ctrl-C and SIGTERM: the run stops cleanly (its state kept) and raises here
        return run(request)


def _request(name: str, input, output, *, models: tuple, words: tuple, options: dict, **settings):
    """A ``pipeline.request.Request`` from the Python keywords (each checked: one line for an unknown one)."""
    from dataclasses import fields

    from lvtino.models.options import ModelOptions
    from lvtino.pipeline.request import Request

    _check_keywords(name, [f.name for f in fields(Request)], options,
                    taken=("models", "words", "overwrite", "device", "problem", "prior", "fps"))
    if "overrides" in options:
        options = {**options, "overrides": tuple(options["overrides"] or ())}
    return Request(input, output, models=ModelOptions(*models), words=_words(*words), **settings, **options)


def degrade(input, output, *, problem=None, scale=None, fps_factor=None, size=None, fps=None, resampler="ffmpeg",
            fps_mode="ffmpeg", fps_phase=None, overwrite: bool | None = None, **options) -> dict:
    """``lvtino degrade``; other keywords: config, overrides, noise_std, seed, no_audio, accept_truncated."""
    from dataclasses import fields

    from lvtino.pipeline.degrade import DegradeRequest, degrade as run

    _check_keywords("degrade", [f.name for f in fields(DegradeRequest)], options,
                    taken=("words", "overwrite", "problem", "fps"))
    input, output, options = _path(input, "input"), _path(output, "output"), _paths(options)
    with stop_on_signals():  # (DegradeRequest.check_inputs makes overrides a tuple)
        return run(DegradeRequest(input, output, problem=problem, overwrite=_overwrite(overwrite),
                                  words=_words(scale, fps_factor, size, fps, resampler, fps_mode, fps_phase), **options))


def evaluate(restored, reference, **options) -> dict:
    """``lvtino evaluate``: clip means and per-frame values (keywords: fps, resize, lpips, temporal)."""
    from lvtino.metrics.evaluate import evaluate as run

    _check_keywords("evaluate", _parameters(run), options)
    return run(_path(restored, "restored"), _path(reference, "reference"), **_paths(options))


def _parameters(function) -> list[str]:
    import inspect

    return list(inspect.signature(function).parameters)


def _check_keywords(name: str, parameters: list[str], options: dict, taken: tuple[str, ...] = ()) -> None:
    """One line for a keyword ``lvtino.<name>`` does not take (instead of Python's TypeError)."""
    known = [p for p in parameters if p not in ("input", "output", *taken)]
    for key in options:
        if key not in known:
            raise UserError(f"lvtino.{name}: unknown keyword {key!r} (known: {', '.join(sorted(known))})")


class Restorer:
    """A restoration set up once and called on videos in memory, in the manner of a diffusers pipeline: the
    generative priors' networks load at the first call and are kept for the next. A call runs the streaming
    restoration of ``lvtino restore`` (windows, seams, the measured frames' own operator) on the frames as given:
    no file, and a float tensor is not rounded to 8 bits."""

    # keywords of lvtino.restore that belong to files: a Restorer takes frames and returns frames
    FILE_ONLY = ("stats", "codec", "crf", "preset", "pix_fmt", "no_audio", "resume", "keep_state", "accept_truncated",
                 "dry_run", "overwrite")

    def __init__(self, request=None, networks=None, **keywords):
        """``request``: a ``pipeline.request.Request`` (its input and output unused); or a preset's name (or
        nothing) with ``from_preset``'s keywords: ``Restorer(scale=4, prior="tv")``, ``Restorer("A")``."""
        from lvtino.pipeline.priors import Networks
        from lvtino.pipeline.request import Request

        if not isinstance(request, Request):
            if request is not None and not isinstance(request, str):
                raise UserError(f"lvtino.Restorer: expected a preset's name, a Request or keywords, got "
                                f"{type(request).__name__}")
            request = type(self).from_preset(request, **keywords).request
        elif keywords:
            raise UserError(f"lvtino.Restorer: a Request and keywords ({', '.join(sorted(keywords))}): give one")
        self.request, self.networks = request.check_inputs(), networks or Networks()
        self._jobs: dict = {}  # (frames, height, width, fps) -> the plan for frames of that shape and rate
        self._upscaler = None  # --upscaler's model, loaded at the first call

    @classmethod
    def from_preset(cls, problem: str | None = None, prior: str | None = None, *, models: str | None = None,
                    dtype="auto", offload="none", vae_tiling="off", device: str = "auto", seed: int = 0,
                    scale=None, fps_factor=None, size=None, fps=None, resampler="ffmpeg", fps_mode="ffmpeg",
                    fps_phase=None, **options) -> "Restorer":
        """``problem``: a preset (A, B, C, sr4, ...) or None with ``scale=``/``fps_factor=``; ``models``: a
        models YAML, None for the packaged one, or "tiny". Other keywords as ``lvtino.restore``'s that are not
        about files: config, overrides, start, end, frames, window, overlap, guide."""
        from lvtino.config import load_problem

        for key in options:
            if key in cls.FILE_ONLY:
                raise UserError(f"lvtino.Restorer: {key} is for video files (lvtino.restore); a Restorer takes "
                                "frames and returns frames")
        request = _request("Restorer", "the frames given", "", problem=problem, prior=prior, device=device,
                           seed=seed, models=(models, dtype, offload, vae_tiling),
                           words=(scale, fps_factor, size, fps, resampler, fps_mode, fps_phase), options=options)
        if problem is not None:
            load_problem(problem, request.config, list(request.overrides))  # a mistake shows here
        return cls(request)

    def __call__(self, video, fps: float | Fraction = 30) -> np.ndarray | torch.Tensor:
        """Restore ``video``: (T, H, W, C) uint8, or (B, C, T, H, W) float in [0, 1] with B = 1; the result in the
        same layout. A measurement lvtino degraded needs the ``problem`` its preset names."""
        from lvtino.pipeline.common import check_device
        from lvtino.pipeline.restore import load_upscaler, plan_frames, restore_frames

        video = _checked(video)
        fps = _rate(fps)
        shape = tuple(int(n) for n in (video.shape[2:] if isinstance(video, torch.Tensor) else video.shape[:3]))
        with stop_on_signals():  # interruptions (Ctrl-C, SIGTERM) end in an exception here
            if (*shape, fps) not in self._jobs:  # planned once per shape and rate: the preset is read, checked once
                self._jobs[(*shape, fps)] = plan_frames(self.request, shape, fps)
            job = self._jobs[(*shape, fps)]
            if self._upscaler is not None:  # loaded at an earlier call: its scale against this plan's operator
                self._upscaler.check_scale(tuple(job.physics.factors[1:]))
            elif self.request.upscaler is not None:
                self._upscaler = load_upscaler(self.request, job, check_device(self.request.device))
            return restore_frames(video, fps, self.request, self.networks, job, self._upscaler)


def _checked(video) -> np.ndarray | torch.Tensor:
    if isinstance(video, torch.Tensor):
        if video.dim() != 5 or video.shape[0] != 1 or video.shape[1] != 3 or not video.is_floating_point():
            raise UserError(f"a tensor video must be (1, 3, T, H, W) float in [0, 1], got {tuple(video.shape)} "
                            f"{video.dtype}")
        if video.device.type == "meta":
            raise UserError("the tensor video is on the meta device: it holds no values (give the frames)")
        _check_sizes(video.shape[2:])
        bad = int((~torch.isfinite(video)).sum())
        if bad:
            raise UserError(f"the tensor video holds {bad} NaN or infinite value(s); give finite values in [0, 1]")
        low, high = float(video.min()), float(video.max())
        if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
            hint = ("0-255 values: divide by 255" if high > 2 else
                    "[-1, 1] values, as diffusion code holds them: (x + 1) / 2" if low < -0.25 else "clamp them")
            raise UserError(f"the tensor video's values span [{low:.4g}, {high:.4g}]; expected floats in [0, 1] "
                            f"({hint})")
        return video.detach().clamp(0, 1)  # what rounding left a hair outside
    frames = np.asarray(video)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise UserError(f"an array video must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    _check_sizes(frames.shape[:3])
    return frames


RANGE_SLACK = 1 / 510  # half an 8-bit level: rounding in the caller's own arithmetic, clamped without a word


def _check_sizes(shape) -> None:
    """Frames, height and width of a video given in memory: what a video file may have."""
    from lvtino.pipeline.job import MAX_FRAMES
    from lvtino.video.reader import MAX_SIDE

    t, h, w = (int(v) for v in shape)
    if not (0 < t <= MAX_FRAMES and 0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise UserError(f"a video of {t} frames of {w}x{h}: expected 1 to {MAX_FRAMES:,} frames of at most "
                        f"{MAX_SIDE}x{MAX_SIDE}")


def _rate(fps) -> Fraction:
    try:
        rate = Fraction(fps).limit_denominator(1001)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"fps={fps!r}: expected a frame rate such as 30, 29.97 or Fraction(30000, 1001)") from None
    if not 0 < rate <= 1000:
        raise UserError(f"fps={fps!r}: expected a frame rate above 0, up to 1000")
    return rate
