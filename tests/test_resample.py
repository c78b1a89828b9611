"""Resamplers against the tools they imitate, on random images at factors 2, 3, 4, 8 and odd sizes."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from lvtino.physics.problems import build_physics
from lvtino.physics.resample import RESAMPLERS, resample_matrix
from lvtino.physics.temporal import TemporalSample

CASES = [((16 * f + odd * 3, 24 * f + odd * 5), f) for f in (2, 3, 4, 8) for odd in (0, 1)]


def images(shape, seed: int = 0):
    """A random image, and a natural-like one (random but smooth: no tool clips an intermediate pass)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, shape, dtype=np.uint8)
    t = torch.from_numpy(rng.random((1, 1, shape[0] // 4 + 2, shape[1] // 4 + 2)))
    smooth = torch.nn.functional.interpolate(t, size=shape, mode="bilinear", align_corners=False)[0, 0]
    return {"random": noise, "smooth": (smooth.numpy() * 200 + 28).round().astype(np.uint8)}


def ours(img: np.ndarray, out, name: str) -> np.ndarray:
    mh, mw = resample_matrix(img.shape[0], out[0], name), resample_matrix(img.shape[1], out[1], name)
    return np.clip(np.round((mh @ torch.from_numpy(img).double() @ mw.T).numpy()), 0, 255)


def check(got: np.ndarray, expected: np.ndarray, max_diff: int = 1, exact: float = 0.7) -> None:
    d = np.abs(got - expected.astype(float))
    assert d.max() <= max_diff and (d == 0).mean() >= exact, (d.max(), (d == 0).mean())


@pytest.mark.parametrize("shape,f", CASES)
def test_pil(shape, f):
    """PIL works in two 8-bit passes (rounding, and clipping the negative lobes of bicubic and Lanczos in
    between): within one level on natural images, a few on random noise."""
    out = (shape[0] // f, shape[1] // f)
    for kind, img in images(shape).items():
        for name, flt in (("pil-bicubic", Image.BICUBIC), ("pil-bilinear", Image.BILINEAR),
                          ("pil-lanczos", Image.LANCZOS)):
            tool = np.asarray(Image.fromarray(img).resize(out[::-1], flt))
            check(ours(img, out, name), tool, 1 if kind == "smooth" or name == "pil-bilinear" else 8, 0.4)
        if shape[0] % f == 0 and shape[1] % f == 0:  # PIL's box weighs whole pixels: exact ratios only
            check(ours(img, out, "pil-box"), np.asarray(Image.fromarray(img).resize(out[::-1], Image.BOX)), 1, 0.4)


@pytest.mark.parametrize("shape,f", CASES)
def test_torch_antialiased_interpolate(shape, f):
    out = (shape[0] // f, shape[1] // f)
    for img in images(shape).values():
        x = torch.from_numpy(img).double()[None, None]
        for name, mode in (("torch-bicubic", "bicubic"), ("torch-bilinear", "bilinear")):
            tool = torch.nn.functional.interpolate(x, size=out, mode=mode, antialias=True, align_corners=False)
            mh, mw = resample_matrix(shape[0], out[0], name), resample_matrix(shape[1], out[1], name)
            assert torch.allclose(mh @ x[0, 0] @ mw.T, tool[0, 0], atol=1e-9)


@pytest.mark.parametrize("shape,f", CASES)
def test_ffmpegs_scaler(shape, f):
    """swscale (PyAV's reformat) on a plane, as it scales each plane of a video: its fixed-point filters land
    within one level (Lanczos at 8x within two)."""
    out = (shape[0] // f, shape[1] // f)
    for img in images(shape).values():
        frame = av.VideoFrame.from_ndarray(img, format="gray")
        for name, interp in (("ffmpeg", "BICUBIC"), ("ffmpeg-bilinear", "BILINEAR"), ("ffmpeg-lanczos", "LANCZOS"),
                             ("ffmpeg-area", "AREA")):
            tool = frame.reformat(width=out[1], height=out[0], format="gray", interpolation=interp).to_ndarray()
            check(ours(img, out, name), tool, 2 if (name == "ffmpeg-lanczos" and f == 8) else 1, 0.6)


@pytest.mark.parametrize("shape,f", CASES)
def test_opencv_area(shape, f):
    cv2 = pytest.importorskip("cv2")
    out = (shape[0] // f, shape[1] // f)
    for img in images(shape).values():
        check(ours(img, out, "opencv-area"), cv2.resize(img, out[::-1], interpolation=cv2.INTER_AREA), 1, 0.8)


@pytest.mark.parametrize("name", sorted(RESAMPLERS))
def test_rows_are_weights_on_a_centred_grid(name):
    """Each output sample averages (weights sum to 1) input samples centred on its own centre."""
    m = resample_matrix(64, 16, name)
    assert torch.allclose(m.sum(1), torch.ones(16, dtype=torch.float64))
    centre = (m * torch.arange(64, dtype=torch.float64)).sum(1)  # away from the edges, where taps are cut
    assert torch.allclose(centre[3:-3], torch.arange(3, 13, dtype=torch.float64) * 4 + 1.5, atol=1e-9)


def test_decimation_keeps_one_frame_in_k_with_its_phase():
    x = torch.arange(10, dtype=torch.float64).view(1, 1, 10, 1, 1)
    assert TemporalSample(10, 4).A(x).flatten().tolist() == [0, 4, 8]
    assert TemporalSample(10, 4, phase=2).A(x).flatten().tolist() == [2, 6, 9]  # past the end: the last frame
    assert TemporalSample(10, 4, exposure=1).A(x).flatten().tolist() == [1.5, 5.5, 8.75]  # averaging, tail repeated
    assert TemporalSample(10, 4, exposure=0.5).A(x).flatten().tolist() == [0.5, 4.5, 8.5]  # a 180-degree shutter
    with pytest.raises(ValueError, match="phase=4"):
        TemporalSample(10, 4, phase=4)


def test_resize_and_sample_compose_with_exact_adjoints():
    physics = build_physics([{"temporal_sample": {"factor": 3, "exposure": 0.5, "phase": 1}},
                             {"resize": {"factor": 4, "resampler": "pil-lanczos"}}], (11, 36, 52))
    x = torch.randn(1, 3, 11, 36, 52, dtype=torch.float64)
    y = torch.randn(1, 3, *physics.output_shape((11, 36, 52)), dtype=torch.float64)
    assert physics.output_shape((11, 36, 52)) == (4, 9, 13)
    assert abs((physics.A(x) * y).sum() - (x * physics.A_adjoint(y)).sum()) < 1e-9 * x.norm() * y.norm()
