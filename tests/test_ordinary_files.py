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

from conftest import encode_frames, smooth_frames, write_video
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


def _with_a_still(path: Path, attached: bool) -> Path:
    """A video with a 32x32 still picture stored as a video stream ahead of it (a thumbnail track), or attached to
    the file as cover art; and sound."""
    import av

    cover = av.CodecContext.create("mjpeg", "w")
    cover.width = cover.height = 32
    cover.pix_fmt, cover.time_base = "yuvj420p", Fraction(1, 30)
    still = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24").reformat(
        format="yuvj420p")
    packets = cover.encode(still) + cover.encode()
    with av.open(str(path), "w") as c:
        cs = c.add_stream("mjpeg")
        cs.width = cs.height = 32
        cs.pix_fmt = "yuvj420p"
        if attached:
            cs.disposition = av.stream.Disposition.attached_pic
        vs = c.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = c.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        for p in packets:
            p.stream, p.pts, p.dts = cs, 0, 0
            c.mux(p)
        encode_frames(c, vs, FRAMES_30)
        tone = av.AudioFrame.from_ndarray(np.zeros((2, 64000), np.float32), format="fltp", layout="stereo")
        tone.sample_rate, tone.pts = 48000, 0
        for p in [*audio.encode(tone), *audio.encode()]:
            c.mux(p)
    return path


def _cut_by_stream_copy(path: Path, skip: int) -> Path:
    """What ``ffmpeg -ss T -i a.mp4 -c copy b.mp4`` makes: the packets from the key frame before the cut, the
    first ``skip`` of them hidden by an edit list (timestamps before zero), which players drop."""
    import av

    whole = write_video(path.with_name("whole.mp4"), FRAMES_30, gop=20, pix_fmt="yuv420p")
    with av.open(str(whole)) as src, av.open(str(path), "w") as out:
        vs = src.streams.video[0]
        copy = out.add_stream_from_template(vs)
        shift = round(Fraction(skip) / vs.average_rate / vs.time_base)
        for p in src.demux(vs):
            if p.dts is None:
                continue
            p.pts, p.dts, p.stream = p.pts - shift, p.dts - shift, copy
            out.mux(p)
    return path


MAKERS = {
    "mp4 cut by stream copy (an edit list)": lambda d: _cut_by_stream_copy(d / "a.mp4", 6),
    "mkv, a still as a video stream ahead of the video, sound": lambda d: _with_a_still(d / "a.mkv", False),
    "mp4, cover art attached, sound": lambda d: _with_a_still(d / "a.mp4", True),
    "webm vp9, sound (opus)": lambda d: write_video(d / "a.webm", FRAMES_30, codec="libvpx-vp9", pix_fmt="yuv420p",
                                                   audio_seconds=AAC_LONGER, audio_codec="libopus"),
    "mkv av1": lambda d: write_video(d / "a.mkv", FRAMES_30, codec="libsvtav1", pix_fmt="yuv420p"),
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


@pytest.mark.parametrize("attached", [False, True])
def test_a_still_ahead_of_the_video_is_not_taken_for_it(tmp_path, capsys, attached):
    """ffmpeg's choice: an attached picture is never the video, and of several video streams the largest is."""
    source = _with_a_still(tmp_path / ("a.mp4" if attached else "a.mkv"), attached)
    out = tmp_path / "up.mkv"
    assert main(["restore", str(source), "-o", str(out), "--scale", "2", "--prior", "pinv"]) == 0
    err = capsys.readouterr().err
    back = probe(out)
    assert (back.frames, back.height, back.width, back.has_audio) == (FRAMES, 2 * HEIGHT, 2 * WIDTH, True)
    which = "1 attached picture(s)" if attached else "1 other video stream(s)"
    assert f"2 video streams ({which}); reading stream" in err and f"({WIDTH}x{HEIGHT}), as ffmpeg would" in err
    first = np.stack(list(read_frames(probe(source), 0, 3))).astype(float)
    assert np.abs(first - FRAMES_30[:3]).mean() < 10  # the video's frames (4:2:0), not the grey still


def test_an_mp3_with_album_art_is_no_video(tmp_path, capsys):
    import av

    song = tmp_path / "song.mp3"
    with av.open(str(song), "w") as c:
        cs = c.add_stream("mjpeg")
        cs.width = cs.height = 32
        cs.pix_fmt = "yuvj420p"
        cs.disposition = av.stream.Disposition.attached_pic
        audio = c.add_stream("libmp3lame", rate=44100)
        cover = av.CodecContext.create("mjpeg", "w")
        cover.width = cover.height = 32
        cover.pix_fmt, cover.time_base = "yuvj420p", Fraction(1, 30)
        still = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24")
        for p in cover.encode(still.reformat(format="yuvj420p")) + cover.encode():
            p.stream, p.pts, p.dts = cs, 0, 0
            c.mux(p)
        tone = av.AudioFrame.from_ndarray(np.zeros((2, 44100), np.float32), format="fltp", layout="stereo")
        tone.sample_rate, tone.pts = 44100, 0
        for p in [*audio.encode(tone), *audio.encode()]:
            c.mux(p)
    assert main(["restore", str(song), "-o", str(tmp_path / "o.mkv"), "--scale", "2"]) == 2
    assert capsys.readouterr().err.strip() == (f"lvtino: error: {song}: has no video frames (no video stream: only a "
                                               "picture attached to the file, cover art or a thumbnail)")


def test_a_cut_made_by_stream_copy_is_read_as_players_show_it(tmp_path, capsys):
    """An edit list hides the frames between the key frame and the cut: they are not the video (the file was
    refused as damaged, even with --accept-truncated, after two windows had run)."""
    import av

    cut = _cut_by_stream_copy(tmp_path / "cut.mp4", 6)
    info = probe(cut)
    assert info.frames == FRAMES - 6 and info.expected_frames == FRAMES - 6
    with av.open(str(cut)) as c:
        shown = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    ours = list(read_frames(info))
    assert len(shown) == len(ours) == FRAMES - 6 and all(np.array_equal(a, b) for a, b in zip(ours, shown))
    assert all(np.array_equal(a, b) for a, b in zip(read_frames(info, 20, 25), shown[20:25]))  # sought
    out = tmp_path / "up.mp4"
    assert main(["restore", str(cut), "-o", str(out), "--scale", "2", "--prior", "pinv"]) == 0
    assert probe(out).frames == FRAMES - 6
