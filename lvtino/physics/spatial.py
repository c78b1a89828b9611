"""Spatial downsampling of every frame, one matrix per axis (the 2-D filters are separable).

- ``Downsampling``: low-pass filter, then keep one pixel in ``factor``; matches
  deepinv's ``Downsampling(filter=..., factor=..., padding=...)`` sample for sample
  (the same filters, alignment of even-length filters and padding): the paper's
  problems.
- ``Resize``: what ffmpeg, PIL, OpenCV and torch do when they shrink a video or
  image (centre-aligned grid, antialiasing kernel, the tool's edge rule): the
  operator for footage shrunk by ordinary tools.
"""

from __future__ import annotations

import torch

from lvtino.physics.resample import RESAMPLERS, resample_matrix
from lvtino.physics.separable import SeparableLinear, conv_matrix

FILTERS = ("bicubic", "bilinear", "box", "gaussian")


def downsampling_filter(factor: int, name: str) -> torch.Tensor:
    """The normalised 1-D anti-aliasing filter whose outer product is deepinv's 2-D one.

    - bicubic: Keys' cubic (a = -0.5) stretched by ``factor``, 4 x factor taps;
    - bilinear: the triangle stretched by ``factor``, 2 x factor taps;
    - box: the mean of ``factor`` pixels;
    - gaussian: std ``factor`` pixels, 2 * int(factor / 0.3 + 1) + 1 taps.
    """
    f = float(factor)
    if name == "bicubic":
        x = (torch.arange(-2 * f + 0.5, 2 * f, 1.0, dtype=torch.float64) / f).abs()
        a = -0.5
        w = ((a + 2) * x**3 - (a + 3) * x**2 + 1) * (x <= 1)
        w = w + (a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a) * (x > 1) * (x < 2)
    elif name == "bilinear":
        x = torch.arange(-f + 0.5, f, 1.0, dtype=torch.float64) / f
        w = 1 - x.abs()
    elif name == "box":
        w = torch.ones(factor, dtype=torch.float64)
    elif name == "gaussian":
        c = int(f / 0.3 + 1)
        x = torch.linspace(-c, c, 2 * c + 1, dtype=torch.float64)
        w = torch.exp(-(x**2) / (2 * f**2))
    else:
        raise ValueError(f"filter={name!r} is not one of {FILTERS}")
    return w / w.sum()


class Downsampling(SeparableLinear):
    r"""y = S (h * x) per frame: filter with h, keep rows and columns 0, f, 2f, ...

    (H, W) -> (ceil(H / f), ceil(W / f)). ``padding`` extends the frame before
    filtering (reflect, replicate, circular or zeros).
    """

    def __init__(self, size: tuple[int, int], factor: int, filter: str = "bicubic", padding: str = "reflect"):
        if factor < 1:
            raise ValueError(f"factor={factor} must be a positive integer")
        self.size, self.factor, self.filter, self.padding = tuple(size), factor, filter, padding
        h = downsampling_filter(factor, filter)
        L = h.numel()
        pad_left = L // 2 - (L - 1) % 2  # deepinv's centre for even-length filters
        mh, mw = (conv_matrix(n, h, stride=factor, pad_left=pad_left, mode=padding) for n in self.size)
        super().__init__(None, mh, mw, factors=(1, factor, factor))

    def __repr__(self) -> str:
        return f"Downsampling(size={self.size}, factor={self.factor}, filter={self.filter!r}, padding={self.padding!r})"


class Resize(SeparableLinear):
    r"""y = frames shrunk by ``factor`` as a real tool does it (``physics.resample``): centre-aligned grid,
    antialiasing kernel stretched by the factor, the tool's edge rule.

    (H, W) -> (H // f, W // f), the size ``ffmpeg -vf scale=iw/f:ih/f`` gives;
    ``resampler`` names the tool (``RESAMPLERS``: ffmpeg's default bicubic, PIL,
    torch, OpenCV's area, ...).
    """

    def __init__(self, size: tuple[int, int], factor: int, resampler: str = "ffmpeg"):
        if factor < 1:
            raise ValueError(f"factor={factor} must be a positive integer")
        if resampler not in RESAMPLERS:
            raise ValueError(f"resampler={resampler!r} is not one of {', '.join(RESAMPLERS)}")
        self.size, self.factor, self.resampler = tuple(size), factor, resampler
        if min(self.size) < factor:
            raise ValueError(f"a frame of {self.size[1]}x{self.size[0]} cannot shrink by {factor}")
        mh, mw = (resample_matrix(n, n // factor, resampler) for n in self.size)
        super().__init__(None, mh, mw, factors=(1, factor, factor))

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, factor={self.factor}, resampler={self.resampler!r})"
