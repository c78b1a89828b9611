"""lvtino from Python: the three commands on files, and a pipeline object for tensors.

    import lvtino
    lvtino.restore("low.mp4", "up.mp4", scale=4, fps_factor=4)           # as `lvtino restore`
    restorer = lvtino.Restorer.from_preset("A", prior="tv")
    video = restorer(measured)   # (T, H, W, C) uint8 or (B, C, T, H, W) float in [0, 1], same layout back

The functions take the command line's options as keywords (``overwrite=True`` is
``-y``); they return the facts ``--stats``/``--json`` would write. The pipeline
object runs the same streaming restoration as the command (windows, seams, the
measured frames' own operator), on a lossless copy of the tensor in a temporary
folder: a float input is measured at 8 bits, as a video file is, and the result
comes back at 8 bits.
"""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from lvtino.errors import UserError
from lvtino.runtime import stop_on_signals


def _overwrite(flag: bool | None) -> str:
    if flag is not None and not isinstance(flag, bool):
        raise UserError(f"overwrite={flag!r}: expected True (replace an existing output, -y), False (never replace "
                        "one, -n) or None (refuse an existing output, the default)")
    return {True: "yes", False: "no", None: "ask"}[flag]


def _words(scale=None, fps_factor=None, size=None, fps=None, resampler="ffmpeg", fps_mode="ffmpeg", fps_phase=None):
    from lvtino.pipeline.words import Words

    words = Words(scale, fps_factor, size, None if fps is None else Fraction(fps), resampler, fps_mode, fps_phase)
    return words if words.given() else None


def restore(input, output, *, problem=None, prior=None, scale=None, fps_factor=None, size=None, fps=None,
            resampler="ffmpeg", fps_mode="ffmpeg", fps_phase=None, models=None, dtype="auto", offload="none",
            vae_tiling="off", device="auto", overwrite: bool | None = None, **options) -> dict:
    """``lvtino restore``: ``overwrite`` True replaces an existing output (-y), False never does (-n), None refuses
    it in one line; ``prior`` None is tv, or the guide's consistency step with ``guide="other-tool.mp4"``. Other
    keywords: config, overrides, start, end, frames, stats, crf, preset, pix_fmt, no_audio, seed, resume,
    keep_state, window, overlap, accept_truncated, dry_run."""
    from lvtino.pipeline.priors import ModelOptions
    from lvtino.pipeline.restore import restore as run

    _check_keywords("restore", run, options, taken=("models", "words", "overwrite", "processes"))
    with stop_on_signals():  # Ctrl-C and SIGTERM: the run stops cleanly (its state kept) and raises here
        return run(input, output, problem=problem, prior=prior, device=device,
                   models=ModelOptions(models, dtype, offload, vae_tiling), overwrite=_overwrite(overwrite),
                   words=_words(scale, fps_factor, size, fps, resampler, fps_mode, fps_phase), **options)


def degrade(input, output, *, problem=None, scale=None, fps_factor=None, size=None, fps=None, resampler="ffmpeg",
            fps_mode="ffmpeg", fps_phase=None, overwrite: bool | None = None, **options) -> dict:
    """``lvtino degrade``; other keywords: config, overrides, noise_std, seed, no_audio, accept_truncated."""
    from lvtino.pipeline.degrade import degrade as run

    _check_keywords("degrade", run, options, taken=("words", "overwrite"))
    with stop_on_signals():
        return run(input, output, problem=problem, overwrite=_overwrite(overwrite),
                   words=_words(scale, fps_factor, size, fps, resampler, fps_mode, fps_phase), **options)


def evaluate(restored, reference, **options) -> dict:
    """``lvtino evaluate``: clip means and per-frame values (keywords: fps, resize, lpips, temporal)."""
    from lvtino.metrics.evaluate import evaluate as run

    _check_keywords("evaluate", run, options)
    return run(restored, reference, **options)


def _check_keywords(name: str, function, options: dict, taken: tuple[str, ...] = ()) -> None:
    """One line for a keyword ``lvtino.<name>`` does not take (instead of Python's TypeError)."""
    import inspect

    known = [p for p in inspect.signature(function).parameters if p not in ("input", "output", *taken)]
    for key in options:
        if key not in known:
            raise UserError(f"lvtino.{name}: unknown keyword {key!r} (known: {', '.join(sorted(known))})")


class Restorer:
    """A restoration set up once and called on videos, in the manner of a diffusers pipeline: the generative
    priors' networks load at the first call and are kept for the next."""

    def __init__(self, problem: str | None = None, prior: str = "tv", **options):
        self.problem, self.prior, self.options = problem, prior, options

    @classmethod
    def from_preset(cls, problem: str | None = None, prior: str = "tv", *, models: str | None = None,
                    device: str = "auto", seed: int = 0, **options) -> "Restorer":
        """``problem``: a preset (A, B, C, sr4, ...) or None with ``scale=``/``fps_factor=``; ``models``: a
        models YAML, None for the packaged one, or "tiny". Other keywords as ``lvtino.restore``."""
        from lvtino.config import load_problem
        from lvtino.pipeline.priors import PRIORS, Networks

        if prior not in PRIORS:
            raise UserError(f"prior {prior}: unknown (known: {', '.join(PRIORS)})")
        if problem is not None:
            load_problem(problem, options.get("config"), options.get("overrides"))  # a mistake shows here
        # the networks load at the first call and stay with the restorer
        return cls(problem, prior, models=models, device=device, seed=seed, networks=Networks(), **options)

    def __call__(self, video, fps: float | Fraction = 30) -> np.ndarray | torch.Tensor:
        """Restore ``video``: (T, H, W, C) uint8, or (B, C, T, H, W) float in [0, 1] with B = 1; the result in the
        same layout. A measurement lvtino degraded needs the ``problem`` its preset names."""
        from lvtino.video.reader import probe, read_frames
        from lvtino.video.writer import VideoWriter

        frames, as_tensor = _to_frames(video)
        fps = _rate(fps)
        # interruptions (Ctrl-C, SIGTERM) end in an exception here, so the temporary folder always goes
        with stop_on_signals(), tempfile.TemporaryDirectory(prefix="lvtino-") as tmp:
            _check_room(frames, Path(tmp))
            measured, restored = Path(tmp) / "measured.mkv", Path(tmp) / "restored"
            with VideoWriter(measured, fps, lossless=True) as writer:
                for f in frames:
                    writer.write(f)
            restore(measured, restored, problem=self.problem, prior=self.prior, **self.options)
            out = np.stack(list(read_frames(probe(restored))))
        if not as_tensor:
            return out
        return torch.from_numpy(out).permute(3, 0, 1, 2).unsqueeze(0).float() / 255


def _to_frames(video) -> tuple[np.ndarray, bool]:
    if isinstance(video, torch.Tensor):
        if video.dim() != 5 or video.shape[0] != 1 or video.shape[1] != 3 or not video.is_floating_point():
            raise UserError(f"a tensor video must be (1, 3, T, H, W) float in [0, 1], got {tuple(video.shape)} "
                            f"{video.dtype}")
        _check_sizes(video.shape[2:])
        bad = int((~torch.isfinite(video)).sum())
        if bad:
            raise UserError(f"the tensor video holds {bad} NaN or infinite value(s); give finite values in [0, 1]")
        frames = (video[0].permute(1, 2, 3, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        return frames, True
    frames = np.asarray(video)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise UserError(f"an array video must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    _check_sizes(frames.shape[:3])
    return frames, False


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


def _check_room(frames: np.ndarray, folder: Path) -> None:
    """Refuse, before any work, a video whose lossless copy could not fit the temporary folder's disk (FFV1 keeps
    at most about the raw size; the restoration is larger still)."""
    import shutil

    need = frames.nbytes
    free = shutil.disk_usage(folder).free
    if need > free:
        raise UserError(f"a video of {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]} needs up to "
                        f"{need / 2**30:.1f} GB in {folder.parent} for its lossless copy, and {free / 2**30:.1f} GB "
                        "are free there (set TMPDIR to a larger disk, or restore the video from a file with "
                        "lvtino.restore)")
