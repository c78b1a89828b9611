"""``restore --guide``: another tool's restoration made consistent with the input, without a pulse."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import smooth_frames, write_video
from lvtino.cli import main
from lvtino.physics.problems import build_physics
from lvtino.pipeline.words import Words
from lvtino.solvers.guide import guided_restore, temporal_sqrt_inverse
from lvtino.video.reader import probe, read_frames

SMALL = (16, 12, Fraction(15, 2))


def _clip(frames: int = 13, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    texture = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 20, generator=g, dtype=torch.float64),
                                              size=(48, 80), mode="bicubic", align_corners=False) * 2 - 1
    return torch.stack([torch.roll(texture, shifts=t, dims=3) for t in range(frames)], dim=2)[..., 8:40, 8:72]


def _operator(frames: int):
    return build_physics(Words(scale=4, fps_factor=4).chain(SMALL), (frames, 32, 64))


def test_the_square_root_is_the_inverse_root_of_the_temporal_norm():
    root = temporal_sqrt_inverse(9, 5.0)
    d = torch.diff(torch.eye(9, dtype=torch.float64), dim=0)
    m = torch.eye(9, dtype=torch.float64) / 25 + d.T @ d
    assert torch.allclose(root @ m @ root, torch.eye(9, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(root, root.T)


def test_the_guided_restoration_fits_the_input_and_keeps_a_faithful_guide():
    x = _clip()
    op = _operator(13)
    y = op.A(x)
    assert torch.allclose(guided_restore(op, y, x, 12.0, 0.0), x, atol=1e-9)  # nothing to correct
    guide = x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    u = guided_restore(op, y, guide, 12.0, 0.0)
    assert (op.A(u) - y).norm() / y.norm() < 1e-8


def test_the_correction_reaches_the_frames_between_measurements():
    """A guide that is off by a smooth, slowly changing error (a colour cast) is corrected on every frame, not only
    on the measured ones (a pulse every 4th frame): the dropped frames gain as the measured ones do."""
    x = _clip()
    op = _operator(13)
    y = op.A(x)
    cast = torch.linspace(0.1, 0.2, 13, dtype=torch.float64).view(1, 1, 13, 1, 1) * torch.tensor(
        [1.0, -0.5, 0.3], dtype=torch.float64).view(1, 3, 1, 1, 1)
    guide = x + cast
    kept = [t for t in range(13) if op.time.dense()[:, t].abs().sum() > 0]
    dropped = [t for t in range(13) if t not in kept]
    err = lambda u, ts: float((u - x)[:, :, ts].pow(2).mean().sqrt())  # noqa: E731
    spread = guided_restore(op, y, guide, 12.0, 0.0)
    pulse = guided_restore(op, y, guide, 1.0, 0.0)
    assert err(spread, dropped) < 0.25 * err(guide, dropped)
    assert err(pulse, dropped) > 3 * err(spread, dropped)  # confined to the measured frames: dropped ones keep it
    assert err(spread, kept) < 0.1 * err(guide, kept)


@pytest.fixture(scope="module")
def low(tmp_path_factory):
    folder = tmp_path_factory.mktemp("guide")
    clean = write_video(folder / "clean.mkv", smooth_frames(16, 32, 48), fps=Fraction(24), codec="ffv1",
                        audio_seconds=0.7)
    y = folder / "low.mkv"
    assert main(["degrade", str(clean), "-o", str(y), "--scale", "2", "--fps-factor", "4"]) == 0
    return folder, clean, y


def _guide(path, frames: int, size=(32, 48), fps=Fraction(24)):
    return write_video(path, smooth_frames(frames, *size, seed=3), fps=fps, codec="ffv1")


def test_restore_with_a_guide(low, tmp_path, capsys):
    folder, clean, y = low
    guide = _guide(tmp_path / "g.mkv", 16)
    out, stats = tmp_path / "x.mkv", tmp_path / "s.json"
    assert main(["restore", str(y), "-o", str(out), "--guide", str(guide), "--stats", str(stats)]) == 0
    said, warned = capsys.readouterr()
    assert "prior guide" in said and "the guide:" in said
    assert "warning: the guide fits the input far worse than a player's upscale" in warned  # another clip's
    assert main(["restore", str(y), "-o", str(tmp_path / "faithful.mkv"), "--guide", str(clean)]) == 0
    assert "warning" not in capsys.readouterr().err  # the clean frames themselves: no warning
    info = probe(out)
    assert (info.frames, info.width, info.height, info.fps, info.has_audio) == (16, 48, 32, Fraction(24), True)
    facts = json.loads(stats.read_text())
    fit = facts["fit"]["rms_grey"]
    assert facts["prior"] == "guide" and fit["restored"] < 0.25 * fit["guide"]
    assert main(["evaluate", str(out), "--reference", str(clean), "--guide", str(guide), "--degraded", str(y),
                 "--report", str(tmp_path / "report")]) == 0
    said = capsys.readouterr().out
    assert "the guide: PSNR" in said and "restoring it gained" in said
    page = (tmp_path / "report" / "index.html").read_text()
    assert 'id="guide"' in page and "g.mkv" in page and "gain over the guide" in page


@pytest.mark.parametrize("count", [13, 10])
def test_an_interpolators_guide_is_placed_at_the_first_input_frame(low, tmp_path, capsys, count):
    """An interpolator's guide starts at the first frame the input holds (here output frame 1: the frame rule's
    first kept) and stops at the last (13 frames) or, as ffmpeg's minterpolate, an interval before (10): placed
    there, the clean frames themselves restore to themselves; the frames before and after hold its ends."""
    _, clean, y = low
    frames = np.stack(list(read_frames(probe(clean))))
    guide = write_video(tmp_path / "g.mkv", frames[1:1 + count], fps=Fraction(24), codec="ffv1")
    out = tmp_path / "x.mkv"
    assert main(["restore", str(y), "-o", str(out), "--guide", str(guide)]) == 0
    err = capsys.readouterr().err
    assert f"{count} frames, an interpolator's: its first frame is taken as output frame 1" in err
    assert f"its last frame is held for the last {15 - count}" in err and "warning" not in err
    restored = np.stack(list(read_frames(probe(out)))).astype(float)
    inside = slice(1, 1 + count)
    assert np.abs(restored[inside] - frames[inside]).mean() < 1.0  # in place: the frames themselves
    off = np.abs(frames[2:2 + count].astype(float) - frames[1:1 + count]).mean()
    assert off > 3.0  # a frame off would have shown (the clip moves)


@pytest.mark.parametrize("make,said", [
    (lambda p: _guide(p, 16, size=(64, 96)), "its frames are 96x64, the output's 48x32"),
    (lambda p: _guide(p, 16, fps=Fraction(30)), "30 fps, the output 24 fps"),
    (lambda p: _guide(p, 8), "8 frames, the output 16; give a guide of the output's frames, or an interpolator's "
                             "from the first input frame (output frame 1)"),
    (lambda p: _guide(p, 17), "17 frames, the output 16"),
])
def test_a_guide_that_does_not_match_is_one_line(low, tmp_path, capsys, make, said):
    _, _, y = low
    guide = make(tmp_path / "g.mkv")
    assert main(["restore", str(y), "-o", str(tmp_path / "x.mkv"), "--guide", str(guide)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0] and "--guide" in err[0], err
    assert not (tmp_path / "x.mkv").exists()


def test_a_guide_and_a_prior_or_the_guide_as_output(low, tmp_path, capsys):
    _, _, y = low
    guide = _guide(tmp_path / "g.mkv", 16)
    assert main(["restore", str(y), "-o", str(tmp_path / "x.mkv"), "--guide", str(guide), "--prior", "tv"]) == 2
    assert "give one" in capsys.readouterr().err
    before = guide.read_bytes()
    assert main(["restore", str(y), "-o", str(guide), "--guide", str(guide), "-y"]) == 2
    assert "would overwrite --guide" in capsys.readouterr().err and guide.read_bytes() == before


def test_resume_with_another_guide_is_refused(low, tmp_path, capsys):
    _, _, y = low
    guide = _guide(tmp_path / "g.mkv", 16)
    state = tmp_path / ".x.mkv.lvtino-state"
    assert main(["restore", str(y), "-o", str(tmp_path / "x.mkv"), "--guide", str(guide), "--keep-state",
                 "--window", "8", "--overlap", "4"]) == 0
    write_video(guide, smooth_frames(16, 32, 48, seed=9), fps=Fraction(24), codec="ffv1")  # another guide
    (tmp_path / "x.mkv").unlink()
    assert state.is_dir()
    code = main(["restore", str(y), "-o", str(tmp_path / "x.mkv"), "--guide", str(guide), "--resume",
                 "--window", "8", "--overlap", "4"])
    assert code == 2 and "guide differ" in capsys.readouterr().err
