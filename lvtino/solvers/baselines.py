"""The classical restorations behind ``--prior pinv`` and ``--prior tv``, and their starts."""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from lvtino.config import PinvConfig, TVConfig
from lvtino.solvers.motion import centroids, flow_interpolate
from lvtino.solvers.tv import tv_pdhg


def pinv_restore(physics, y: Tensor, cfg: PinvConfig) -> tuple[Tensor, dict]:
    r"""u = s + A^T (A A^T + eps I)^{-1} (y - A s): the frames nearest to the motion start s that fit y.

    Where every frame is measured (no temporal factor) s plays no part and u = A^+ y,
    the least-squares solution; where frames are dropped, the least-norm solution
    would leave them zero (flat grey): they come from the motion start instead
    (``interpolation_start``). A non-linear operator is replaced by its linear
    surrogate (for JPEG: the identity).
    """
    return interpolation_start(physics, y, cfg.eps, motion=True), {"iterations": 0}


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


def unmeasured_frames(physics, start: int, end: int) -> int:
    """How many signal frames of [start, end) no measured frame depends on (their values cannot be checked
    against the input: they come from the prior alone)."""
    linear = physics.linear_surrogate()
    split = getattr(linear, "split_time", None)
    band = split()[0] if split is not None else None
    if band is None:
        return 0
    touched = torch.unique(band.index[band.weight != 0])
    return (end - start) - int(((touched >= start) & (touched < end)).sum())


def interpolation_start(physics, y: Tensor, eps: float, motion: bool = True) -> Tensor:
    r"""A measurement-consistent start that moves in time between the measured frames.

    Each measured frame, brought to full size (the spatial part's A^+), is a key
    frame at its instant (the weighted mean of the frames it depends on); the
    frames between keys come from motion (``solvers.motion``: optical flow,
    occlusion-aware) or, with ``motion=False``, from a linear blend. The result v
    is then projected back onto the measurements: u = v + A^+ (y - A v). An
    operator with no temporal factor gives A^+ y.
    """
    linear = physics.linear_surrogate()
    split = getattr(linear, "split_time", None)
    band = split()[0] if split is not None else None
    if linear.factors[0] == 1 or band is None:
        return linear.A_dagger(y, eps=eps)
    _, spatial = split()
    keys = spatial.A_dagger(y, eps=eps).clamp(-1, 1)
    times = centroids(band, band.rows)
    if motion:
        v = torch.cat([flow_interpolate(keys[b:b + 1], times, band.cols) for b in range(keys.shape[0])])
    else:
        v = linear_interpolate(keys, times, band.cols)
    return project(linear, y, v, eps)


def project(physics, y: Tensor, x: Tensor, eps: float) -> Tensor:
    """x + A^T (A A^T + eps I)^-1 (y - A x): the frames nearest to x that fit y (exactly for eps = 0)."""
    linear = physics.linear_surrogate()
    return x + linear.A_dagger(y - linear.A(x), eps=eps)


def tv_restore(physics, y: Tensor, cfg: TVConfig, pinv: PinvConfig, callback=None) -> tuple[Tensor, dict]:
    r"""argmin_u 0.5 ||A u - y||^2 + lam_space TV_xy(u) + lam_time ||D_t u||_1, from ``interpolation_start``."""
    linear = physics.linear_surrogate()
    init = interpolation_start(linear, y, pinv.eps, motion=cfg.start == "motion")
    return tv_pdhg(linear, y, init, lam_space=cfg.lam_space, lam_time=cfg.lam_time, iterations=cfg.iterations,
                   tau=cfg.tau, sigma=cfg.sigma, theta=cfg.theta, tol=cfg.tol, return_info=True, callback=callback)


# -- the player's picture: the one baseline of the demo, the report, the fit line, evaluate and the benchmarks ------

def player_index(t: int, kt: int, measured: int) -> int:
    """The measured frame a player shows at output frame ``t``: a video at 1/kt of the rate shows frame m from
    output frame m kt until the next one comes (the last one held after the end)."""
    return min(t // kt, measured - 1)


def naive_upsample(y: Tensor, factors: tuple[int, int, int], shape: tuple[int, int, int]) -> Tensor:
    """What a player shows: the measured frame of each output time (``player_index``), bicubic-upscaled
    (``upscale_frames``).

    ``factors`` are the operator's (temporal, height, width) factors and ``shape``
    the (T, H, W) of the output. Not measurement-consistent: the comparison baseline.
    """
    kt, kh, kw = factors
    T, H, W = shape
    index = [player_index(t, kt, y.shape[2]) for t in range(T)]
    return upscale_frames(y, (kh, kw), (H, W))[:, :, index]


def player_frames(frames, factors: tuple[int, int, int], shape: tuple[int, int, int]):
    """``naive_upsample`` of measured frames (H, W, 3) uint8 given one at a time: output frames (H, W, 3) uint8,
    one measured frame in memory at a time (for a report or a benchmark reading a file)."""
    from lvtino.video.convert import frames_to_tensor, tensor_to_frames

    kt, kh, kw = factors
    T, H, W = shape
    t = 0
    for m, frame in enumerate(frames):
        up = next(iter(tensor_to_frames(upscale_frames(frames_to_tensor([frame]), (kh, kw), (H, W)))))
        while t < T and t // kt <= m:
            yield up
            t += 1
    while t < T:  # the last measured frame held to the end
        yield up
        t += 1


def player_factors(measured: tuple[int, int, int], shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """(temporal, height, width) factors from a measured (t, h, w) to an output (T, H, W), when no operator
    says them: the nearest whole ratios, at least 1."""
    return tuple(max(1, round(big / small)) for big, small in zip(shape, measured))


def upscale_frames(y: Tensor, factors: tuple[int, int], size: tuple[int, int] | None = None) -> Tensor:
    """Each frame of (B, C, t, h, w) bicubic-upscaled by (kh, kw), as a player does; clamped to [-1, 1].

    ``size`` (H, W): the signal's size, which a factor times h can miss either way (a grid that rounds the
    measured size up, as deepinv's, or down, as ffmpeg's): the upscale is cut to it, or its last row and
    column repeated up to it.
    """
    h, w = y.shape[-2:]
    up = _bicubic_matrix(h, factors[0]).to(y) @ y @ _bicubic_matrix(w, factors[1]).to(y).transpose(0, 1)
    if size is not None:
        H, W = size
        up = up[..., :H, :W]
        if up.shape[-2:] != (H, W):
            flat = up.flatten(0, 1)  # (B C, t, h, w): replicate-pad the last two axes
            flat = torch.nn.functional.pad(flat, (0, W - up.shape[-1], 0, H - up.shape[-2], 0, 0), mode="replicate")
            up = flat.unflatten(0, up.shape[:2])
    return up.clamp(-1, 1)


@functools.lru_cache(maxsize=16)
def _bicubic_matrix(n: int, k: int) -> Tensor:
    """(k n, n): torch's bicubic upscaling (align_corners=False) of a length-n axis by k, as a matrix (torch's own
    interpolation of the identity), so that a frame is upscaled by two small products: 4x faster than interpolate
    on 160x90 frames, equal to float rounding."""
    eye = torch.eye(n, dtype=torch.float64).view(n, 1, 1, n)
    up = torch.nn.functional.interpolate(eye, scale_factor=(1, k), mode="bicubic", align_corners=False)
    return up[:, 0, 0, :].transpose(0, 1).contiguous()
