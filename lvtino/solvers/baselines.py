"""The classical restorations behind ``--prior pinv`` and ``--prior tv``, and their starts: functions of an
operator, tensors and numbers (the presets' sections map onto their keywords in ``pipeline.priors``)."""

from __future__ import annotations

import torch
from torch import Tensor

from lvtino.solvers.motion import centroids, flow_interpolate
from lvtino.solvers.tv import tv_pdhg


def pinv_restore(physics, y: Tensor, eps: float) -> tuple[Tensor, dict]:
    r"""u = s + A^T (A A^T + eps I)^{-1} (y - A s): the frames nearest to the motion start s that fit y.

    Where every frame is measured (no temporal factor) s plays no part and u = A^+ y,
    the least-squares solution; where frames are dropped, the least-norm solution
    would leave them zero (flat grey): they come from the motion start instead
    (``interpolation_start``). A non-linear operator is replaced by its linear
    surrogate (for JPEG: the identity).
    """
    return interpolation_start(physics, y, eps, motion=True), {"iterations": 0}


def linear_interpolate(keys: Tensor, times: list[float], frames: int) -> Tensor:
    """Frames 0 .. frames-1 from key frames (B, C, K, H, W) at instants ``times``: linear between the two
    nearest keys, the nearest one held before the first and after the last."""
    pos = torch.tensor(times, dtype=torch.float64)
    t = torch.arange(frames, dtype=torch.float64)
    i1 = torch.searchsorted(pos, t).clamp(1, len(times) - 1) if len(times) > 1 else torch.zeros(frames).long()
    i0 = (i1 - 1).clamp_min(0)
    span = (pos[i1] - pos[i0]).clamp_min(1e-12)
    w = ((t - pos[i0]) / span).clamp(0, 1) if len(times) > 1 else torch.zeros(frames, dtype=torch.float64)
    w = w.to(keys.dtype).to(keys.device).view(1, 1, -1, 1, 1)
    return keys[:, :, i0] * (1 - w) + keys[:, :, i1] * w


def interpolation_start(physics, y: Tensor, eps: float, motion: bool = True) -> Tensor:
    r"""A measurement-consistent start that moves in time between the measured frames.

    Each measured frame, brought to full size (the spatial part's A^+), is a key
    frame at its instant (the weighted mean of the frames it depends on); the
    frames between keys come from motion (``solvers.motion``: optical flow,
    each key followed along its own) or, with ``motion=False``, from a linear blend. The result v
    is then projected back onto the measurements: u = v + A^+ (y - A v). An
    operator with no temporal factor gives A^+ y.
    """
    linear = physics.linear_surrogate()
    band, spatial = linear.split_time() or (None, None)
    if linear.factors[0] == 1 or band is None:
        return linear.A_dagger(y, eps=eps)
    keys = spatial.A_dagger(y, eps=eps).clamp(-1, 1)
    return project(linear, y, between_keys(keys, band, motion), eps)


def between_keys(keys: Tensor, band, motion: bool = True) -> Tensor:
    """Every signal frame of ``band`` from the key frames (one per measured frame, at its instant: ``centroids``):
    from motion (``solvers.motion``), or with ``motion=False`` a linear blend."""
    times = centroids(band, band.rows)
    if not motion:
        return linear_interpolate(keys, times, band.cols)
    return torch.cat([flow_interpolate(keys[b:b + 1], times, band.cols) for b in range(keys.shape[0])])


def upscaled_start(physics, y: Tensor, eps: float, upscale) -> Tensor:
    r"""The start of ``--upscaler``: each measured frame brought to full size by ``upscale`` (a single-image model:
    (N, 3, h, w) -> (N, 3, H, W)) and made consistent with it through the spatial part S of the operator,
    k = u + S^+ (y - S u); the frames between keys from motion, as ``interpolation_start``'s. Not projected: the
    caller's data step (``solvers.guide``) makes the whole consistent, reaching the frames between."""
    linear = physics.linear_surrogate()
    band, spatial = linear.split_time() or (None, None)
    b, c, k, h, w = y.shape
    up = upscale(y.transpose(1, 2).reshape(b * k, c, h, w))
    up = up.reshape(b, k, c, *up.shape[-2:]).transpose(1, 2).to(y)
    if linear.factors[0] == 1 or band is None:  # every frame measured: the keys are the frames
        return up
    return between_keys((up + spatial.A_dagger(y - spatial.A(up), eps=eps)).clamp(-1, 1), band)


def project(physics, y: Tensor, x: Tensor, eps: float) -> Tensor:
    """x + A^T (A A^T + eps I)^-1 (y - A x): the frames nearest to x that fit y (exactly for eps = 0)."""
    linear = physics.linear_surrogate()
    return x + linear.A_dagger(y - linear.A(x), eps=eps)


def tv_restore(physics, y: Tensor, *, lam_space: float, lam_time: float, iterations: int, tau: float,
               sigma: float, theta: float, tol: float, eps: float, motion: bool = True,
               callback=None, compiled: bool = False) -> tuple[Tensor, dict]:
    r"""argmin_u 0.5 ||A u - y||^2 + lam_space TV_xy(u) + lam_time ||D_t u||_1 by PDHG (``tv_pdhg``; ``compiled``:
    its iteration fused by torch.compile), from ``interpolation_start`` (its A^+ regularised by ``eps``;
    ``motion`` False: a linear blend in time)."""
    linear = physics.linear_surrogate()
    init = interpolation_start(linear, y, eps, motion=motion)
    return tv_pdhg(linear, y, init, lam_space=lam_space, lam_time=lam_time, iterations=iterations, tau=tau,
                   sigma=sigma, theta=theta, tol=tol, return_info=True, callback=callback, compiled=compiled)
