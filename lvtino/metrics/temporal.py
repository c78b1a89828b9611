"""Temporal consistency without learned weights: warping error, flicker and tOF.

Optical flow comes from OpenCV's DIS (on 8-bit grey frames). The flow of the
reference is the ground truth of the motion; a pixel counts only where the
forward and backward flows agree (Sundaram et al.'s occlusion test) and the
motion stays inside the frame.

- warping error (Lai et al. 2018): for each t, the mean squared difference of
  the output's frame t and its frame t + 1 warped back along the reference's
  flow, over the unoccluded pixels; RGB in [0, 1].
- flicker: | mean |o(t+1) - o(t)| - mean |r(t+1) - r(t)| |, how much more (or
  less) the output changes from frame to frame than the reference does.
- tOF (Chu et al. 2020): mean over pixels of || F_o(t) - F_r(t) ||, the flow of
  the output against the flow of the reference, in pixels.
"""

from __future__ import annotations

import numpy as np

from lvtino.flow import FlowEstimator, valid_mask, warp


class TemporalMeter:
    """Feeds on (output, reference) frame pairs in order; per-step values for t = 0 .. T-2."""

    def __init__(self):
        self.flow = FlowEstimator()
        self.previous = None
        self.steps: list[dict] = []

    def add(self, out: np.ndarray, ref: np.ndarray) -> None:
        if self.previous is not None:
            self.steps.append(self._step(*self.previous, out, ref))
        self.previous = (out, ref)

    def _step(self, o0, r0, o1, r1) -> dict:
        forward, backward = self.flow(r0, r1), self.flow(r1, r0)
        mask = valid_mask(forward, backward)
        f0, f1 = o0.astype(np.float32) / 255.0, o1.astype(np.float32) / 255.0
        err = ((f0 - warp(f1, forward)) ** 2).mean(-1)
        warping = float(err[mask].mean()) if mask.any() else float("nan")
        change_out = float(np.abs(f1 - f0).mean())
        change_ref = float(np.abs(r1.astype(np.float32) - r0.astype(np.float32)).mean() / 255.0)
        tof = float(np.linalg.norm(self.flow(o0, o1) - forward, axis=-1).mean())
        return {"warping_error": warping, "flicker": abs(change_out - change_ref), "tof": tof,
                "valid_fraction": float(mask.mean())}

    def summary(self) -> dict:
        if not self.steps:
            return {"warping_error": None, "flicker": None, "tof": None}
        keys = ("warping_error", "flicker", "tof")
        return {k: float(np.nanmean([s[k] for s in self.steps])) for k in keys}
