"""Metrics against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lvtino.metrics.fidelity import psnr, ssim


def test_psnr_of_a_known_error():
    ref = torch.full((2, 3, 16, 16), 0.5, dtype=torch.float64)
    x = ref + 0.01  # MSE 1e-4 -> 40 dB
    assert torch.allclose(psnr(x, ref), torch.full((2,), 40.0, dtype=torch.float64))
    assert math.isinf(psnr(ref, ref)[0].item())


def test_ssim_equals_scikit_image():
    skimage = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    for _ in range(3):
        ref = rng.random((40, 52, 3))
        x = np.clip(ref + rng.normal(0, 0.1, ref.shape), 0, 1)
        expected = skimage.structural_similarity(x, ref, channel_axis=2, data_range=1.0, gaussian_weights=True,
                                                 sigma=1.5, use_sample_covariance=False)
        ours = ssim(torch.from_numpy(x).permute(2, 0, 1)[None], torch.from_numpy(ref).permute(2, 0, 1)[None])
        assert abs(ours.item() - expected) < 1e-6
    same = torch.rand(1, 3, 20, 20)
    assert torch.allclose(ssim(same, same), torch.ones(1, dtype=torch.float64))
