"""JPEG compression of every frame: a non-linear operator with no adjoint."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from lvtino.physics.base import FrameByFrame, LinearPhysics, Physics, _randn_like
from lvtino.physics.separable import Identity


class JPEG(FrameByFrame, Physics):
    r"""y = JPEG_q(x + n): Gaussian noise, then per-frame baseline JPEG at ``quality``.

    Frames are rounded to 8 bits and encoded as 4:2:0 YCbCr JPEG (the encoder of
    Pillow), then decoded. Noise enters before the compression, so ``measure``
    adds it to the signal, not to the output. Solvers that need a linear operator
    take the identity in its place (the "adjoint taken as identity" of the
    method's JPEG data step).
    """

    def __init__(self, quality: int = 10):
        if not 1 <= quality <= 95:
            raise ValueError(f"quality={quality} must be between 1 and 95")
        self.quality = quality

    def A(self, x: Tensor) -> Tensor:
        B, C, T, H, W = x.shape
        if C != 3:
            raise ValueError(f"JPEG expects RGB frames (C=3), got C={C}")
        frames = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        frames = frames.permute(0, 2, 3, 4, 1).reshape(B * T, H, W, C).cpu().numpy()
        out = np.empty_like(frames)
        for i, frame in enumerate(frames):
            buf = io.BytesIO()
            Image.fromarray(frame).save(buf, format="JPEG", quality=self.quality)
            out[i] = np.asarray(Image.open(buf).convert("RGB"))
        y = torch.from_numpy(out).reshape(B, T, H, W, C).permute(0, 4, 1, 2, 3)
        return (y.to(device=x.device, dtype=x.dtype) / 127.5 - 1).contiguous()

    def measure(self, x: Tensor, noise_std: float, generator: torch.Generator | None = None,
                noise: Tensor | None = None) -> Tensor:
        if noise_std > 0:
            x = x + (2.0 * noise_std) * (_randn_like(x, generator) if noise is None else noise.to(x))
        return self.A(x)

    def linear_surrogate(self) -> LinearPhysics:
        return Identity()

    def __repr__(self) -> str:
        return f"JPEG(quality={self.quality})"
