"""How well the restored frames explain the measurement, as frames become final.

The measured frames come from ``video.frames.DecodedFrames`` (decoded in order
on demand, forgotten once no window or seam reads them again).
``ResidualMeter`` accumulates ||A x - y||^2 and ||y||^2 over the measured frames
that depend on written frames only, as the frames become final. It takes the
operator, its time supports and the range, not the whole run.
"""

from __future__ import annotations

import torch

from lvtino.pipeline.job import guide_index
from lvtino.runtime import StageTimer
from lvtino.video.frames import DecodedFrames
from lvtino.video.player import player_index, upscale_frames


class ResidualMeter:
    """||A x - y|| / ||y|| over the measured frames that depend on written frames [start, end) only.

    For a separable operator each final frame is measured in space once, as it
    arrives (a small frame), and a measured frame is the time band's weighted sum
    of those: no frame is copied or measured twice.

    Beside it, the same for what a player shows (each measured frame bicubic-
    upscaled and held until the next): ``naive()``. A restoration that explains
    its input better than that has used the measurement; an operator under which
    even the player's picture fits the input poorly is likely the wrong one (a
    wrong resampler or grid).
    """

    def __init__(self, physics, supports: list, start: int, end: int, measured: DecodedFrames, timer: StageTimer,
                 first: int | None = None, guide: DecodedFrames | None = None, guide_offset: int = 0):
        """``first``: count only measured frames that start at or after this frame (a resumed run's first).
        ``guide``: another tool's restoration (``--guide``), measured beside the restoration: ``guide_value``."""
        self.physics, self.measured, self.timer, self.guide = physics, measured, timer, guide
        self.guide_offset = guide_offset
        # a linear operator split into a band in time and a per-frame part is measured frame by frame as frames
        # become final; any other, over the frames each measured frame needs (``restrict_time``)
        self.band, self.spatial = (physics.split_time() if physics.linear else None) or (None, None)
        lo = start if first is None else first
        self.pending = sorted(((s[1], s[0], r) for r, s in enumerate(supports)
                               if s is not None and lo <= s[0] and s[1] <= end), reverse=True)
        self.frames: dict[int, torch.Tensor] = {}
        self.guided: dict[int, torch.Tensor] = {}  # the guide's frames, measured in space
        self.num = self.den = self.naive_num = self.guide_num = 0.0
        self.rows = self.values = self.guide_values = 0
        self._naive: dict[int, torch.Tensor] = {}  # measured frame -> its upscale, measured in space

    def add(self, final) -> None:
        """Frames (index, (1, C, 1, H, W)) that became final, in order."""
        with self.timer("residual"):
            self._add(final)

    def _add(self, final) -> None:
        final = list(final)
        if self.spatial is None:
            self.frames.update(final)
        elif final:  # the frames measured in space together: one product, not one each
            small = self.spatial.A(torch.cat([frame for _, frame in final], dim=2))
            self.frames.update((t, small[:, :, i:i + 1]) for i, (t, _) in enumerate(final))
        for t, frame in final:
            if self.guide is not None:
                i = guide_index(self.guide.info, self.guide_offset, t)
                g = self.guide.get([i], keep_from=i).to(frame)
                self.guided[t] = self.spatial.A(g) if self.spatial is not None else g
        done = max(self.frames, default=-1)
        ready = []
        while self.pending and self.pending[-1][0] - 1 <= done:
            ready.append(self.pending.pop())
        ready = [r for r in ready if all(t in self.frames for t in range(r[1], r[0]))]
        if ready:  # every measured frame that became computable, at once
            picked = [row for _, _, row in ready]
            ax = self._measure(ready, self.frames)
            y = self.measured.get(picked)
            self.num += float((ax - y).pow(2).sum())
            if self.guide is not None:  # over the measured frames whose frames the guide has (none held)
                lo, hi = self.guide_offset, self.guide_offset + self.guide.info.frames
                covered = [k for k, (end, start, _) in enumerate(ready) if lo <= start and end <= hi]
                if covered:
                    error = (self._measure(ready, self.guided) - y)[:, :, covered]
                    self.guide_num += float(error.pow(2).sum())
                    self.guide_values += error.numel()
            self.den += float(y.pow(2).sum())
            self.rows += len(picked)
            self.values += y.numel()
            if self.band is not None or self.spatial is not None:
                self.naive_num += float((self._naive_measure(picked) - y).pow(2).sum())
        low = min((lo for _, lo, _ in self.pending), default=done + 1)
        for t in [t for t in self.frames if t < low]:
            del self.frames[t]
            self.guided.pop(t, None)

    def _measure(self, ready, frames: dict[int, torch.Tensor]) -> torch.Tensor:
        if self.spatial is not None:  # the band's weighted sums of the per-frame measurements
            if self.band is None:
                return torch.cat([frames[row] for _, _, row in ready], dim=2)
            out = []
            for _, _, row in ready:
                index, weight = self.band.index[row].tolist(), self.band.weight[row].tolist()
                acc = None
                for t, wt in zip(index, weight):
                    if wt != 0:
                        acc = frames[t] * wt if acc is None else acc.add_(frames[t], alpha=wt)
                out.append(acc)
            return torch.cat(out, dim=2)
        lo, hi = min(r[1] for r in ready), max(r[0] for r in ready)
        physics_r, rows = self.physics.restrict_time(lo, hi)
        x = torch.cat([frames[t] for t in range(lo, hi)], dim=2)
        index = {r: i for i, r in enumerate(rows)}
        return physics_r.A(x)[:, :, [index[row] for _, _, row in ready]]

    def _naive_measure(self, rows: list[int]) -> torch.Tensor:
        """A of the player's picture for measured frames ``rows``: a signal frame t shows measured frame
        t // k, upscaled; A's time band then weighs those."""
        kt, kh, kw = self.physics.factors
        out = []
        for row in rows:
            if self.band is None:
                shown = [(row, 1.0)]
            else:
                index, weight = self.band.index[row].tolist(), self.band.weight[row].tolist()
                shown = [(player_index(t, kt, self.band.rows), wt) for t, wt in zip(index, weight) if wt != 0]
            acc = None
            for j, wt in shown:
                if j not in self._naive:
                    frame = self.measured.get([j])
                    up = upscale_frames(frame, (kh, kw), self._signal_size(frame))
                    self._naive[j] = self.spatial.A(up)
                    for old in [m for m in self._naive if m < j - 2 * max(kt, 4)]:
                        del self._naive[old]
                acc = self._naive[j] * wt if acc is None else acc + self._naive[j] * wt
            out.append(acc)
        return torch.cat(out, dim=2)

    def _signal_size(self, measured: torch.Tensor) -> tuple[int, int]:
        """(H, W) of the signal: each spatial matrix's column count, or the measured size where an axis has none."""
        _, mh, mw = self.spatial.matrices
        return (mh.shape[1] if mh is not None else measured.shape[-2], mw.shape[1] if mw is not None else
                measured.shape[-1])

    def value(self) -> float | None:
        return (self.num / max(self.den, 1e-24)) ** 0.5 if self.den > 0 else None

    def naive(self) -> float | None:
        """The same measure for the player's picture (bicubic upscale, frames held)."""
        return (self.naive_num / max(self.den, 1e-24)) ** 0.5 if self.den > 0 and self.spatial is not None else None

    def rms(self) -> dict:
        """Root mean square of A x - y, of the player's picture's, and of y, in grey levels (0-255); the guide's over
        the measured frames it has (an interpolator's that stops early holds its last frame for the rest)."""
        if not self.values:
            return {}
        grey = lambda total: round(127.5 * (total / self.values) ** 0.5, 3)  # noqa: E731
        out = {"restored": grey(self.num), "input": grey(self.den)}
        if self.spatial is not None:
            out["naive"] = grey(self.naive_num)
        if self.guide is not None and self.guide_values:
            out["guide"] = round(127.5 * (self.guide_num / self.guide_values) ** 0.5, 3)
        return out


def unmeasured_frames(physics, start: int, end: int) -> int:
    """How many signal frames of [start, end) no measured frame depends on (their values cannot be checked
    against the input: they come from the prior alone)."""
    split = physics.linear_surrogate().split_time()
    band = split[0] if split is not None else None
    if band is None:
        return 0
    touched = torch.unique(band.index[band.weight != 0])
    return (end - start) - int(((touched >= start) & (touched < end)).sum())
