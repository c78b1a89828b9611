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


def _pil(img: np.ndarray, out, name: str) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize(out[::-1], getattr(Image.Resampling, name)))


def _torch(img: np.ndarray, out, mode: str) -> np.ndarray:
    x = torch.from_numpy(img).double()[None, None]
    return torch.nn.functional.interpolate(x, size=out, mode=mode, antialias=True, align_corners=False)[0, 0].numpy()


def _ffmpeg(img: np.ndarray, out, interpolation: str) -> np.ndarray:
    """swscale (PyAV's reformat) on a plane, as it scales each plane of a video."""
    frame = av.VideoFrame.from_ndarray(img, format="gray")
    return frame.reformat(width=out[1], height=out[0], format="gray", interpolation=interpolation).to_ndarray()


def _opencv(img: np.ndarray, out, flag: str) -> np.ndarray:
    import cv2

    return cv2.resize(img, out[::-1], interpolation=getattr(cv2, flag))


# each library's call, and how near its result lands: (max difference, share of exact samples) on the natural-like
# image and on random noise. PIL works in two 8-bit passes (rounding, and clipping the negative lobes of bicubic and
# Lanczos in between): within one level on natural images, a few on noise. swscale's fixed-point filters land
# within one level (Lanczos at 8x within two). torch is compared in floating point, before any rounding.
REFERENCES = {"pil": _pil, "torch": _torch, "ffmpeg": _ffmpeg, "opencv": _opencv}


def _tolerance(name: str, kind: str, f: int) -> tuple[float, float]:
    library, flt = RESAMPLERS[name].reference
    if library == "pil":
        return (1 if kind == "smooth" or flt == "BILINEAR" else 8), 0.4
    if library == "ffmpeg":
        return (2 if flt == "LANCZOS" and f == 8 else 1), 0.6
    return 1, 0.8


def test_every_resampler_names_a_tool_the_tests_can_run():
    """A resampler is a claim about a tool: one naming no library here (or a filter its library lacks) is
    refused, so a name like pil-mitchell (PIL has no such filter) cannot pass unchecked."""
    for name, r in RESAMPLERS.items():
        library, flt = r.reference
        assert library in REFERENCES, f"{name}: reference {r.reference} names no library the tests can run"
        module = {"pil": Image.Resampling, "ffmpeg": av.video.reformatter.Interpolation}.get(library)
        if module is not None:
            assert hasattr(module, flt), f"{name}: {library} has no filter {flt}"
        if library == "torch":
            assert flt in ("bilinear", "bicubic"), f"{name}: torch antialiases only bilinear and bicubic"


@pytest.mark.parametrize("name", sorted(RESAMPLERS))
@pytest.mark.parametrize("shape,f", CASES)
def test_a_resampler_gives_what_its_tool_gives(name, shape, f):
    library, flt = RESAMPLERS[name].reference
    if library == "opencv":
        pytest.importorskip("cv2", reason="OpenCV (opencv-python-headless, a test extra) is not installed")
    if name == "pil-box" and (shape[0] % f or shape[1] % f):
        pytest.skip("PIL's box weighs whole pixels: exact ratios only")
    out = (shape[0] // f, shape[1] // f)
    for kind, img in images(shape).items():
        tool = REFERENCES[library](img, out, flt)
        if library == "torch":
            mh, mw = resample_matrix(shape[0], out[0], name), resample_matrix(shape[1], out[1], name)
            assert np.allclose((mh @ torch.from_numpy(img).double() @ mw.T).numpy(), tool, atol=1e-9)
        else:
            check(ours(img, out, name), tool, *_tolerance(name, kind, f))


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
