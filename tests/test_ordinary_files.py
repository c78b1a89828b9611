"""Ordinary files must be accepted: a check that refuses a good file is as bad as one that lets a bad one through.

Each row makes a file the way cameras, phones and ffmpeg make them (sound a
little longer or shorter than the picture, Matroska/MP4/QuickTime, a variable
frame rate, odd sizes, a raw H.264 stream, numbered frames), then degrades and
restores it: every step exits 0, keeps every frame and the size, and keeps the
sound when there is sound.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import smooth_frames, write_video
from lvtino.cli import main
from lvtino.video.reader import probe, read_frames

FRAMES, HEIGHT, WIDTH = 40, 36, 64
FRAMES_30 = smooth_frames(FRAMES, HEIGHT, WIDTH)
AAC_LONGER = 1.344   # 1.333 s of picture at 30 fps; AAC frames are 1024 samples: the sound ends a little later
SHORTER = 1.2


def _vfr(path: Path, codec: str, audio: float | None) -> Path:
    """A variable-frame-rate clip: frames last 33, 67 or 100 ms (a phone's), timestamps in milliseconds; the sound
    ``audio`` seconds longer than the picture."""
    times = np.concatenate([[0], np.cumsum(np.random.default_rng(1).choice([33, 67, 100], FRAMES - 1))])
    return write_video(path, FRAMES_30, times_ms=times.tolist(), codec=codec, pix_fmt="yuv420p",
                       audio_seconds=(times[-1] / 1000 + 0.033 + audio) if audio else None)


def _raw_h264(path: Path) -> Path:
    """An elementary H.264 stream: no container, no timestamps, no seeking back."""
    return write_video(path, FRAMES_30, fps=Fraction(25), container_format="h264", pix_fmt="yuv420p")


def _frames(folder: Path, numbers, alpha: bool = False) -> Path:
    folder.mkdir()
    for n, f in zip(numbers, smooth_frames(len(numbers), HEIGHT, WIDTH)):
        if alpha:
            f = np.concatenate([f, np.full(f.shape[:2] + (1,), 200, np.uint8)], axis=-1)
        iio.imwrite(folder / f"frame_{n:04d}.png", f)
    return folder


MAKERS = {
    "mkv ffv1, sound longer": lambda d: write_video(d / "a.mkv", FRAMES_30, audio_seconds=AAC_LONGER, codec="ffv1"),
    "mkv ffv1, sound shorter": lambda d: write_video(d / "a.mkv", FRAMES_30, audio_seconds=SHORTER, codec="ffv1"),
    "mkv h264, sound longer": lambda d: write_video(d / "a.mkv", FRAMES_30, audio_seconds=AAC_LONGER),
    "mp4 h264, sound longer": lambda d: write_video(d / "a.mp4", FRAMES_30, audio_seconds=AAC_LONGER),
    "mp4 h264, sound shorter": lambda d: write_video(d / "a.mp4", FRAMES_30, audio_seconds=SHORTER),
    "mov h264, sound longer": lambda d: write_video(d / "a.mov", FRAMES_30, audio_seconds=AAC_LONGER),
    "mkv, variable frame rate, sound": lambda d: _vfr(d / "a.mkv", "libx264", 0.05),
    "mkv ffv1, variable frame rate": lambda d: _vfr(d / "a.mkv", "ffv1", None),
    "mp4, variable frame rate, sound": lambda d: _vfr(d / "a.mp4", "libx264", 0.05),
    "raw .h264 stream": lambda d: _raw_h264(d / "a.h264"),
    "odd size 161x91, mkv": lambda d: write_video(d / "a.mkv", smooth_frames(8, 91, 161), codec="ffv1"),
    "odd size 161x91, mp4 4:4:4": lambda d: write_video(d / "a.mp4", smooth_frames(8, 91, 161)),
    "png frames": lambda d: _frames(d / "frames", range(1, 17)),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_an_ordinary_file_is_degraded_and_restored_whole(tmp_path, capsys, name):
    source = MAKERS[name](tmp_path)
    info = probe(source)
    size = (info.frames, info.height, info.width)
    y = tmp_path / "y.mkv"
    assert main(["degrade", str(source), "-o", str(y), "--scale", "2"]) == 0, capsys.readouterr().err
    measured = probe(y)
    assert measured.frames == info.frames and measured.has_audio == info.has_audio
    out = tmp_path / "back.mp4"
    assert main(["restore", str(y), "-o", str(out), "--prior", "pinv", "--pix-fmt", "yuv444p"]) == 0
    back = probe(out)
    assert (back.frames, back.height, back.width) == size and back.has_audio == info.has_audio
    assert float(back.fps) == pytest.approx(float(info.fps), rel=1e-3)
    up = tmp_path / "up.mkv"  # the file itself, restored to twice its size
    assert main(["restore", str(source), "-o", str(up), "--scale", "2", "--prior", "pinv"]) == 0
    larger = probe(up)
    assert (larger.frames, larger.height, larger.width) == (size[0], 2 * size[1], 2 * size[2])
    assert larger.has_audio == (info.has_audio and info.kind == "video")
    assert "error" not in capsys.readouterr().err


def test_a_gap_in_the_numbering_is_said(tmp_path, capsys):
    folder = _frames(tmp_path / "frames", [1, 2, 3, 5, 6, 9, 10, 11])
    assert main(["degrade", str(folder), "-o", str(tmp_path / "y.mkv"), "--scale", "2"]) == 0
    err = capsys.readouterr().err
    assert "3 frame number(s) missing between 1 and 11 (4, 7, 8)" in err and "8 frames present" in err
    assert probe(tmp_path / "y.mkv").frames == 8


def test_an_alpha_channel_is_said_and_the_colour_kept(tmp_path, capsys):
    folder = _frames(tmp_path / "frames", range(4), alpha=True)
    y = tmp_path / "y"
    assert main(["degrade", str(folder), "-o", str(y), "--scale", "1", "--fps-factor", "2",
                 "--noise-std", "0"]) == 0
    assert "alpha channel (transparency), which is dropped" in capsys.readouterr().err
    first = np.stack(list(read_frames(probe(y))))[0]
    assert np.array_equal(first, smooth_frames(4, HEIGHT, WIDTH)[0])  # the colour channels as stored


def test_a_manifest_saved_with_a_byte_order_mark(tmp_path, capsys):
    clip = write_video(tmp_path / "clip.mp4", FRAMES_30[:8])
    manifest = tmp_path / "jobs.csv"
    manifest.write_bytes("\ufeffinput,output\nclip.mp4,clip-up.mkv\n".encode("utf-8"))
    code = main(["batch", str(manifest), "--scale", "2", "--prior", "pinv"])
    assert code == 0, capsys.readouterr()
    assert probe(tmp_path / "clip-up.mkv").width == 2 * probe(clip).width


def test_a_measurement_of_an_odd_size_comes_back_whole_with_words(tmp_path, capsys):
    """161x91 shrunk twice by ffmpeg's rule is 80x45; restored with --scale 2 it is 161x91 again, as recorded."""
    clip = write_video(tmp_path / "odd.mkv", smooth_frames(6, 91, 161), codec="ffv1")
    y = tmp_path / "y.mkv"
    assert main(["degrade", str(clip), "-o", str(y), "--scale", "2"]) == 0
    assert "161x91 is not a multiple of 2: the measurement is 80x45" in capsys.readouterr().err
    assert (probe(y).width, probe(y).height) == (80, 45)
    out = tmp_path / "x.mkv"
    assert main(["restore", str(y), "-o", str(out), "--scale", "2", "--prior", "pinv"]) == 0
    assert "its recorded size 161x91 (6 frames)" in capsys.readouterr().err
    assert (probe(out).width, probe(out).height) == (161, 91)
