"""Fidelity of a restored clip to its reference: PSNR and SSIM per frame, RGB in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(x: Tensor, ref: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR in dB of each frame of (T, C, H, W) images; inf for identical frames."""
    mse = (x.double() - ref.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def _gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> Tensor:
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def ssim(x: Tensor, ref: Tensor, data_range: float = 1.0) -> Tensor:
    """SSIM of each frame of (T, C, H, W) images, averaged over channels.

    The definition of Wang et al. (2004) as scikit-image computes it with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``: Gaussian
    local statistics, K1 = 0.01, K2 = 0.03, and the mean taken over the pixels
    whose 11 x 11 window lies inside the frame.
    """
    g = _gaussian_window()
    k = g.numel()
    if min(x.shape[-2:]) < k:
        raise ValueError(f"SSIM needs frames of at least {k}x{k} pixels, got {tuple(x.shape[-2:])}")
    T, C, H, W = x.shape
    x = x.double().reshape(T * C, 1, H, W)
    ref = ref.double().reshape(T * C, 1, H, W)

    def blur(v: Tensor) -> Tensor:
        v = F.conv2d(v, g.view(1, 1, k, 1))
        return F.conv2d(v, g.view(1, 1, 1, k))

    mu_x, mu_y = blur(x), blur(ref)
    sxx = blur(x * x) - mu_x**2
    syy = blur(ref * ref) - mu_y**2
    sxy = blur(x * ref) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1).reshape(T, C).mean(1)


def luma(x: Tensor) -> Tensor:
    """The Y channel (BT.601, studio range, as MATLAB's rgb2ycbcr) of RGB (N, 3, H, W) in [0, 1], in [0, 1].

    Video restoration papers report PSNR and SSIM on this channel.
    """
    weights = x.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return ((x * weights).sum(dim=1, keepdim=True) + 16.0) / 255.0
