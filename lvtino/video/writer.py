"""Streaming video output, written to a temporary name and renamed only when complete.

The output kind follows the path: ``.mp4``/``.mov``/``.m4v`` encode H.264
(libx264, yuv420p by default with an odd side padded by one pixel, or yuv444p;
BT.709 tags; ``lossless=True`` gives libx264rgb at qp 0), ``.mkv`` encodes lossless
FFV1 RGB, and a path without a suffix becomes a folder of PNG frames. The audio of
``audio_from`` is copied in (re-encoded to AAC where the container refuses its
codec), optionally cut to a time range.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter
import imageio.v3 as iio
import numpy as np

from lvtino.errors import UserError, arg, said
from lvtino.files import partial_name, place, remove_stale_partials
from lvtino.video.reader import METADATA_KEY, SIDECAR

log = logging.getLogger("lvtino")
PIX_FMTS = ("yuv420p", "yuv444p")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
MKV_MAX_FPS = 1000  # Matroska stores times in milliseconds: a faster rate repeats timestamps


def check_encoding(crf: int, preset: str, pix_fmt: str) -> None:
    """The H.264 settings, with the command line's words."""
    from lvtino.validation import Choice, whole

    whole(0, 51).parse(crf, arg("crf"))
    Choice(X264_PRESETS).parse(preset, arg("preset"))
    Choice(PIX_FMTS).parse(pix_fmt, arg("pix_fmt"))


def check_rate(path: str | Path, fps: Fraction) -> None:
    """Refuse a frame rate the output's container cannot represent (one line, before any work)."""
    if output_kind(path) == "ffv1" and fps > MKV_MAX_FPS:
        raise UserError(f"{path}: {float(fps):g} fps is faster than Matroska can time (its timestamps are "
                        f"milliseconds: at most {MKV_MAX_FPS} fps); write .mp4 or a folder of frames")

H264_SUFFIXES = (".mp4", ".mov", ".m4v")
FFV1_SUFFIXES = (".mkv",)
BT709 = 1  # ITU-T H.273 code for BT.709 primaries, transfer and matrix
# audio codecs copied as they are into .mp4/.mov (players expect these there); others become AAC.
# Matroska takes any codec.
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}


def output_kind(path: str | Path) -> str:
    """"h264", "ffv1" or "frames", from the output path; anything else is refused."""
    suffix = Path(path).suffix.lower()
    if suffix in H264_SUFFIXES:
        return "h264"
    if suffix in FFV1_SUFFIXES:
        return "ffv1"
    if suffix == "":
        return "frames"
    raise UserError(f"{path}: unsupported output type {suffix!r} (use {', '.join(H264_SUFFIXES + FFV1_SUFFIXES)} "
                    "or a folder name without a suffix for PNG frames)")


def odd_size_note(path: Path, width: int, height: int, pix_fmt: str) -> str | None:
    """What an H.264 4:2:0 output of an odd size gets (a padded pixel), in the caller's words; None otherwise."""
    if output_kind(Path(path)) != "h264" or pix_fmt != "yuv420p" or not (width % 2 or height % 2):
        return None
    return (f"{path}: odd frame size {width}x{height} padded to {width + width % 2}x{height + height % 2} for "
            f"yuv420p (what players decode); {said('pix_fmt', 'yuv444p')} keeps the exact size")


def turned_note(path: Path, rotation: int) -> None:
    log.info("%s: the input is shown turned %d degrees (its rotation tag); a folder of images has no tag, so its "
             "frames are written turned, as players show them", path, rotation % 360)


class VideoWriter:
    """``with VideoWriter(path, fps) as w: w.write(frame)`` for (H, W, 3) uint8 RGB frames, or uint16 ones
    into FFV1 (.mkv), which keeps them at 16 bits (gbrp16le).

    H.264 outputs are ``pix_fmt`` yuv420p (what browsers, phones and QuickTime play; an
    odd size is padded by one pixel) or yuv444p (any size, fewer players).

    Nothing appears at ``path`` until the block ends without an error; then the
    complete file (or folder) is renamed into place in one step.
    """

    def __init__(self, path: str | Path, fps: Fraction, crf: int = 18, preset: str = "medium",
                 lossless: bool = False, metadata: dict | None = None, audio_from: str | Path | None = None,
                 audio_range: tuple[float, float | None] | None = None, rotation: int = 0,
                 pix_fmt: str = "yuv420p", notices: bool = True):
        if pix_fmt not in PIX_FMTS:
            raise UserError(f"{said('pix_fmt', pix_fmt)}: expected one of {', '.join(PIX_FMTS)}")
        self.pix_fmt, self._pad, self.notices = pix_fmt, (0, 0), notices
        self.path = Path(path)
        self.kind = output_kind(self.path)
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        self.crf, self.preset, self.lossless = crf, preset, lossless
        self.metadata = metadata or {}
        self._reformatter = VideoReformatter()  # one conversion context for every frame
        self.audio_from = Path(audio_from) if audio_from else None
        self.audio_range = audio_range
        self.rotation = rotation
        self.tmp = partial_name(self.path, self.path.suffix)
        self.count = 0
        self._container = self._stream = None

    # -- context ------------------------------------------------------------------
    def __enter__(self) -> "VideoWriter":
        remove_stale_partials(self.path)
        _remove(self.tmp)
        if self.kind == "frames":
            self.tmp.mkdir(parents=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def _abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError:
                pass
        _remove(self.tmp)

    # -- frames -------------------------------------------------------------------
    def write(self, frame: np.ndarray) -> None:
        deep = frame.dtype == np.uint16 and self.kind == "ffv1"
        if (frame.dtype != np.uint8 and not deep) or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 frame (uint16 into .mkv), got {frame.dtype} {frame.shape}")
        if self._stream is not None and deep != (self._stream.pix_fmt == "gbrp16le"):
            raise ValueError(f"{self.path}: frames of 8 and 16 bits mixed in one video")
        if self.kind == "frames":
            iio.imwrite(self.tmp / f"{self.count:06d}.png", frame)
        else:
            if self._stream is None:
                self._open(frame.shape[1], frame.shape[0], deep)
            if any(self._pad):  # 4:2:0 of an odd size: the last row or column repeated
                frame = np.pad(frame, ((0, self._pad[1]), (0, self._pad[0]), (0, 0)), mode="edge")
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb48le" if deep else "rgb24")
            if self._stream.pix_fmt.startswith("yuv"):
                vf = self._reformatter.reformat(vf, format=self._stream.pix_fmt, dst_colorspace="itu709")
            else:
                vf = self._reformatter.reformat(vf, format=self._stream.pix_fmt)
            vf.pts = self.count
            vf.time_base = Fraction(1, 1) / self.fps  # pts counts frames
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        self.count += 1

    def _open(self, width: int, height: int, deep: bool = False) -> None:
        self._container = av.open(str(self.tmp), mode="w")
        if self.metadata:
            self._container.metadata[METADATA_KEY] = json.dumps({"lvtino": self.metadata})
        if self.kind == "ffv1":
            stream = self._container.add_stream("ffv1", rate=self.fps)
            stream.pix_fmt = "gbrp16le" if deep else "bgr0"  # FFV1 codes RGB losslessly (reversible transform)
        elif self.lossless:
            stream = self._container.add_stream("libx264rgb", rate=self.fps)
            stream.pix_fmt = "rgb24"
            stream.options = {"qp": "0", "preset": self.preset}
        else:
            stream = self._container.add_stream("libx264", rate=self.fps)
            stream.pix_fmt = self.pix_fmt
            if self.pix_fmt == "yuv420p" and (width % 2 or height % 2):
                # 4:2:0 needs even sizes and H.264 crops only by 2 pixels: pad by one, or --pix-fmt yuv444p
                self._pad = (width % 2, height % 2)
                if self.notices:
                    log.info("%s", odd_size_note(self.path, width, height, self.pix_fmt))
                width, height = width + self._pad[0], height + self._pad[1]
            # mb-tree off: with it, x264 (core 165) reads memory it never wrote when a stream ends with B-frames in
            # its lookahead, so the same frames gave other bytes from run to run (every glibc MALLOC_PERTURB_
            # value its own bytes; none with mbtree=0, bf=0 or b-pyramid none on one clip, only mbtree=0 and bf=0
            # on another). Without it crf N is about crf N-1 with it (street clip: -14 % bytes, -0.9 dB)
            stream.options = {"crf": str(self.crf), "preset": self.preset, "x264-params": "mbtree=0"}
            cc = stream.codec_context
            cc.color_primaries = cc.color_trc = cc.colorspace = BT709
        if stream.codec_context.name.startswith("libx264"):
            # one encoding thread: x264's automatic count follows the CPUs the process may use, and its bytes follow
            # the count (the same frames on one CPU and on two: other bytes); the bytes must be a function of the
            # frames and settings for --resume and seeds to mean anything. At 720p, medium, on this 2-core
            # machine: 22-29 fps either way, beside a restoration that is far slower
            stream.codec_context.thread_count = 1
        stream.width, stream.height = width, height
        stream.time_base = Fraction(1, 1) / self.fps
        if self.rotation:
            stream.set_display_rotation(self.rotation)
        self._stream = stream
        self._add_audio_stream()

    # -- the end ------------------------------------------------------------------
    def close(self) -> None:
        if self.count == 0:
            self._abort()
            raise UserError(f"{self.path}: no frames to write")
        try:
            self._finish()
        except BaseException:
            self._abort()
            raise

    def _finish(self) -> None:
        if self.kind == "frames":
            # the sidecar records the folder's frame rate, and lvtino's metadata if any
            sidecar = {"fps": str(self.fps), "lvtino": self.metadata}
            (self.tmp / SIDECAR).write_text(json.dumps(sidecar, indent=1))
            if self.audio_from is not None:
                log.warning("%s: a folder of frames carries no audio; the audio track is dropped", self.path)

            place(self.tmp, self.path)
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._copy_audio()
        self._container.close()
        self._container = None
        _fsync(self.tmp)
        place(self.tmp, self.path)  # atomic: readers see the old file or the new one

    def _add_audio_stream(self) -> None:
        """Declare the audio stream before the first packet is written (muxers need all streams up front)."""
        self._audio = AudioTrack(self._container, self.kind, self.audio_from, self.path) if self.audio_from else None

    def _copy_audio(self) -> None:
        if self._audio is not None:
            self._audio.copy(*(self.audio_range or (0.0, None)))


class AudioTrack:
    """The first audio stream of ``source``, declared in an output ``container`` and copied after the video:
    as it is where the container takes its codec, else re-encoded to AAC (with a notice)."""

    def __init__(self, container, kind: str, source: str | Path, path: Path):
        self.container, self.source, self.how, self.stream = container, Path(source), None, None
        with av.open(str(self.source)) as src:
            if not src.streams.audio:
                return
            ain = src.streams.audio[0]
            if ain.codec_context is None:  # a damaged header, or a codec FFmpeg does not know
                log.warning("%s: the audio track of %s cannot be read (damaged, or an unknown codec); the output "
                            "has no sound", path, self.source)
                return
            name = ain.codec_context.name
            if kind == "ffv1" or name in MP4_AUDIO:
                self.how, self.stream = "copy", container.add_stream_from_template(ain)
            else:
                log.warning("%s: the container cannot hold %s audio; re-encoding it to AAC", path, name)
                aout = container.add_stream("aac", rate=ain.codec_context.sample_rate or 48000)
                channels = len(ain.codec_context.layout.channels) if ain.codec_context.layout else 2
                aout.layout = STANDARD_LAYOUTS.get(channels, "stereo")
                self.how, self.stream = "aac", aout

    def copy(self, t0: float = 0.0, t1: float | None = None) -> None:
        """The audio from ``t0`` to ``t1`` seconds of the source's own timeline."""
        if self.stream is None:
            return
        with av.open(str(self.source)) as src:
            ain = src.streams.audio[0]
            try:
                if self.how == "copy":
                    _remux_audio(src, ain, self.stream, self.container, t0, t1)
                else:
                    _transcode_audio(src, ain, self.stream, self.container, t0, t1)
            except av.error.FFmpegError as err:  # the picture is whole; say what the sound lacks
                log.warning("%s: the audio of %s could not be read to its end (%s); the sound stops there",
                            self.container.name, self.source, err.strerror or type(err).__name__)


def _remux_audio(src, ain, aout, out, t0: float, t1: float | None) -> None:
    tb = ain.time_base
    start = ain.start_time or 0
    offset = None
    for packet in src.demux(ain):
        if packet.dts is None or packet.pts is None:
            continue
        t = float((packet.pts - start) * tb)
        if t < t0 - 1e-6 or (t1 is not None and t >= t1 - 1e-6):
            continue
        if offset is None:
            offset = packet.pts
        packet.pts -= offset
        packet.dts -= offset
        packet.stream = aout
        out.mux(packet)


def _transcode_audio(src, ain, aout, out, t0: float, t1: float | None) -> None:
    rate = aout.codec_context.sample_rate
    resampler = av.AudioResampler(format="fltp", layout=aout.layout, rate=rate)
    pts = 0
    for frame in src.decode(ain):
        if frame.time is not None and (frame.time < t0 - 1e-6 or (t1 is not None and frame.time >= t1 - 1e-6)):
            continue
        for rf in resampler.resample(frame):
            rf.pts = pts
            pts += rf.samples
            for packet in aout.encode(rf):
                out.mux(packet)
    for packet in aout.encode():
        out.mux(packet)


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
