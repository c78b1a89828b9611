"""Metrics against independent computations."""

from __future__ import annotations

import json
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


def test_a_restored_range_is_scored_against_its_own_reference_frames(tmp_path, capsys):
    """restore --start 30 --end 50 against the whole clean clip: refused without --reference-start (it compared
    the reference's first frames: 15 dB, no warning); with it (a frame or a time), the right frames."""
    from conftest import smooth_frames, write_video
    from lvtino.cli import main

    clean = write_video(tmp_path / "clean.mkv", smooth_frames(60, 32, 48, seed=3), codec="ffv1")
    part = tmp_path / "part.mkv"
    assert main(["restore", str(clean), "-o", str(part), "--scale", "2", "--prior", "pinv", "--start", "30",
                 "--end", "50"]) == 0
    big = tmp_path / "big.mkv"
    assert main(["restore", str(clean), "-o", str(big), "--scale", "2", "--prior", "pinv"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(part), "--reference", str(big)]) == 2
    err = capsys.readouterr().err
    assert f"{big} has 60 frames and {part} 20: give --reference-start" in err
    for start in ("30", "1.0", "0:01"):  # frame 30 = 1 s at 30 fps
        assert main(["evaluate", str(part), "--reference", str(big), "--reference-start", start,
                     "--json", str(tmp_path / "r.json"), "-y"]) == 0, capsys.readouterr().err
        r = json.loads((tmp_path / "r.json").read_text())
        assert r["reference_start"] == 30 and r["frames"] == 20
        assert r["psnr"] is None or r["psnr"] > 45, r["psnr"]  # the same frames (None: identical, infinite PSNR)
    assert main(["evaluate", str(part), "--reference", str(big), "--reference-start", "0", "--json",
                 str(tmp_path / "wrong.json")]) == 0
    wrong = json.loads((tmp_path / "wrong.json").read_text())["psnr"]
    assert wrong < 30, wrong  # the wrong frames, as asked
    assert main(["evaluate", str(part), "--reference", str(big), "--reference-start", "45"]) == 2
    assert "frame count differs" in capsys.readouterr().err
