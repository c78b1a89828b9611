"""Quality metrics against independent computations, the HTML report, and the benchmark table."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import smooth_frames, write_video
from lvtino.cli import main
from lvtino.metrics.evaluate import evaluate
from lvtino.metrics.fidelity import luma
from lvtino.metrics.perceptual import LPIPS
from lvtino.metrics.temporal import TemporalMeter
from lvtino.report.html import SECTIONS


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def texture(h=120, w=420, seed=0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    g = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 2.5)
    return ((g - g.min()) / (g.max() - g.min()) * 255).astype(np.uint8)


def meter_of(outputs, references) -> dict:
    m = TemporalMeter()
    for o, r in zip(outputs, references):
        m.add(o, r)
    return m.summary()


def test_warping_error_is_zero_for_an_exact_global_translation():
    g = texture()
    frames = [np.ascontiguousarray(g[20:100, 3 * t:3 * t + 160]) for t in range(8)]
    s = meter_of(frames, frames)
    assert s["warping_error"] < 1e-6 and s["tof"] == 0 and s["flicker"] < 1e-6
    shaky = [np.clip(f.astype(int) + (12 if t % 2 else 0), 0, 255).astype(np.uint8) for t, f in enumerate(frames)]
    assert meter_of(shaky, frames)["warping_error"] > 1e-3


def test_flicker_is_zero_for_a_static_clip_and_positive_for_an_alternating_one():
    still = [texture(64, 96)] * 6
    assert meter_of(still, still) == {"warping_error": 0.0, "flicker": 0.0, "tof": 0.0}
    alternating = [np.clip(f.astype(int) + (30 if t % 2 else -30), 0, 255).astype(np.uint8)
                   for t, f in enumerate(still)]
    assert meter_of(alternating, still)["flicker"] > 0.05


def test_y_channel_is_bt601_studio_luma_as_scikit_image():
    color = pytest.importorskip("skimage.color")
    rgb = np.random.default_rng(1).random((20, 30, 3))
    ours = luma(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0, 0].numpy() * 255
    assert np.allclose(ours, color.rgb2ycbcr(rgb)[..., 0], atol=1e-9)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """An unseen reference and a noisy, shifted-colour 'restoration' of it, 12 frames of 48x64."""
    folder = tmp_path_factory.mktemp("pair")
    ref = smooth_frames(12, 48, 64, seed=3)
    rng = np.random.default_rng(4)
    restored = np.clip(ref.astype(int) + rng.normal(0, 6, ref.shape).round().astype(int) + 3, 0, 255).astype(np.uint8)
    return (write_video(folder / "ref.mkv", ref, codec="ffv1"), write_video(folder / "x.mkv", restored, codec="ffv1"),
            ref, restored)


def test_evaluate_matches_an_independent_computation(pair):
    metrics = pytest.importorskip("skimage.metrics")
    ref_path, x_path, ref, x = pair
    r = evaluate(x_path, ref_path)
    p = np.mean([metrics.peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(ref, x)])
    s = np.mean([metrics.structural_similarity(a / 255.0, b / 255.0, channel_axis=2, data_range=1.0,
                                               gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                 for a, b in zip(x, ref)])
    assert abs(r["psnr"] - p) < 0.01 and abs(r["ssim"] - s) < 1e-3
    assert len(r["per_frame"]) == 12 and r["per_frame"][0]["warping_error"] is not None
    assert "warping_error" not in r["per_frame"][-1]  # the last frame has no step after it
    assert r["not_computed"].keys() == {"fvmd", "fvd"}


def test_mismatched_inputs_are_one_line_and_resize_compares(pair, tmp_path, capsys):
    ref_path, _, ref, _ = pair
    small = write_video(tmp_path / "small.mkv", smooth_frames(12, 24, 32, seed=3), codec="ffv1")
    code, _, err = run(["evaluate", small, "--reference", ref_path], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "32x24" in err and "64x48" in err and "--resize" in err
    short = write_video(tmp_path / "short.mkv", ref[:10], codec="ffv1")
    code, _, err = run(["evaluate", short, "--reference", ref_path], capsys)
    assert code == 2 and "has 10" in err and "has 12" in err
    code, out, err = run(["evaluate", small, "--reference", ref_path, "--resize", "--json", tmp_path / "e.json"],
                         capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "e.json").read_text())["frames"] == 12 and "resized" in err


def test_lpips_without_weights_is_null_with_the_reason(pair, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch"))
    ref_path, x_path, _, _ = pair
    r = evaluate(x_path, ref_path, temporal=False)
    assert r["lpips"] is None and "not in the torch cache" in r["lpips_note"]


def test_lpips_runs_when_weights_are_cached(tmp_path, monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    pytest.importorskip("lpips")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)  # random VGG weights stand for ImageNet's: the code path, not the values
    torch.save(torchvision.models.vgg16().state_dict(), tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth")
    metric = LPIPS()
    assert metric.unavailable is None
    x = torch.rand(2, 3, 64, 64)
    assert torch.allclose(metric(x, x), torch.zeros(2), atol=1e-6)
    assert (metric(x, torch.rand(2, 3, 64, 64)) > 0).all()


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_has_every_section_and_every_image_it_references(pair, tmp_path, capsys):
    ref_path, x_path, ref, _ = pair
    degraded = write_video(tmp_path / "y.mkv", ref[::4, ::4, ::4], codec="ffv1")
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"problem": "A", "prior": "lvtino", "models": "tiny", "nfe": {"total": 9},
                                 "models_note": "tiny random models: meaningless for quality",
                                 "seconds_per_stage": {"prior": 1.0}, "config": {"name": "A"}}))
    code, out, err = run(["evaluate", x_path, "--reference", ref_path, "--degraded", degraded, "--report",
                          tmp_path / "report", "--stats", stats], capsys)
    assert code == 0, err
    page = (tmp_path / "report" / "index.html").read_text()
    for section in SECTIONS:
        assert f"id='{section}'" in page
    assert "Not a quality result" in page and "<svg" in page
    sources = re.findall(r"src='([^']+)'", page)
    assert len(sources) == 3 * 3 + 3  # crops of 3 frames x 3 videos, and 3 x-t slices
    for src in sources:
        assert not src.startswith(("http:", "https:", "/")) and (tmp_path / "report" / src).is_file(), src
    assert not re.search(r"(href|src)=['\"]https?:", page)  # nothing from elsewhere


def test_report_renders_in_headless_chromium(pair, tmp_path, capsys):
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium where apt is allowed)")
    ref_path, x_path, _, _ = pair
    run(["evaluate", x_path, "--reference", ref_path, "--report", tmp_path / "report"], capsys)
    page = (tmp_path / "report" / "index.html").resolve()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-images="(\d+)/(\d+)"', dom)
    assert loaded, "the page's load handler did not run"
    assert loaded.group(1) == loaded.group(2) == str(2 * 3 + 2)  # every image decoded
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1100,1600", page.as_uri()],
                   capture_output=True, timeout=120)
    from PIL import Image
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 10  # text, tables and pictures, not a blank page


def test_benchmark_table_agrees_with_separate_evaluations(tmp_path, capsys):
    clip = write_video(tmp_path / "clean.mkv", smooth_frames(16, 48, 64, seed=5), fps=Fraction(25), codec="ffv1")
    out = tmp_path / "bench"
    code, stdout, err = run(["benchmark", clip, "--problems", "A", "sr2", "--priors", "pinv", "tv", "-o", out],
                            capsys)
    assert code == 0, err
    with open(out / "benchmark.csv") as fh:
        import csv
        rows = [r for r in csv.DictReader(fh) if r["source"] == "this run"]
    assert {(r["method"], r["problem"]) for r in rows} == {(p, q) for p in ("pinv", "tv") for q in ("A", "sr2")}
    for r in rows:
        folder = next((out / "cells" / r["problem"]).iterdir())
        check = evaluate(folder / f"{r['method']}.mkv", next((out / "clips").iterdir()))
        assert abs(float(r["psnr"]) - check["psnr"]) < 1e-6 and abs(float(r["ssim"]) - check["ssim"]) < 1e-9
    assert "(paper)" in (out / "benchmark.md").read_text() and (out / "benchmark.html").is_file()
    code, stdout, err = run(["benchmark", clip, "--problems", "A", "sr2", "--priors", "pinv", "tv", "-o", out],
                            capsys)
    assert code == 0 and stdout.count("reused") == 4
