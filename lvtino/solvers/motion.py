"""Frames between measured ones from motion: bidirectional optical flow, each key's pixels followed to the instant.

A low frame rate leaves key frames at known instants (each measured frame's
centroid in time: the kept frame when frames are dropped, the middle of the
exposure when they are averaged). A frame between keys 0 and 1, at a fraction
tau of the way, is each key warped along the motion and blended:

    I_t(x) = (w_0 I_0(x + d_0) + w_1 I_1(x + d_1)) / (w_0 + w_1)

where x + d_0 is the pixel of key 0 that its own flow F_01 carries to x at tau,
the fixed point of

    d_0 = -tau F_01(x + d_0)        (and d_1 = -(1 - tau) F_10(x + d_1)),

started from the linear-motion estimate of Super SloMo (Jiang et al. 2018),
d_0 = -(1 - tau) tau F_01(x) + tau^2 F_10(x), and iterated ``ITERATIONS`` times;
F_01 and F_10 come from OpenCV's DIS optical flow between the keys. That
estimate reads both flows at x itself, so along a moving object's edges (x
on the object at tau but on the background in one key) it points half-way
and the blend shows fragments of both: the ragged blotches and the specks a
rotating wheel left. Following the flow to its fixed point puts the object's
pixels where they are. Where no pixel of a key reaches x (x is hidden in
that key: the background a moving object covers or uncovers), the iteration
does not settle: its residual |d_0 + tau F_01(x + d_0)| stays large, and the
weight w_0 = (1 - tau) exp(-residual^2 / 2) (zero when x + d_0 lies outside
the frame) leaves x to the other key. This occlusion reasoning from the flows
themselves replaces a forward-backward visibility mask, whose holes on
rotating or low-texture parts let one unreliable key win alone. Frames before
the first key or after the last hold the nearest key.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lvtino.flow import FlowEstimator, lands_inside, warp

ITERATIONS = 4  # fixed-point steps from the linear-motion estimate (2: most pixels settle; 8: no better)
FLOOR = 1e-3  # the weight left to a key where neither key's pixel settles: a blend in time there


def _grey(frame: Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8 (what the flow estimator reads)."""
    return ((frame.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _warp_frame(frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """(H, W, C) float32 sampled at x + flow(x), C kept even when it is 1."""
    out = warp(frame, flow)
    return out[..., None] if out.ndim == 2 else out


def _follow(key: np.ndarray, flow: np.ndarray, offset: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """``key`` (H, W, C) sampled where its pixels reach each x after ``step`` of their motion ``flow``: the fixed
    point of d = -step flow(x + d) from ``offset``; and each sample's weight, exp(-residual^2 / 2), zero where
    x + d leaves the frame."""
    for _ in range(ITERATIONS):
        offset = -step * warp(flow, offset)
    miss = offset + step * warp(flow, offset)
    residual = miss[..., 0] * miss[..., 0] + miss[..., 1] * miss[..., 1]
    weight = np.exp(-0.5 * residual) * lands_inside(offset)
    return _warp_frame(key, offset), weight.astype(np.float32)[..., None]


def flow_interpolate(keys: Tensor, times: list[float], frames: int, flow: FlowEstimator | None = None) -> Tensor:
    """Frames 0 .. frames-1 of (1, C, frames, H, W) from key frames (1, C, K, H, W) at instants ``times``."""
    if keys.shape[0] != 1:
        raise ValueError("flow_interpolate expects one clip (B = 1)")
    flow = flow or FlowEstimator()
    _, c, k, h, w = keys.shape
    out = torch.empty(1, c, frames, h, w, dtype=keys.dtype, device=keys.device)
    key_np = [keys[0, :, i].permute(1, 2, 0).float().cpu().numpy() for i in range(k)]
    grey = [_grey(keys[0, :, i]) for i in range(k)]
    pairs: dict[int, tuple] = {}
    for t in range(frames):
        after = next((i for i, s in enumerate(times) if s >= t), None)
        if after is None or after == 0 or abs(times[after] - t) < 1e-9:
            i = k - 1 if after is None else after
            out[0, :, t] = keys[0, :, i]
            continue
        i0, i1 = after - 1, after
        tau = (t - times[i0]) / (times[i1] - times[i0])
        if i0 not in pairs:
            pairs = {i0: (flow(grey[i0], grey[i1]), flow(grey[i1], grey[i0]))}  # one pair at a time: in order
        f01, f10 = pairs[i0]
        x0, w0 = _follow(key_np[i0], f01, -(1 - tau) * tau * f01 + tau * tau * f10, tau)
        x1, w1 = _follow(key_np[i1], f10, (1 - tau) ** 2 * f01 - tau * (1 - tau) * f10, 1 - tau)
        w0, w1 = (1 - tau) * (w0 + FLOOR), tau * (w1 + FLOOR)
        blend = (w0 * x0 + w1 * x1) / (w0 + w1)
        out[0, :, t] = torch.from_numpy(blend).permute(2, 0, 1).to(out)
    return out


def centroids(band, rows: int) -> list[float]:
    """Each measured frame's instant: the weighted mean of the signal frames it depends on."""
    index, weight = band.index[:rows].double(), band.weight[:rows]
    return ((index * weight).sum(1) / weight.sum(1)).tolist()
