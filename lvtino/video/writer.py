"""Streaming video output, written to a temporary name and renamed only when complete.

What is written is an ``Encoding`` (``lvtino.video.formats``: a format of the
registry with its settings); without one, the path's default format: ``.mp4``,
``.mov``, ``.m4v`` H.264, ``.mkv`` lossless FFV1, ``.webm`` VP9, a path without a
suffix a folder of PNG frames. The audio of ``audio_from`` is copied in
(re-encoded where the container refuses its codec), optionally cut to a time
range.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
from av.video.reformatter import ColorRange, VideoReformatter
import imageio.v3 as iio
import numpy as np

from lvtino.errors import UserError
from lvtino.files import partial_name, place, remove_stale_partials
from lvtino.video.formats import Container, Encoding
from lvtino.video.reader import METADATA_KEY, SIDECAR

log = logging.getLogger("lvtino")
STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}


def turned_note(path: Path, rotation: int) -> None:
    log.info("%s: the input is shown turned %d degrees (its rotation tag); a folder of images has no tag, so its "
             "frames are written turned, as players show them", path, rotation % 360)


class VideoWriter:
    """``with VideoWriter(path, fps) as w: w.write(frame)`` for (H, W, 3) RGB frames: uint8, or uint16 for an
    output deeper than 8 bits (a uint8 frame into a deep output is widened exactly).

    ``encoding``: what is written (``Encoding.choose(...).for_input(...)``); without it, ``codec``, ``crf``,
    ``preset``, ``pix_fmt`` and ``lossless`` choose one for the path, its depth following the first frame's.
    Nothing appears at ``path`` until the block ends without an error; then the
    complete file (or folder) is renamed into place in one step.
    """

    def __init__(self, path: str | Path, fps: Fraction, encoding: Encoding | None = None, *, codec: str | None = None,
                 crf: int | None = None, preset: str | None = None, pix_fmt: str | None = None,
                 lossless: bool = False, metadata: dict | None = None, audio_from: str | Path | None = None,
                 audio_range: tuple[float, float | None] | None = None, rotation: int = 0):
        self.path = Path(path)
        self.encoding = encoding or Encoding.choose(self.path, codec, crf, preset, pix_fmt, lossless=lossless)
        self.folder = self.encoding.format.folder
        self._pad = (0, 0)
        self.fps = Fraction(fps).limit_denominator(1_000_000)
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
        if self.folder:
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
        if frame.dtype not in (np.uint8, np.uint16) or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 or uint16 frame, got {frame.dtype} {frame.shape}")
        if self.encoding.pix_fmt is None:  # settled by the first frame: its depth
            self.encoding = self.encoding.for_input(8 if frame.dtype == np.uint8 else 16, audio=self.encoding.audio)
        if self.encoding.frame_bits == 8 and frame.dtype == np.uint16:
            raise ValueError(f"{self.path}: a 16-bit frame into {self.encoding.format.title} at 8 bits")
        if self.encoding.frame_bits == 16 and frame.dtype == np.uint8:
            frame = frame.astype(np.uint16) * 257  # exact: 255 -> 65535
        if self.folder:
            iio.imwrite(self.tmp / f"{self.count:06d}{self.encoding.format.encoder}", frame,
                        **self.encoding.format.image_options)
        else:
            if self._stream is None:
                self._open(frame.shape[1], frame.shape[0])
            if any(self._pad):  # subsampled chroma of an odd size: the last row or column repeated
                frame = np.pad(frame, ((0, self._pad[1]), (0, self._pad[0]), (0, 0)), mode="edge")
            deep = frame.dtype == np.uint16
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb48le" if deep else "rgb24")
            enc = self.encoding
            if enc.yuv:
                vf = self._reformatter.reformat(vf, format=enc.pix_fmt, dst_colorspace=enc.matrix(),
                                                dst_color_range=ColorRange(enc.colour[3]))
                # the frame carries the tags too (some encoders, ProRes, write the frame's, not the stream's), set
                # after the conversion: given to swscale they make it convert the gamut, not only tag it
                vf.color_primaries, vf.color_trc = enc.colour[0], enc.colour[1]
            else:
                vf = self._reformatter.reformat(vf, format=enc.pix_fmt)
            vf.pts = self.count
            vf.time_base = Fraction(1, 1) / self.fps  # pts counts frames
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        self.count += 1

    def _open(self, width: int, height: int) -> None:
        enc = self.encoding
        enc.check_frames(self.path, self.fps, width, height)
        # bitexact: no random identifiers or library versions in the container, so the bytes follow the frames
        self._container = av.open(str(self.tmp), mode="w", options={"fflags": "+bitexact"})
        if self.metadata:
            self._container.metadata[METADATA_KEY] = json.dumps({"lvtino": self.metadata})
        stream = self._container.add_stream(enc.format.encoder, rate=self.fps)
        stream.pix_fmt = enc.pix_fmt
        stream.options = enc.encoder_options()
        self._pad = enc.pad(width, height)  # said once at plan time (Encoding.notes)
        cc = stream.codec_context
        if enc.yuv:
            cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = enc.colour
        if enc.format.threads:
            # x264 and libvpx choose their thread count from the CPUs the process may use, and their bytes follow
            # it (the same frames on one CPU and on two: other bytes); the bytes must be a function of the frames
            # and settings for --resume and seeds to mean anything. At 720p, medium, on a 2-core machine: x264
            # 22-29 fps either way, beside a restoration that is far slower
            cc.thread_count = enc.format.threads
        if enc.codec_tag:
            cc.codec_tag = enc.codec_tag
        stream.width, stream.height = width + self._pad[0], height + self._pad[1]
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
        if self.folder:
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
        self._audio = (AudioTrack(self._container, self.encoding.container, self.audio_from, self.path)
                       if self.audio_from else None)

    def _copy_audio(self) -> None:
        if self._audio is not None:
            self._audio.copy(*(self.audio_range or (0.0, None)))


class AudioTrack:
    """The first audio stream of ``source``, declared in an output ``container`` (of kind ``box``) and copied
    after the video: as it is where the container takes its codec, else re-encoded (with a notice)."""

    def __init__(self, container, box: Container, source: str | Path, path: Path):
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
            if box.audio is None or name in box.audio:
                self.how, self.stream = "copy", container.add_stream_from_template(ain)
            else:
                encoder = box.audio_encoder
                log.warning("%s: %s cannot hold %s audio; re-encoding it to %s", path, box.name, name,
                            encoder.removeprefix("lib").upper() if encoder != "libopus" else "Opus")
                rate = ain.codec_context.sample_rate or 48000
                if box.audio_rates and rate not in box.audio_rates:
                    rate = box.audio_rates[0]
                aout = container.add_stream(encoder, rate=rate)
                channels = len(ain.codec_context.layout.channels) if ain.codec_context.layout else 2
                aout.layout = STANDARD_LAYOUTS.get(channels, "stereo")
                self.how, self.stream = "encode", aout

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
    formats = aout.codec_context.codec.audio_formats or ()
    fmt = "fltp" if any(f.name == "fltp" for f in formats) or not formats else formats[-1].name
    resampler = av.AudioResampler(format=fmt, layout=aout.layout, rate=rate)
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
