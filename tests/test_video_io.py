"""Video IO: exact pixels when lossless, frame counts, fps, audio, ranges, odd sizes, atomic writes."""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import numpy as np
import pytest

from conftest import audio_seconds, smooth_frames, write_video
from lvtino.errors import UserError
from lvtino.video.reader import probe, read_frames
from lvtino.pipeline.outputs import Output, check_outputs
from lvtino.video.formats import output_suffix
from lvtino.video.writer import VideoWriter


def _write(path, frames, fps=Fraction(30), **kw):
    with VideoWriter(path, fps, **kw) as w:
        for f in frames:
            w.write(f)
    return path


@pytest.mark.parametrize("name,kw", [("a.mkv", {}), ("a.mp4", {"lossless": True}), ("frames", {})])
def test_lossless_round_trip_is_exact(tmp_path, name, kw):
    frames = np.random.default_rng(0).integers(0, 256, (5, 24, 40, 3), dtype=np.uint8)
    path = _write(tmp_path / name, frames, Fraction(25), metadata={"problem": "A", "frames": 17}, **kw)
    info = probe(path)
    assert info.frames == 5 and (info.width, info.height) == (40, 24) and info.fps == 25
    assert info.metadata == {"problem": "A", "frames": 17}
    assert np.array_equal(np.stack(list(read_frames(info))), frames)


def test_h264_keeps_count_fps_and_bt709_tags(tmp_path):
    frames = smooth_frames(20, 48, 64)
    path = _write(tmp_path / "a.mp4", frames, Fraction(30000, 1001), crf=12, preset="fast")
    info = probe(path)
    assert info.frames == 20 and info.fps == Fraction(30000, 1001)
    assert info.color["primaries"] == 1 and info.color["space"] == 1 and info.color["trc"] == 1
    error = np.stack(list(read_frames(info))).astype(float) - frames
    assert np.abs(error).mean() < 4.0
    # BT.709 both ways: a 601/709 mix-up shifts channels by 3-7 levels; 4:2:0 rounding alone stays under 2
    assert np.abs(error.mean(axis=(0, 1, 2))).max() < 2.0


def test_odd_sizes_are_playable_by_default_or_exact_with_yuv444p(tmp_path, caplog):
    """yuv420p (what players decode) pads an odd side by one repeated pixel, and the plan says so; yuv444p keeps the
    size."""
    from lvtino.video.formats import Encoding

    frames = smooth_frames(4, 21, 33)
    path = _write(tmp_path / "odd.mp4", frames)
    info = probe(path)
    assert (info.width, info.height, info.frames) == (34, 22, 4)
    notes = Encoding.choose(path).for_input().notes(path, 33, 21)
    # (its words, --pix-fmt or pix_fmt=, follow the caller: test_cli's test of the encoder's notice)
    assert len(notes) == 1 and "padded to 34x22" in notes[0] and "yuv444p" in notes[0]
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    decoded = np.stack(list(read_frames(info))).astype(float)
    assert np.abs(decoded[:, :21, :33] - frames).mean() < 4.0
    assert np.abs(decoded[:, :21, 33] - decoded[:, :21, 32]).mean() < 4.0  # the edge repeated, not black
    exact = probe(_write(tmp_path / "exact.mp4", frames, pix_fmt="yuv444p"))
    assert (exact.width, exact.height) == (33, 21)
    with av.open(str(exact.path)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv444p"


def test_frame_range_equals_the_same_frames_of_a_full_decode(tmp_path):
    frames = smooth_frames(60, 32, 48)
    src = write_video(tmp_path / "gop.mp4", frames, gop=7)  # keyframes every 7, B-frames: seeking must be exact
    info = probe(src)
    full = np.stack(list(read_frames(info)))
    assert full.shape[0] == 60
    for start, end in [(0, 5), (17, 29), (20, 21), (55, 60), (7, 7)]:
        part = list(read_frames(info, start, end))
        assert len(part) == end - start
        if part:
            assert np.array_equal(np.stack(part), full[start:end])
    with pytest.raises(UserError, match="outside"):
        list(read_frames(info, 50, 61))


def test_frame_folder_input(real_frames):
    info = probe(real_frames)
    assert info.kind == "frames" and info.frames == 41 and (info.width, info.height) == (640, 360)
    assert info.fps == 30
    assert probe(real_frames, fps=Fraction(24)).fps == 24
    third = list(read_frames(info, 2, 3))[0]
    import imageio.v3 as iio
    assert np.array_equal(third, iio.imread(sorted(real_frames.iterdir())[2]))


def test_audio_is_copied_and_cut_to_the_range(tmp_path):
    frames = smooth_frames(30, 32, 48)
    src = write_video(tmp_path / "av.mp4", frames, audio_seconds=1.0)
    info = probe(src)
    assert info.has_audio
    out = _write(tmp_path / "copy.mp4", list(read_frames(info)), audio_from=src)
    assert probe(out).has_audio and abs(audio_seconds(out) - 1.0) <= 1 / 30 + 0.03
    cut = _write(tmp_path / "cut.mkv", list(read_frames(info, 9, 21)), audio_from=src, audio_range=(0.3, 0.7))
    assert abs(audio_seconds(cut) - 0.4) <= 1 / 30 + 0.03  # AAC frames are 21 ms


def test_audio_the_container_refuses_is_reencoded(tmp_path, caplog):
    frames = smooth_frames(15, 32, 48)
    src = write_video(tmp_path / "pcm.mkv", frames, audio_seconds=0.5, audio_codec="pcm_s16le")
    with caplog.at_level(logging.WARNING, logger="lvtino"):
        out = _write(tmp_path / "pcm.mp4", frames, audio_from=src)
    assert "re-encoding it to AAC" in caplog.text
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
    assert abs(audio_seconds(out) - 0.5) <= 0.05


def test_rotation_is_kept(tmp_path):
    out = _write(tmp_path / "rot.mp4", smooth_frames(3, 32, 48), rotation=90)
    assert probe(out).rotation == 90


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(path, Fraction(30)) as w:
            w.write(smooth_frames(1, 16, 16)[0])
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_output_checks(tmp_path):
    src = write_video(tmp_path / "in.mp4", smooth_frames(3, 16, 16))
    video = lambda p: [Output("-o", p, "video")]  # noqa: E731
    with pytest.raises(UserError, match="would overwrite the input"):
        check_outputs(video(src), [("the input", src)])
    with pytest.raises(UserError, match="would overwrite the input"):  # the same file by another name
        check_outputs(video(tmp_path / "sub" / ".." / "in.mp4"), [("the input", src)])
    (tmp_path / "link.mp4").symlink_to(src)
    with pytest.raises(UserError, match="would overwrite the input"):
        check_outputs(video(tmp_path / "link.mp4"), [("the input", src)])
    with pytest.raises(UserError, match="unsupported output type"):
        output_suffix(tmp_path / "out.gif")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds files lvtino did not write"):
        check_outputs([Output("-o", busy, "frames")], [("the input", src)])
    mine = tmp_path / "mine"  # a user's own numbered frames are not lvtino's
    mine.mkdir()
    for i in range(3):
        (mine / f"{i}.png").write_bytes(b"png")
    with pytest.raises(UserError, match="holds files lvtino did not write"):
        check_outputs([Output("-o", mine, "frames")], [("the input", src)], "yes")
    with pytest.raises(UserError, match="does not exist"):
        check_outputs(video(tmp_path / "nowhere" / "out.mp4"), [("the input", src)])
    with pytest.raises(UserError, match="--stats .*: is also given as -o"):
        check_outputs([*video(tmp_path / "o.mp4"), Output("--stats", tmp_path / "o.mp4")], [])
    (tmp_path / "o.mp4").write_bytes(b"old")
    with pytest.raises(UserError, match="exists; add -y to replace it"):
        check_outputs(video(tmp_path / "o.mp4"), [])
    with pytest.raises(UserError, match="-n never replaces"):
        check_outputs(video(tmp_path / "o.mp4"), [], "no")
    check_outputs(video(tmp_path / "o.mp4"), [], "yes")
    assert (tmp_path / "o.mp4").read_bytes() == b"old"  # checking writes nothing


def test_frame_folder_output_replaces_only_its_own_folder(tmp_path):
    frames = smooth_frames(3, 16, 16)
    out = _write(tmp_path / "frames", frames)
    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png", "000002.png", "lvtino.json"]
    check_outputs([Output("-o", out, "frames")], [], "yes")  # lvtino's own folder may be replaced
    _write(out, frames[:2])
    assert probe(out).frames == 2
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds files lvtino did not write"):
        check_outputs([Output("-o", out, "frames")], [], "yes")


def test_variable_frame_rate_input_keeps_every_frame(tmp_path):
    """Timestamps 20, 20, 50 ms apart: numbered by order, none lost or doubled, ranges by index."""
    frames = smooth_frames(40, 32, 48)
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv444p"
        s.options = {"crf": "0", "bf": "2", "g": "8"}
        s.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv444p")
            vf.pts, vf.time_base = t, Fraction(1, 1000)
            t += 50 if i % 3 == 0 else 20
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    info = probe(path)
    assert info.frames == 40 and info.variable_rate and "variable frame rate" in info.rate_note()
    full = np.stack(list(read_frames(info)))
    assert full.shape[0] == 40
    assert np.abs(full.astype(int) - frames).max() <= 3  # lossless up to the colour conversion: each frame in place
    for start, end in [(10, 30), (0, 1), (33, 40), (17, 18)]:
        assert np.array_equal(np.stack(list(read_frames(info, start, end))), full[start:end])
    assert info.index_at(info.time_of(22)) == 22 and info.time_of(3) == pytest.approx(0.09)


def test_truncated_input_is_refused_unless_accepted(tmp_path):
    good = _write(tmp_path / "good.mkv", smooth_frames(10, 32, 48))
    cut = tmp_path / "cut.mkv"
    data = good.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(UserError, match="promises 10 frames but holds [0-9]: .*accept_truncated=True"):
        probe(cut)
    info = probe(cut, accept_truncated=True)
    assert 0 < info.frames < 10 and len(list(read_frames(info))) == info.frames
    assert probe(good).expected_frames == 10


def test_bad_inputs(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        probe(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(UserError, match="not a video"):
        probe(text)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no image frames"):
        probe(empty)
    with av.open(str(tmp_path / "zero.mp4"), "w") as c:  # a container that never received a frame
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
        c.start_encoding()
    with pytest.raises(UserError, match="has no video frames"):
        probe(tmp_path / "zero.mp4")
    audio_only = tmp_path / "audio.mkv"
    with av.open(str(audio_only), "w") as c:
        a = c.add_stream("flac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        for p in a.encode(frame):
            c.mux(p)
        for p in a.encode():
            c.mux(p)
    with pytest.raises(UserError, match="has no video frames"):
        probe(audio_only)


def test_a_deep_input_keeps_its_precision(tmp_path, capsys):
    """A 10-bit H.264 input restored into .mkv comes out at 16 bits (FFV1 gbrp16le), into .mp4 at 10 bits (H.264
    yuv420p10le), not rounded to 8; where the depth is lowered (--pix-fmt yuv420p, a folder of PNG frames) one
    notice says so, in the command line's words, and names the formats that keep it."""
    import av

    from conftest import encode_frames, smooth_frames
    from lvtino.cli import main
    from lvtino.video.reader import probe, read_frames

    src = tmp_path / "deep.mp4"
    frames = smooth_frames(8, 24, 32)
    with av.open(str(src), "w") as c:
        vs = c.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = 32, 24, "yuv420p10le"
        deep = [(f.astype(np.uint16) * 257 + np.uint16(i * 7)).astype(np.uint16)  # values between 8-bit levels
                for i, f in enumerate(frames)]
        encode_frames(c, vs, deep)
    assert probe(src).bits == 10
    out = tmp_path / "up.mkv"
    assert main(["restore", str(src), "-o", str(out), "--scale", "2", "--prior", "pinv"]) == 0
    back = probe(out)
    assert back.bits == 16
    values = np.stack(list(read_frames(back, deep=True)))
    assert values.dtype == np.uint16 and np.mean(values % 257 != 0) > 0.5  # not 8-bit values widened
    capsys.readouterr()
    ten = tmp_path / "up.mp4"
    assert main(["restore", str(src), "-o", str(ten), "--scale", "2", "--prior", "pinv"]) == 0
    assert "colour" not in capsys.readouterr().err
    assert probe(ten).bits == 10
    with av.open(str(ten)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    values = np.stack(list(read_frames(probe(ten), deep=True)))
    assert np.mean(values % 257 != 0) > 0.5
    for name, extra, said in [("eight.mp4", ["--pix-fmt", "yuv420p"], " (--pix-fmt yuv420p)"),
                              ("frames", [], "")]:
        out = tmp_path / name
        assert main(["restore", str(src), "-o", str(out), "--scale", "2", "--prior", "pinv", *extra]) == 0
        notes = [line for line in capsys.readouterr().err.splitlines() if "10-bit colour" in line]
        title = "H.264 (libx264)" if extra else "a folder of PNG frames"
        assert notes == [f"lvtino: notice: {out}: the input has 10-bit colour and {title} is written at 8 bits "
                         f"here{said}; H.264 (libx264), HEVC (libx265), ProRes (prores_ks) keep 10"]
