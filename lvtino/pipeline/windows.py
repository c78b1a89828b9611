"""Long videos in overlapping windows: the plan, and the join that hides the seams.

A window is a span of signal (output) frames restored on its own, against the
measured frames that depend on that span only (``Physics.restrict_time``): the
window's measurement is then exact, whatever the operator. Windows start on
multiples of the operator's temporal factor, so every low-rate frame lies
wholly inside windows, and overlap by enough frames that every measured frame
lies wholly inside at least one window.

The join cross-fades the overlapping frames (linear weights that sum to one),
then makes each seam measurement-consistent again. Over the seam region R (the
overlap widened by the operator's reach) it adds the least-norm correction that
acts on R's frames only and makes every measured frame touching R fit y:
dx = A_R^T (A_R A_R^T + eps)^-1 (y - A x)_rows, with A_R the part of A acting
on R. Frames leave the join as soon as no later window or seam needs them.

A circular temporal boundary (Problem B's blur wraps the clip around) makes the
first measured frames depend on the last signal frames: only a window that holds
the whole video restores them, so such an operator is restored in one window and
a video longer than that is refused in one line (``--window`` as long as the
video, or a replicate boundary, are the ways out).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from lvtino.errors import UserError, arg


@dataclass(frozen=True)
class Window:
    index: int
    start: int  # first signal frame
    end: int    # signal frame after the last

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Plan:
    frames: int             # signal frames of the whole video
    windows: tuple[Window, ...]
    margin: int             # how far a seam region reaches beyond the overlap (the operator's reach)

    def first_needed(self, frame: int) -> int:
        """The first window that output frames from ``frame`` on still need (len(windows): none)."""
        if frame >= self.frames:
            return len(self.windows)
        ends = [w.end for w in self.windows]
        i = bisect.bisect_right(ends, frame)  # the first window ending after the frame
        if i > 0 and self.seam(i - 1)[1] > frame:  # the seam before it still reaches the frame
            i -= 1
        return i

    def seam(self, i: int) -> tuple[int, int]:
        """Seam region between windows i and i + 1: their overlap widened by ``margin``, inside the video."""
        a, b = self.windows[i + 1].start, self.windows[i].end
        return max(0, a - self.margin), min(self.frames, b + self.margin)

    def seam_context(self, i: int) -> tuple[int, int]:
        """The frames the seam step reads: the seam region widened by ``margin`` again (the measured frames that
        touch the region depend on them)."""
        a, b = self.seam(i)
        return max(0, a - self.margin), min(self.frames, b + self.margin)

    def select(self, start: int, end: int) -> list[Window]:
        """The windows that output frames [start, end) depend on: those covering them, and both sides of any
        seam region that touches them."""
        keep = {w.index for w in self.windows if w.start < end and w.end > start}
        for i in range(len(self.windows) - 1):
            a, b = self.seam(i)
            if a < end and b > start:
                keep |= {i, i + 1}
        return [w for w in self.windows if w.index in keep]


def plan_windows(supports: list[tuple[int, int] | None], frames: int, factor: int, length: int,
                 overlap: int, names: tuple[str, str] = ("window.frames", "window.overlap")) -> Plan:
    """Cover ``frames`` signal frames with windows of ``length`` overlapping by ``overlap`` frames.

    ``supports`` gives, per measured frame, the signal frames it depends on (None
    for one that wraps around the clip: only a window holding the whole video
    has it). ``length`` is rounded down and ``overlap`` up to multiples of
    ``factor``, and the overlap is raised to what the operator's reach needs. The
    last window ends at the last frame and may be shorter than the rest.
    ``names`` are what the user called the two settings (flags or preset keys).
    """
    frames_name, overlap_name = names
    if length < 1 or overlap < 0:
        raise UserError(f"{frames_name} {length}, {overlap_name} {overlap}: need frames >= 1 and overlap >= 0")
    if frames <= length:
        return Plan(frames, (Window(0, 0, frames),), 0)
    wraps = [row for row, s in enumerate(supports) if s is None]
    if wraps:
        raise UserError(f"the operator's temporal boundary is circular: measured frame {wraps[0]} mixes the first "
                        f"and last frames of the video, which only one window holding all {frames} frames can "
                        f"restore; use {frames_name} {frames} (memory grows with it), or a replicate boundary "
                        f"(operator.0.temporal_blur.boundary=replicate through {arg('overrides')}, as problem "
                        "deblur-t7)")
    lo = np.array([s[0] for s in supports], dtype=np.int64)
    hi = np.array([s[1] for s in supports], dtype=np.int64)
    reach = max(0, int((hi - lo).max(initial=1)) - factor)  # frames a measured frame reaches beyond its group
    length = max(factor, length // factor * factor)
    overlap = -(-max(overlap, reach) // factor) * factor
    if 2 * overlap + 2 * reach > length:
        need = 2 * overlap + 2 * reach
        raise UserError(f"{frames_name} {length} is too short for {overlap_name} {overlap} with this operator "
                        f"(reach {reach} frames): windows need at least {need} frames, or a smaller overlap")
    stride = length - overlap
    windows, start = [], 0
    while True:
        end = min(start + length, frames)
        windows.append(Window(len(windows), start, end))
        if end == frames:
            break
        start += stride
    plan = Plan(frames, tuple(windows), reach)
    _check_coverage(plan, lo, hi, overlap_name)
    return plan


def _check_coverage(plan: Plan, lo: np.ndarray, hi: np.ndarray, overlap_name: str) -> None:
    """Every measured frame lies whole in some window (the last window starting at or before its first frame)."""
    starts = np.array([w.start for w in plan.windows])
    ends = np.array([w.end for w in plan.windows])
    i = np.searchsorted(starts, lo, side="right") - 1
    bad = np.nonzero(ends[i] < hi)[0]
    if bad.size:
        row = int(bad[0])
        raise UserError(f"measured frame {row} (signal frames {lo[row]}..{hi[row] - 1}) lies in no window whole: "
                        f"raise {overlap_name}")


def fade_weights(plan: Plan, w: Window) -> Tensor:
    """Per-frame weights of window ``w``: rising over the overlap with the previous window, falling over the
    overlap with the next, 1 elsewhere. Overlapping weights of two windows sum to one."""
    weights = torch.ones(w.frames, dtype=torch.float64)
    if w.index > 0:
        prev = plan.windows[w.index - 1]
        n = prev.end - w.start
        weights[:n] = torch.arange(1, n + 1, dtype=torch.float64) / (n + 1)
    if w.index + 1 < len(plan.windows):
        nxt = plan.windows[w.index + 1]
        n = w.end - nxt.start
        weights[w.frames - n:] = torch.arange(n, 0, -1, dtype=torch.float64) / (n + 1)
    return weights


class Joiner:
    """Cross-fades windows given in order, fixes each seam against the measurement, and yields final frames.

    ``seam_step(a, b, lo, hi, x)`` gets the frames [lo, hi) around a seam region
    [a, b) and returns the region's frames corrected so that every measured
    frame touching the region fits y (frames outside it stay as they are);
    None skips the step.
    """

    def __init__(self, plan: Plan, seam_step: Callable[[int, int, int, int, Tensor], Tensor] | None = None):
        self.plan, self.seam_step = plan, seam_step
        self.held: dict[int, Tensor] = {}  # frame index -> (1, C, 1, H, W), blended so far
        self.previous: Window | None = None

    def add(self, w: Window, x: Tensor) -> Iterator[tuple[int, Tensor]]:
        """Blend window ``w``'s frames (1, C, T, H, W) in; yield (frame index, (1, C, 1, H, W)) of final frames.

        Frames outside any overlap are kept as views of ``x`` (no copy); an overlapping frame is the sum of the
        two windows' weighted frames.
        """
        if self.previous is not None and w.index != self.previous.index + 1:
            yield from self.finish()  # a gap in the selected windows: everything held so far is final
            self.previous = None
        weights = fade_weights(self.plan, w).tolist()
        for k in range(w.frames):
            t, weight, frame = w.start + k, weights[k], x[:, :, k:k + 1]
            if t in self.held:
                self.held[t] = torch.add(self.held[t], frame, alpha=weight)
            else:
                self.held[t] = frame if weight == 1.0 else frame * weight
        a, b = self.plan.seam(self.previous.index) if self.previous is not None else (0, 0)
        if self.seam_step is not None and b > a:  # (no seam region: abutting windows of an operator of no reach)
            lo, hi = self.plan.seam_context(self.previous.index)
            context = torch.cat([self.held[t] for t in range(lo, hi)], dim=2)
            fixed = self.seam_step(a, b, lo, hi, context)
            for t in range(a, b):
                self.held[t] = fixed[:, :, t - a:t - a + 1]
        self.previous = w
        last = w.index == len(self.plan.windows) - 1
        yield from self._flush(self.plan.frames if last else self.plan.seam_context(w.index)[0])

    def finish(self) -> Iterator[tuple[int, Tensor]]:
        """The frames still held once the last selected window is in."""
        yield from self._flush(self.plan.frames)

    def _flush(self, upto: int) -> Iterator[tuple[int, Tensor]]:
        for t in sorted(t for t in self.held if t < upto):
            yield t, self.held.pop(t)


def seam_step(physics, measured, eps: float) -> Callable[[int, int, int, int, Tensor], Tensor]:
    """The join's seam correction: dx = A_R^T (A_R A_R^T + eps)^-1 (y - A x)_rows on the region R = [a, b),
    fitting every measured frame that touches it; ``measured.get(rows)`` gives those frames of y."""
    def step(a: int, b: int, lo: int, hi: int, x: Tensor) -> Tensor:
        region, rows = physics.restrict_time(a, b, within=(lo, hi))
        if not rows:
            return x[:, :, a - lo:b - lo]
        around, around_rows = physics.restrict_time(lo, hi)  # every row in [lo, hi), computable from x
        index = {r: i for i, r in enumerate(around_rows)}
        residual = measured.get(rows) - around.A(x)[:, :, [index[r] for r in rows]]
        correction = region.linear_surrogate().A_dagger(residual, eps=eps)
        return (x[:, :, a - lo:b - lo] + correction).clamp(-1, 1)
    return step
