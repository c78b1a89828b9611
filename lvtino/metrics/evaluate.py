"""``lvtino evaluate``: compare a restored video with its reference, per frame and over the clip.

Fidelity: PSNR and SSIM on RGB in [0, 1] and on the Y channel; LPIPS (VGG) when
its weights are on this machine. Temporal consistency: warping error, flicker and
tOF (``metrics.temporal``). The two videos are streamed ``chunk`` frames at a time.
The paper's motion metric FVMD and FVD need networks this tool does not ship
(a point tracker, an I3D classifier): they are named as not computed.
"""

from __future__ import annotations

import logging
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from lvtino.errors import UserError, arg, said
from lvtino.metrics.fidelity import luma, psnr, ssim
from lvtino.metrics.perceptual import LPIPS
from lvtino.metrics.temporal import TemporalMeter
from lvtino.video.reader import probe, read_frames

log = logging.getLogger("lvtino")

NOT_COMPUTED = {
    "fvmd": "needs a point tracker's weights (the paper's FVMD uses PIPs++); not computed by this release",
    "fvd": "needs an I3D network's weights and many clips; not computed by this release",
}


def _chunks(frames, size: int):
    while True:
        chunk = list(islice(frames, size))
        if not chunk:
            return
        yield chunk


def _tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).double() / 255.0


def _resized(frames, width: int, height: int):
    from PIL import Image

    for f in frames:
        yield np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC))


def evaluate(restored: str | Path, reference: str | Path, fps=None, chunk: int = 8, resize: bool = False,
             lpips: bool = True, temporal: bool = True, accept_truncated: bool = False,
             reference_start=None) -> dict:
    """Metrics of ``restored`` against ``reference``: clip means and a list of per-frame values.

    ``psnr``/``ssim`` (and ``_y``) are means of the per-frame values; ``psnr_global``
    comes from the mean squared error of the whole clip. Temporal metrics are
    means over the T - 1 steps between frames (the step from frame t to t + 1 is
    listed under frame t). With ``resize``, restored frames of another size are
    resampled (bicubic) to the reference's, and only the frames both videos have
    are compared; without it either difference is an error. ``reference_start``: the
    reference frame (or seconds, or time) the restored video starts at, for a restored
    range; a reference longer than the restored video needs it (0 when they start
    together), since comparing from the reference's first frame scores the wrong frames.
    """
    from lvtino.pipeline.job import frame_position

    a, b = probe(restored, fps, accept_truncated), probe(reference, fps, accept_truncated)
    offset = frame_position(reference_start, b.fps, b, 1, arg("reference_start"))
    if offset is None and b.frames > a.frames:
        raise UserError(f"{reference} has {b.frames} frames and {restored} {a.frames}: give "
                        f"{arg('reference_start')} (the reference frame or time the restored video starts at; 0 "
                        "when it starts with the reference)")
    offset = offset or 0
    if not 0 <= offset < b.frames:
        raise UserError(f"{said('reference_start', reference_start)}: {reference} has frames 0 to {b.frames - 1}")
    frames = a.frames
    notes = []
    if (a.width, a.height) != (b.width, b.height):
        if not resize:
            raise UserError(f"size differs: {restored} is {a.width}x{a.height}, {reference} is "
                            f"{b.width}x{b.height} ({arg('resize')} compares them at the reference's size)")
        notes.append(f"restored frames resized from {a.width}x{a.height} to {b.width}x{b.height} (bicubic)")
    left = b.frames - offset  # reference frames from the offset on
    if a.frames != left and not (reference_start is not None and a.frames < left):
        if not resize:
            raise UserError(f"frame count differs: {restored} has {a.frames}, {reference} has {left}"
                            f"{f' from frame {offset}' if offset else ''} ({arg('resize')} compares the frames both "
                            "have)")
        frames = min(a.frames, left)
        notes.append(f"frame counts differ ({a.frames} restored, {left} reference): the first {frames} compared")
    for note in notes:
        log.warning("%s", note)
    perceptual = LPIPS() if lpips else None
    meter = TemporalMeter() if temporal else None
    ours = read_frames(a, 0, frames)
    if (a.width, a.height) != (b.width, b.height):
        ours = _resized(ours, b.width, b.height)
    per_frame, sq_err = [], 0.0
    for xs, refs in zip(_chunks(ours, chunk), _chunks(read_frames(b, offset, offset + frames), chunk)):
        x, ref = _tensor(xs), _tensor(refs)
        values = {"psnr": psnr(x, ref), "ssim": ssim(x, ref), "psnr_y": psnr(luma(x), luma(ref)),
                  "ssim_y": ssim(luma(x), luma(ref))}
        if perceptual is not None and perceptual.model is not None:
            values["lpips"] = perceptual(x, ref)
        sq_err += (x - ref).pow(2).mean(dim=(1, 2, 3)).sum().item()
        for i in range(len(xs)):
            per_frame.append({"frame": len(per_frame), **{k: float(v[i]) for k, v in values.items()}})
            if meter is not None:
                meter.add(xs[i], refs[i])
    if meter is not None:
        for row, step in zip(per_frame, meter.steps):
            row.update({k: step[k] for k in ("warping_error", "flicker", "tof")})
    n = len(per_frame)
    mean = lambda key: sum(f[key] for f in per_frame) / n  # noqa: E731
    mse = sq_err / n
    result = {
        "restored": str(restored), "reference": str(reference), "reference_start": offset, "frames": n,
        "width": b.width,
        "height": b.height, "psnr": mean("psnr"), "ssim": mean("ssim"), "psnr_y": mean("psnr_y"),
        "ssim_y": mean("ssim_y"), "psnr_global": float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse)),
    }
    if perceptual is None:
        result.update(lpips=None, lpips_note="not asked for")
    elif perceptual.model is None:
        result.update(lpips=None, lpips_note=perceptual.unavailable)
    else:
        result.update(lpips=mean("lpips"), lpips_note="LPIPS v0.1, VGG")
    result.update(meter.summary() if meter is not None else {"warping_error": None, "flicker": None, "tof": None})
    result["not_computed"] = dict(NOT_COMPUTED)
    result["notes"] = notes
    result["per_frame"] = per_frame
    return result
