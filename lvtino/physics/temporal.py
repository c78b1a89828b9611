"""Temporal degradations: frame averaging and dropping (low frame rate), and temporal blur."""

from __future__ import annotations

import torch

from lvtino.physics.band import Band
from lvtino.physics.separable import SeparableLinear

BOUNDARIES = ("circular", "replicate", "reflect")
KERNELS = ("uniform", "gaussian")


COUNTS = ("ceil", "round")


def sampled_frames(frames: int, factor: int, count: str = "ceil") -> int:
    """How many frames a rate divided by ``factor`` keeps of ``frames``: one for every group begun (``ceil``:
    ``select``, ``framestep``), or ``frames / factor`` rounded half up (``round``: ffmpeg's fps filter, whose last
    output slot must start before the input's end, rounded to the nearest slot)."""
    if count == "ceil":
        return -(-frames // factor)
    if count == "round":
        return max(1, (2 * frames + factor) // (2 * factor))
    raise ValueError(f"count={count!r} is not one of {COUNTS}")


class TemporalSample(SeparableLinear):
    r"""A lower frame rate as cameras and tools make it: every ``factor`` frames, one measured frame that
    averages ``max(1, round(exposure * factor))`` consecutive frames from ``phase`` on.

    ``exposure=0`` keeps one frame in ``factor`` (frames dropped, a short shutter);
    ``exposure=1`` averages them all (a long shutter, as ``temporal_pool``); values
    between are a partly open shutter (0.5: 180 degrees). ``phase`` is the first
    frame kept: 0 for ``select='not(mod(n,K))'``, ``ceil(K/2) - 1`` for ffmpeg's
    fps filter, which keeps the last frame of each output slot (frames 1, 5, 9, ...
    for 30 -> 7.5 fps). ``count`` says how many frames are measured (see
    ``sampled_frames``). Frames past the end repeat the last one.
    """

    def __init__(self, frames: int, factor: int, exposure: float = 0.0, phase: int = 0, count: str = "ceil"):
        if factor < 1:
            raise ValueError(f"factor={factor} must be a positive integer")
        if not 0 <= phase < factor:
            raise ValueError(f"phase={phase} must lie in [0, factor={factor})")
        if not 0 <= exposure <= 1:
            raise ValueError(f"exposure={exposure} must lie in [0, 1]")
        self.frames, self.factor, self.exposure, self.phase, self.count = frames, factor, exposure, phase, count
        taps = max(1, round(exposure * factor))
        kernel = torch.full((taps,), 1.0 / taps, dtype=torch.float64)
        mt = Band.conv(frames, kernel, stride=factor, pad_left=-phase, mode="replicate",
                       rows=sampled_frames(frames, factor, count))
        super().__init__(mt, None, None, factors=(factor, 1, 1))

    def __repr__(self) -> str:
        return (f"TemporalSample(frames={self.frames}, factor={self.factor}, exposure={self.exposure}, "
                f"phase={self.phase}, count={self.count!r})")


class TemporalAveragePool(TemporalSample):
    r"""Average every ``factor`` consecutive frames: T frames -> ceil(T / factor) (the paper's Problems A and C).

    ``TemporalSample`` with a fully open shutter (exposure 1). The clip is padded at
    its end by repeating the last frame up to a multiple of ``factor``; the adjoint
    repeats each measured frame ``factor`` times, divides by ``factor`` and folds the
    padded tail back onto the last real frame (the transposed matrix does all three).
    """

    def __init__(self, frames: int, factor: int):
        super().__init__(frames, factor, exposure=1.0)

    def __repr__(self) -> str:
        return f"TemporalAveragePool(frames={self.frames}, factor={self.factor})"


def temporal_kernel(size: int, kind: str = "uniform", sigma: float | None = None) -> torch.Tensor:
    """A normalised 1-D kernel of odd ``size``: uniform, or Gaussian of std ``sigma`` frames."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size={size} must be a positive odd number of frames")
    if kind == "uniform":
        return torch.full((size,), 1.0 / size, dtype=torch.float64)
    if kind == "gaussian":
        if sigma is None or sigma <= 0:
            raise ValueError(f"sigma={sigma} must be positive for a Gaussian kernel")
        t = torch.arange(size, dtype=torch.float64) - size // 2
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        return k / k.sum()
    raise ValueError(f"kernel={kind!r} is not one of {KERNELS}")


class TemporalBlur(SeparableLinear):
    r"""Convolve along time with a centred kernel; T frames in, T frames out.

    ``boundary="circular"`` is the paper's Problem B (the clip wraps around, as an
    FFT convolution does); ``"replicate"`` and ``"reflect"`` extend the clip at
    both ends instead. The adjoint of the circular blur is the circular blur with
    the flipped kernel.
    """

    def __init__(self, frames: int, size: int = 7, kernel: str = "uniform", sigma: float | None = None,
                 boundary: str = "circular"):
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary={boundary!r} is not one of {BOUNDARIES}")
        self.frames, self.size, self.kernel, self.boundary = frames, size, kernel, boundary
        k = temporal_kernel(size, kernel, sigma)
        mt = Band.conv(frames, k, stride=1, pad_left=size // 2, mode=boundary)
        super().__init__(mt, None, None, factors=(1, 1, 1))

    def __repr__(self) -> str:
        return f"TemporalBlur(frames={self.frames}, size={self.size}, kernel={self.kernel!r}, boundary={self.boundary!r})"
