"""Resampling as real tools shrink video: centre-aligned grid, antialiasing kernels, each tool's edge rule.

Output sample i of a length-n signal shrunk to m samples sits at the input
position c_i = (i + 0.5) * s - 0.5 with s = n / m (pixel centres, as ffmpeg's
scaler, PIL, OpenCV and torch's ``interpolate`` sample; deepinv's grid, used by
the paper's problems, keeps samples 0, f, 2f, ... instead). Its weights are the
kernel stretched by s when shrinking (the antialiasing every tool does on
reduction), w_j = K((j - c_i) / max(s, 1)), normalised to sum to one. At the
edges a tool either drops the taps outside the image and renormalises the rest
(PIL, torch) or repeats the edge sample (ffmpeg's swscale, OpenCV). ``area`` is
exact box coverage (OpenCV's INTER_AREA, ffmpeg's ``area``).

``RESAMPLERS`` (``physics.resamplers``) names each tool's choice; ``resample_matrix`` builds the
(m, n) matrix, one per spatial axis of a separable operator.
"""

from __future__ import annotations

import math
import torch
from torch import Tensor

from lvtino.physics.resamplers import KERNELS, RESAMPLERS, Resampler  # noqa: F401  (re-exported)


def _kernel(name: str, a: float):
    """(function of distance in input samples, support radius) of an unstretched kernel."""
    if name == "box":
        return (lambda x: ((x >= -0.5) & (x < 0.5)).to(torch.float64)), 0.5
    if name == "triangle":
        return (lambda x: (1 - x.abs()).clamp_min(0)), 1.0
    if name == "cubic":
        def cubic(x):
            x = x.abs()
            near = ((a + 2) * x - (a + 3)) * x * x + 1
            far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
            return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))
        return cubic, 2.0
    if name == "lanczos3":
        def lanczos(x):
            return torch.where(x.abs() < 3, torch.special.sinc(x) * torch.special.sinc(x / 3), torch.zeros_like(x))
        return lanczos, 3.0
    raise ValueError(f"kernel={name!r} is not one of {KERNELS}")


def resample_matrix(n: int, m: int, resampler: Resampler | str) -> Tensor:
    """The (m, n) float64 matrix that shrinks (or stretches) a length-n signal to m samples."""
    r = RESAMPLERS[resampler] if isinstance(resampler, str) else resampler
    if n < 1 or m < 1:
        raise ValueError(f"cannot resample {n} samples to {m}")
    s = n / m
    centre = (torch.arange(m, dtype=torch.float64) + 0.5) * s - 0.5
    if r.kernel == "area":
        return _area(n, m, s)
    fn, support = _kernel(r.kernel, r.a)
    stretch = max(s, 1.0)
    reach = math.ceil(support * stretch) + 1
    taps = torch.arange(-reach, reach + 1, dtype=torch.float64)
    pos = torch.floor(centre).unsqueeze(1) + taps  # (m, taps) input positions, possibly outside [0, n)
    w = fn((pos - centre.unsqueeze(1)) / stretch)
    out = torch.zeros(m, n, dtype=torch.float64)
    idx = pos.long()
    if r.edge == "clamp":
        out.scatter_add_(1, idx.clamp(0, n - 1), w)
    elif r.edge == "renormalize":
        inside = (idx >= 0) & (idx < n)
        out.scatter_add_(1, idx.clamp(0, n - 1), torch.where(inside, w, torch.zeros_like(w)))
    else:
        raise ValueError(f"edge={r.edge!r} is not one of clamp, renormalize")
    return out / out.sum(1, keepdim=True)


def _area(n: int, m: int, s: float) -> Tensor:
    """Exact box coverage: output i averages input [i s, (i + 1) s), partial samples by their covered part."""
    lo = torch.arange(m, dtype=torch.float64) * s
    hi = lo + s
    j = torch.arange(n, dtype=torch.float64)
    cover = (torch.minimum(hi.unsqueeze(1), j + 1) - torch.maximum(lo.unsqueeze(1), j)).clamp_min(0)
    return cover / cover.sum(1, keepdim=True)
