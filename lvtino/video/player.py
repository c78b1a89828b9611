"""What a video player shows of a low-resolution, low-rate video at the output's size and rate: each measured
frame bicubic-upscaled (torch's bicubic, as players and ffmpeg's default scaler do) and held until the next.

The one comparison baseline of the demo, the report, the fit line, ``evaluate --degraded`` and the benchmarks.
Not measurement-consistent, and not a restoration.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor


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
