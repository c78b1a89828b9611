"""``lvtino evaluate``: compare a restored video with its reference, frame by frame."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import torch

from lvtino.errors import UserError
from lvtino.metrics.fidelity import psnr, ssim
from lvtino.video.reader import probe, read_frames


def _batches(frames, size: int):
    while True:
        chunk = list(islice(frames, size))
        if not chunk:
            return
        yield torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).double() / 255.0


def evaluate(restored: str | Path, reference: str | Path, fps=None, chunk: int = 8) -> dict:
    """PSNR (dB) and SSIM, RGB in [0, 1], per frame and over the clip.

    ``psnr`` and ``ssim`` are the means of the per-frame values; ``psnr_global``
    is computed from the mean squared error of the whole clip. The two videos are
    streamed ``chunk`` frames at a time.
    """
    a, b = probe(restored, fps), probe(reference, fps)
    if (a.width, a.height) != (b.width, b.height):
        raise UserError(f"size differs: {restored} is {a.width}x{a.height}, {reference} is {b.width}x{b.height}")
    if a.frames != b.frames:
        raise UserError(f"frame count differs: {restored} has {a.frames}, {reference} has {b.frames}")
    per_frame, sq_err = [], 0.0
    for x, ref in zip(_batches(read_frames(a), chunk), _batches(read_frames(b), chunk)):
        p, s = psnr(x, ref), ssim(x, ref)
        sq_err += (x - ref).pow(2).mean(dim=(1, 2, 3)).sum().item()
        per_frame += [{"frame": len(per_frame) + i, "psnr": float(p[i]), "ssim": float(s[i])} for i in range(len(p))]
    n = len(per_frame)
    mse = sq_err / n
    return {
        "restored": str(restored), "reference": str(reference), "frames": n,
        "width": a.width, "height": a.height,
        "psnr": sum(f["psnr"] for f in per_frame) / n,
        "ssim": sum(f["ssim"] for f in per_frame) / n,
        "psnr_global": float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse)),
        "per_frame": per_frame,
    }
