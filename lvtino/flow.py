"""Optical flow (OpenCV's DIS) and warping: what the temporal metrics and the motion-compensated start share."""

from __future__ import annotations

import functools

import numpy as np


def _grey(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 grey, contiguous (what DIS needs)."""
    import cv2

    return np.ascontiguousarray(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY))


MIN_SIDE = 12  # DIS refuses frames smaller than this on both sides


class FlowEstimator:
    """DIS optical flow, one instance reused for every pair (DIS keeps scratch buffers)."""

    def __init__(self):
        import cv2

        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow (H, W, 2) in pixels (dx, dy) such that a(p) ~ b(p + flow(p)); none (zeros) for frames smaller
        than DIS's smallest patch grid (12 pixels a side)."""
        if min(a.shape[:2]) < MIN_SIDE:
            return np.zeros((*a.shape[:2], 2), np.float32)
        return self._dis.calc(_grey(a), _grey(b), None)


@functools.lru_cache(maxsize=4)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) coordinates of every pixel, float32, read-only (shared by every warp of that size)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs.setflags(write=False)
    ys.setflags(write=False)
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image sampled at p + flow(p), bilinear; float32."""
    import cv2

    xs, ys = _pixel_grid(*flow.shape[:2])
    return cv2.remap(image.astype(np.float32, copy=False), xs + flow[..., 0], ys + flow[..., 1],
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def valid_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Pixels whose motion is seen in both frames: forward-backward consistent and landing inside the frame."""
    back = warp(backward, forward)  # the backward flow at p + forward(p)
    fx, fy, bx, by = forward[..., 0], forward[..., 1], back[..., 0], back[..., 1]
    sx, sy = fx + bx, fy + by
    diff = sx * sx + sy * sy  # |forward + back|^2 (written out: numpy's sum over an axis of 2 took 4x longer)
    bound = 0.01 * ((fx * fx + fy * fy) + (bx * bx + by * by)) + 0.5
    return (diff <= bound) & lands_inside(forward)


def lands_inside(flow: np.ndarray) -> np.ndarray:
    """Pixels p whose p + flow(p) lies inside the frame."""
    h, w = flow.shape[:2]
    xs, ys = _pixel_grid(h, w)
    x1, y1 = xs + flow[..., 0], ys + flow[..., 1]
    return (x1 >= 0) & (x1 <= w - 1) & (y1 >= 0) & (y1 <= h - 1)
