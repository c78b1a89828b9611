"""End to end on 41 real frames (Adobe240 street, 640x360): measurement agrees with an
independent operator, and the TV restoration beats naive upsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lvtino.cli import main
from lvtino.metrics.fidelity import psnr
from lvtino.video.reader import probe, read_frames

deepinv = pytest.importorskip("deepinv")


def _frames(path) -> torch.Tensor:
    """(T, 3, H, W) float64 in [0, 1]."""
    return torch.from_numpy(np.stack(list(read_frames(probe(path))))).permute(0, 3, 1, 2).double() / 255


def _independent_measurement(x: torch.Tensor, problem: str, frames: int) -> torch.Tensor:
    """The first ``frames`` measured frames of the problem's operator, written with deepinv and plain
    torch, x (T, 3, H, W) in [0, 1] (deepinv's direct 2-D convolution is slow: a few frames suffice)."""
    T = x.shape[0]
    if problem == "A":
        pad = (-T) % 4
        x = torch.cat([x, x[-1:].repeat(pad, 1, 1, 1)]).reshape(-1, 4, *x.shape[1:]).mean(1)
        factor = 4
    else:  # B: uniform blur over 7 frames, circular in time, by FFT
        kernel = torch.zeros(T, dtype=x.dtype)
        kernel[:4], kernel[-3:] = 1 / 7, 1 / 7
        x = torch.fft.ifft(torch.fft.fft(x, dim=0) * torch.fft.fft(kernel).view(-1, 1, 1, 1), dim=0).real
        factor = 8
    down = deepinv.physics.Downsampling(img_size=tuple(x.shape[1:]), filter="bicubic", factor=factor,
                                        padding="reflect")
    down.filter = down.filter.double()
    return down.A(x[:frames])


def _naive(y: torch.Tensor, kt: int, ks: int, T: int) -> torch.Tensor:
    up = F.interpolate(y, scale_factor=ks, mode="bicubic", align_corners=False).clamp(0, 1)
    return up.repeat_interleave(kt, dim=0)[:T]


@pytest.mark.slow
@pytest.mark.parametrize("problem,kt,ks", [("A", 4, 4), ("B", 1, 8)])
def test_real_clip_degrade_and_restore(real_frames, tmp_path, problem, kt, ks):
    y_path, x_path = tmp_path / "y.mkv", tmp_path / "x.mp4"
    assert main(["degrade", str(real_frames), "-o", str(y_path), "--problem", problem, "--noise-std", "0"]) == 0
    clean = _frames(real_frames)
    y = _frames(y_path)
    assert y.shape[0] == -(-41 // kt)
    # two measured frames: deepinv's direct convolution takes ~2.3 s a frame for B's 8x filter
    expected = (_independent_measurement(clean, problem, 2).clamp(0, 1) * 255).round() / 255
    assert y[:2].shape == expected.shape
    assert (y[:2] - expected).abs().max() <= 1 / 255 + 1e-9  # agree to 8-bit rounding

    # the paper's noise level, then the TV restoration
    assert main(["degrade", str(real_frames), "-o", str(y_path), "--problem", problem, "-y"]) == 0
    whole = ["--window", "41"] if problem == "B" else []  # B's circular blur is restored in one window
    assert main(["restore", str(y_path), "-o", str(x_path), "--prior", "tv", "--crf", "0", *whole]) == 0
    info = probe(x_path)
    assert (info.frames, info.width, info.height, info.fps) == (41, 640, 360, 30)
    restored = _frames(x_path)
    naive = _naive(_frames(y_path), kt, ks, 41)
    gain = psnr(restored, clean).mean() - psnr(naive, clean).mean()
    assert gain >= 1.0, f"TV gains only {gain:.2f} dB over naive upsampling on problem {problem}"
