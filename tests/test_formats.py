"""Tests generated from the output formats' registry (``lvtino.video.formats.FORMATS``).

Every format round-trips through ``VideoWriter`` at each of its bit depths
(frames, size, rate, sound, depth, pixels), odd sizes included; joins segments
by its own rule; and a restoration into it, killed and resumed, gives the bytes
an uninterrupted one gives. A format without its case in ``CASES`` fails
``test_every_format_has_a_case``.
"""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import audio_seconds, killed_after_segments, smooth_frames, write_video
from lvtino.cli import main
from lvtino.errors import UserError
from lvtino.video.formats import FORMATS, Encoding
from lvtino.video.reader import probe, read_frames
from lvtino.video.segments import Segments
from lvtino.video.writer import VideoWriter

# each format: the output name it is tested with, and FFmpeg's decoder name for its stream (None: a folder)
CASES = {
    "h264": ("out.mp4", "h264"),
    "h264-rgb": ("out.mov", "h264"),
    "hevc": ("out.mp4", "hevc"),
    "prores": ("out.mov", "prores"),
    "ffv1": ("out.mkv", "ffv1"),
    "vp9": ("out.webm", "vp9"),
    "av1": ("out.webm", "av1"),
    "png": ("out", None),
    "webp": ("out", None),
    "tiff": ("out", None),
}
FPS = Fraction(30000, 1001)
WRITABLE = [name for name, f in FORMATS.items() if f.available() is None]


def test_every_format_has_a_case():
    assert set(CASES) == set(FORMATS), "a format of the registry without a case here, or a case without a format"


def _depth_frames(bits: int, height: int, width: int, count: int = 6) -> np.ndarray:
    """Frames for an output of ``bits``: uint8, or uint16 with detail between 8-bit levels."""
    frames = smooth_frames(count, height, width)
    if bits == 8:
        return frames
    return (frames.astype(np.uint16) * 257 + np.arange(count, dtype=np.uint16)[:, None, None, None] * 37)


def _decoded(path: Path, deep: bool) -> np.ndarray:
    return np.stack(list(read_frames(probe(path), deep=deep))).astype(np.float64)


@pytest.mark.parametrize("name,suffix", [(n, s) for n in WRITABLE for s in FORMATS[n].suffixes])
def test_a_format_goes_in_every_container_it_names(tmp_path, name, suffix):
    """Each suffix an entry lists takes its codec (a muxer that refuses it would fail only after the restoration)."""
    path = tmp_path / f"out{suffix}"
    with VideoWriter(path, FPS, Encoding.choose(path, name).for_input()) as writer:
        for f in smooth_frames(3, 16, 64):
            writer.write(f)
    info = probe(path)
    assert (info.frames, info.width, info.height) == (3, 64, 16)


@pytest.mark.parametrize("name,bits", [(n, b) for n in WRITABLE for b in sorted(FORMATS[n].depths)])
@pytest.mark.parametrize("size", [(24, 32), (21, 31)], ids=["even", "odd"])
def test_a_format_round_trips_frames_size_rate_sound_and_depth(tmp_path, name, bits, size):
    fmt = FORMATS[name]
    path = tmp_path / CASES[name][0]
    height, width = size
    frames = _depth_frames(bits, height, width)
    source = write_video(tmp_path / "sound.mp4", smooth_frames(6, 16, 16), fps=FPS, audio_seconds=6 / FPS)
    encoding = Encoding.choose(path, name).for_input(bits)
    assert encoding.bits == bits
    with VideoWriter(path, FPS, encoding, audio_from=source) as writer:
        for f in frames:
            writer.write(f)
    info = probe(path)
    pad = encoding.pad(width, height)
    assert (info.frames, info.width, info.height) == (6, width + pad[0], height + pad[1])
    assert abs(float(info.fps) - float(FPS)) < 1e-3
    if fmt.folder:
        assert not info.has_audio and sorted(p.suffix for p in path.iterdir()) == [".json"] + [fmt.encoder] * 6
    else:
        with av.open(str(path)) as c:
            assert c.streams.video[0].codec_context.codec.canonical_name == CASES[name][1]
        assert info.has_audio and abs(audio_seconds(path) - 6 / FPS) < 0.05
        assert info.bits == (16 if bits == 16 else bits) or (name == "ffv1" and bits == 8 and info.bits == 8)
    deep = bits > 8
    back = _decoded(path, deep)[:, :height, :width]
    scale = 257.0 if deep else 1.0
    error = np.abs(back - frames.astype(np.float64)) / scale
    if fmt.lossless:
        assert error.max() == 0, f"{name} is lossless: {error.max()} levels off"
    else:
        assert error.mean() < 6.0, f"{name}: {error.mean():.2f} levels off on average"  # a wrong matrix or range: 10+
    if deep:  # the detail between 8-bit levels survives: not 8-bit values widened
        assert np.mean(np.round(back) % 257 != 0) > 0.5


@pytest.mark.parametrize("name", [n for n in WRITABLE if FORMATS[n].pix_fmts])
def test_a_yuv_output_carries_the_inputs_colour_tags(tmp_path, name):
    """An input tagged BT.2020 with PQ transfer (HDR10's tags) and full range is written with those tags, converted
    with its matrix; an untagged input gets BT.709's."""
    path = tmp_path / CASES[name][0]
    hdr = {"primaries": 9, "trc": 16, "space": 9, "range": 2}
    encoding = Encoding.choose(path, name).for_input(10, hdr)
    frames = _depth_frames(encoding.frame_bits, 24, 32)
    with VideoWriter(path, FPS, encoding) as writer:
        for f in frames:
            writer.write(f)
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        full = 2 if FORMATS[name].full_range else 1  # ProRes is limited range by definition
        assert (int(cc.color_primaries), int(cc.color_trc), int(cc.colorspace), int(cc.color_range)) == (9, 16, 9, full)
    back = _decoded(path, encoding.frame_bits == 16)
    assert np.abs(back - frames).mean() / (257 if encoding.frame_bits == 16 else 1) < 6.0  # read with its matrix
    assert Encoding.choose(path, name).for_input(8, {"primaries": 2, "trc": 2, "space": 2, "range": 0}).colour \
        == (1, 1, 1, 1)


@pytest.mark.parametrize("name", WRITABLE)
def test_segments_join_into_the_one_pass_output(tmp_path, name):
    """Segments of a format, joined by its rule (stream copy, or links for a folder), hold every frame once in
    order, at the rate, with the sound; the same frames written in one pass decode to the same pixels."""
    fmt = FORMATS[name]
    out = tmp_path / CASES[name][0]
    encoding = Encoding.choose(out, name).for_input(8, audio=True)
    frames = smooth_frames(12, 24, 32)
    source = write_video(tmp_path / "sound.mp4", smooth_frames(12, 16, 16), fps=FPS, audio_seconds=12 / FPS)
    segments = Segments(tmp_path / "segs", out, FPS, 0, 12, encoding).open()
    for first in (0, 5, 9):
        segments.write(first, frames[first:first + {0: 5, 5: 4, 9: 3}[first]])
    assert segments.covered() == 12
    segments.join(audio_from=source)
    whole = tmp_path / ("whole" + out.suffix)
    with VideoWriter(whole, FPS, encoding) as writer:
        for f in frames:
            writer.write(f)
    info = probe(out)
    assert info.frames == 12 and abs(float(info.fps) - float(FPS)) < 1e-3
    assert info.has_audio == (not fmt.folder)
    joined = _decoded(out, False)
    assert np.abs(joined - frames).mean() < 6.0
    if fmt.lossless:
        assert np.array_equal(joined, _decoded(whole, False))


def _stream_bytes(path: Path) -> str:
    """A digest of the video stream's packets (a container's own identifiers aside), or of a folder's frames."""
    digest = hashlib.sha256()
    if path.is_dir():
        for p in sorted(path.iterdir()):
            if p.name != "lvtino.json":
                digest.update(p.read_bytes())
        return digest.hexdigest()
    with av.open(str(path)) as c:
        for packet in c.demux(c.streams.video[0]):
            if packet.size:
                digest.update(bytes(packet))
    return digest.hexdigest()


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    clean = write_video(folder / "clean.mp4", smooth_frames(40, 24, 32), fps=FPS, audio_seconds=40 / FPS)
    y = folder / "y.mkv"
    assert main(["degrade", str(clean), "-o", str(y), "--problem", "A"]) == 0
    return y


@pytest.mark.parametrize("name", WRITABLE)
def test_a_restoration_killed_and_resumed_gives_the_uninterrupted_bytes(measured, tmp_path, name):
    """``restore --codec NAME``: killed (-9) once a segment is closed, then resumed, the output's video stream has
    the bytes of an uninterrupted run's (a folder: its frame files), with the frames, rate and sound of the input."""
    out_name = CASES[name][0]
    args = ["restore", str(measured), "--codec", name, "--prior", "pinv", "--window", "8", "--overlap", "0"]
    whole = tmp_path / "whole" / out_name
    whole.parent.mkdir()
    assert main([*args, "-o", str(whole)]) == 0
    out = tmp_path / "resumed" / out_name
    out.parent.mkdir()
    state = out.parent / f".{out.name}.lvtino-state"
    killed_after_segments([*args, "-o", str(out)], 2)
    assert len(list(state.glob("segments/segment-*"))) == 2 and not out.exists()
    assert main([*args, "-o", str(out), "--resume"]) == 0
    assert _stream_bytes(out) == _stream_bytes(whole)
    info = probe(out)
    assert info.frames == 40 and abs(float(info.fps) - float(FPS)) < 1e-3
    assert info.has_audio == (not FORMATS[name].folder)


def test_settings_a_format_does_not_take_are_said_once_in_the_callers_words(measured, tmp_path, capsys):
    """--crf on lossless FFV1 and on ProRes: one notice each, with the flag as typed; the same under the API in
    keyword words; --preset 9 on H.264 and --pix-fmt yuv420p on ProRes are refused in one line."""
    import lvtino

    for out, codec, crf in [("a.mkv", None, "20"), ("b.mov", "prores", "20")]:
        extra = ["--codec", codec] if codec else []
        assert main(["restore", str(measured), "-o", str(tmp_path / out), "--prior", "pinv", "--crf", crf,
                     *extra]) == 0
        notes = [line for line in capsys.readouterr().err.splitlines() if "ignored" in line]
        assert len(notes) == 1 and notes[0].startswith(f"lvtino: notice: --crf {crf}: ") and "takes no CRF" in notes[0]
    import logging

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("lvtino").addHandler(handler)
    try:
        lvtino.restore(measured, tmp_path / "c.mkv", prior="pinv", crf=20)
    finally:
        logging.getLogger("lvtino").removeHandler(handler)
    said = [r.getMessage() for r in records if "ignored" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("crf=20: ")
    for extra, words in [(["--preset", "9"], "--preset 9"), (["--codec", "prores", "--pix-fmt", "yuv420p"],
                                                              "--pix-fmt yuv420p")]:
        out = tmp_path / ("d.mov" if "prores" in extra else "d.mp4")
        assert main(["restore", str(measured), "-o", str(out), "--prior", "pinv", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0] and not out.exists()


@pytest.mark.parametrize("output,codec,said", [
    ("a.mp4", "prores", "ProRes (prores_ks) is written as .mov, .mkv"),
    ("a.mp4", "png", "is written as a folder name without a suffix"),
    ("frames", "hevc", "names a folder of frames"),
    ("a.gif", None, "unsupported output type '.gif'"),
    ("a.mkv", "mpeg2", "unknown codec"),
])
def test_a_codec_and_an_output_name_that_do_not_go_together_are_refused(tmp_path, output, codec, said):
    import re

    with pytest.raises(UserError, match=re.escape(said)):
        Encoding.choose(tmp_path / output, codec)


@pytest.mark.parametrize("suffix,name", [(".mp4", "h264"), (".mov", "h264"), (".m4v", "h264"), (".mkv", "ffv1"),
                                         (".webm", "vp9"), ("", "png"), (".MKV", "ffv1")])
def test_an_output_name_chooses_its_default_format(tmp_path, suffix, name):
    assert Encoding.choose(tmp_path / f"out{suffix}").format.name == name


def test_a_width_the_hevc_encoder_corrupts_memory_at_is_refused(tmp_path):
    """PyAV's libx265 writes past a buffer at widths 34-48 (the process aborts later): refused in one line, before
    the encoder is opened; 32 and 50 are written."""
    path = tmp_path / "a.mp4"
    encoding = Encoding.choose(path, "hevc").for_input()
    for width in (40, 47):  # 47 is coded as 48 (4:2:0 pads it)
        with pytest.raises(UserError, match=f"frames {width + width % 2} pixels wide, which HEVC"):
            with VideoWriter(path, FPS, encoding) as writer:
                writer.write(np.zeros((16, width, 3), np.uint8))
    assert not path.exists()
    for width in (32, 50):
        with VideoWriter(path, FPS, encoding) as writer:
            writer.write(np.zeros((16, width, 3), np.uint8))
        assert probe(path).width == width


def test_the_digest_follows_the_encoding(measured, tmp_path):
    """Two codecs, two CRFs, one preset: each another digest (what --resume and batch compare)."""
    from lvtino.pipeline.request import Request

    digests = {Request(measured, tmp_path / name, codec=codec, crf=crf).check_inputs().digest()
               for name, codec, crf in [("a.mkv", None, None), ("a.mkv", "hevc", None), ("a.mkv", "hevc", 30),
                                        ("a.mkv", "av1", None)]}
    assert len(digests) == 4
    record = json.dumps(Request(measured, tmp_path / "a.mp4").check_inputs().settings(
        Request(measured, tmp_path / "a.mp4").plan(check_outputs=False)[0])["encoding"])
    assert '"format": "h264"' in record and '"crf": 18' in record
