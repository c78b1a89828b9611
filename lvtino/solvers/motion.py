"""Frames between measured ones from motion: bidirectional optical flow with occlusion-aware blending.

A low frame rate leaves key frames at known instants (each measured frame's
centroid in time: the kept frame when frames are dropped, the middle of the
exposure when they are averaged). A frame between keys 0 and 1, at a fraction
tau of the way, is each key warped along the motion and blended:

    F_t0 = -(1 - tau) tau F_01 + tau^2 F_10,   F_t1 = (1 - tau)^2 F_01 - tau (1 - tau) F_10
    I_t = ((1 - tau) V_0 I_0(x + F_t0) + tau V_1 I_1(x + F_t1)) / ((1 - tau) V_0 + tau V_1)

(the linear-motion approximation of the intermediate flows used by Super SloMo,
Jiang et al. 2018), F_01 and F_10 from OpenCV's DIS optical flow between the
keys, V_0 and V_1 the visibility of each key's pixels (forward-backward
consistent flow), carried to the instant along the same flows. Frames before
the first key or after the last hold the nearest key.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lvtino.flow import FlowEstimator, valid_mask, warp


def _grey(frame: Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8 (what the flow estimator reads)."""
    return ((frame.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _warp_frame(frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """(H, W, C) float32 sampled at x + flow(x), C kept even when it is 1."""
    out = warp(frame, flow)
    return out[..., None] if out.ndim == 2 else out


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
            f01, f10 = flow(grey[i0], grey[i1]), flow(grey[i1], grey[i0])
            v0 = valid_mask(f01, f10).astype(np.float32)[..., None]  # key 0's pixels seen in key 1
            v1 = valid_mask(f10, f01).astype(np.float32)[..., None]
            pairs = {i0: (f01, f10, v0, v1)}  # one pair at a time: frames come in order
        f01, f10, v0, v1 = pairs[i0]
        ft0 = -(1 - tau) * tau * f01 + tau * tau * f10
        ft1 = (1 - tau) ** 2 * f01 - tau * (1 - tau) * f10
        w0 = (1 - tau) * np.maximum(_warp_frame(v0, ft0), 1e-3)
        w1 = tau * np.maximum(_warp_frame(v1, ft1), 1e-3)
        blend = (w0 * _warp_frame(key_np[i0], ft0) + w1 * _warp_frame(key_np[i1], ft1)) / (w0 + w1)
        out[0, :, t] = torch.from_numpy(blend).permute(2, 0, 1).to(out)
    return out


def centroids(band, rows: int) -> list[float]:
    """Each measured frame's instant: the weighted mean of the signal frames it depends on."""
    index, weight = band.index[:rows].double(), band.weight[:rows]
    return ((index * weight).sum(1) / weight.sum(1)).tolist()
