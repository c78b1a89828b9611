"""The classical restorations behind ``--prior pinv`` and ``--prior tv``, and their starts."""

from __future__ import annotations

import torch
from torch import Tensor

from lvtino.config import PinvConfig, TVConfig
from lvtino.solvers.tv import tv_pdhg


def pinv_restore(physics, y: Tensor, cfg: PinvConfig) -> tuple[Tensor, dict]:
    r"""u = A^T (A A^T + eps I)^{-1} y: the measurement-consistent least-squares start.

    A non-linear operator is replaced by its linear surrogate (for JPEG: the identity).
    """
    return physics.linear_surrogate().A_dagger(y, eps=cfg.eps), {"iterations": 0}


def interpolate_in_time(x: Tensor, factor: int) -> Tensor:
    r"""Replace each group of ``factor`` frames by a linear interpolation of the group means.

    Group j (frames j*factor .. j*factor + factor - 1) is taken to stand for the
    instant j*factor + (factor - 1) / 2; every frame gets the linear interpolation
    of the two nearest group means (the nearest one beyond the first and last
    centres). A piecewise-constant-in-time video becomes piecewise linear.
    """
    T = x.shape[2]
    groups = -(-T // factor)
    pad = groups * factor - T
    padded = torch.cat([x, x[:, :, -1:].expand(-1, -1, pad, -1, -1)], dim=2) if pad else x
    means = padded.unflatten(2, (groups, factor)).mean(dim=3)
    pos = ((torch.arange(T, dtype=torch.float64) - (factor - 1) / 2) / factor).clamp(0, groups - 1)
    i0 = pos.floor().long()
    i1 = (i0 + 1).clamp(max=groups - 1)
    w = (pos - i0).to(x.dtype).to(x.device).view(1, 1, -1, 1, 1)
    return means[:, :, i0] * (1 - w) + means[:, :, i1] * w


def interpolation_start(physics, y: Tensor, eps: float) -> Tensor:
    r"""A measurement-consistent start that moves smoothly in time.

    u0 = A^+ y, then interpolated in time over the operator's temporal factor,
    then projected back onto the measurements: u = v + A^+ (y - A v). For an
    operator with no temporal factor this is A^+ y.
    """
    linear = physics.linear_surrogate()
    u = linear.A_dagger(y, eps=eps)
    factor = linear.factors[0]
    if factor == 1:
        return u
    v = interpolate_in_time(u, factor)
    return v + linear.A_dagger(y - linear.A(v), eps=eps)


def tv_restore(physics, y: Tensor, cfg: TVConfig, pinv: PinvConfig) -> tuple[Tensor, dict]:
    r"""argmin_u 0.5 ||A u - y||^2 + lam_space TV_xy(u) + lam_time ||D_t u||_1, from ``interpolation_start``."""
    linear = physics.linear_surrogate()
    init = interpolation_start(linear, y, pinv.eps)
    return tv_pdhg(linear, y, init, lam_space=cfg.lam_space, lam_time=cfg.lam_time, iterations=cfg.iterations,
                   tau=cfg.tau, sigma=cfg.sigma, theta=cfg.theta, tol=cfg.tol, return_info=True)


def naive_upsample(y: Tensor, factors: tuple[int, int, int], shape: tuple[int, int, int]) -> Tensor:
    """What a plain player shows: each measured frame repeated, each frame bicubic-upscaled.

    ``factors`` are the operator's (temporal, height, width) factors and ``shape``
    the (T, H, W) to crop to. Not measurement-consistent: the comparison baseline.
    """
    kt, kh, kw = factors
    B, C, t, h, w = y.shape
    frames = y.permute(0, 2, 1, 3, 4).reshape(B * t, C, h, w)
    up = torch.nn.functional.interpolate(frames, scale_factor=(kh, kw), mode="bicubic", align_corners=False)
    up = up.reshape(B, t, C, h * kh, w * kw).permute(0, 2, 1, 3, 4)
    T, H, W = shape
    return up.repeat_interleave(kt, dim=2)[:, :, :T, :H, :W].clamp(-1, 1)
