"""Streaming video input: a file PyAV decodes, or a folder of numbered image frames.

``probe`` reads what a restoration needs to know without decoding pictures: it
demuxes the video stream once and keeps every frame's timestamp, so frames are
numbered by their order in the stream, whatever the frame rate does (a
variable-frame-rate phone clip loses no frame), and a frame range seeks to the
right keyframe. A file whose container promises more frames than it holds
(cut short by a crash or a copy) is refused unless ``accept_truncated``.
``read_frames`` yields RGB frames (H, W, 3) uint8 one at a time, from frame
``start`` to ``end`` (exclusive).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import imageio.v3 as iio
import numpy as np

from lvtino.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SIDECAR = "lvtino.json"  # metadata of a frame folder written by lvtino
METADATA_KEY = "comment"  # container tag that carries lvtino's metadata (kept by mp4 and mkv)
log = logging.getLogger("lvtino")


@dataclass
class VideoInfo:
    path: Path
    kind: str  # "video" or "frames"
    fps: Fraction  # the average rate: frames / duration
    frames: int
    width: int
    height: int
    rotation: int = 0
    color: dict = field(default_factory=dict)  # primaries, trc, space, range (codec values)
    has_audio: bool = False
    metadata: dict = field(default_factory=dict)  # lvtino's own entry, if the file carries one
    pts: np.ndarray | None = field(default=None, repr=False)  # each frame's timestamp, presentation order
    time_base: Fraction | None = None
    variable_rate: bool = False  # frame durations differ by more than timestamp rounding
    expected_frames: int | None = None  # what the container promises, when it says

    def time_of(self, index: int) -> float:
        """Seconds from the first frame to frame ``index`` (index == frames: the end of the last frame)."""
        if self.pts is None or not self.variable_rate:
            return float(Fraction(index) / self.fps)
        if index >= self.frames:
            return float((self.pts[-1] - self.pts[0]) * self.time_base) + float(1 / self.fps)
        return float((self.pts[index] - self.pts[0]) * self.time_base)

    def index_at(self, seconds: float) -> int:
        """The first frame that starts at or after ``seconds`` (half a frame's tolerance)."""
        if self.pts is None or not self.variable_rate:
            return round(Fraction(seconds).limit_denominator(10**6) * self.fps)
        times = (self.pts - self.pts[0]) * float(self.time_base)
        half = 0.5 / float(self.fps)
        return int(np.searchsorted(times, seconds - half, side="left"))

    def rate_note(self) -> str | None:
        """One line for a variable-frame-rate input: what varies, and what the output uses."""
        if not self.variable_rate:
            return None
        d = np.diff(self.pts) * float(self.time_base) * 1000
        return (f"{self.path}: variable frame rate (frames last {d.min():.0f} to {d.max():.0f} ms); its "
                f"{self.frames} frames are taken in order, at the average rate of {float(self.fps):.3f} fps")


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def frame_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=_natural_key)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")


def probe(path: str | Path, fps: Fraction | float | None = None, accept_truncated: bool = False) -> VideoInfo:
    """Describe a video file or a frame folder (``fps`` applies to folders; default 30)."""
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        return _probe_folder(path, fps)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError):
        raise UserError(f"{path}: not a video PyAV can decode (or a file cut short before its index)") from None
    with container:
        if not container.streams.video:
            raise UserError(f"{path}: has no video frames (no video stream)")
        vs = container.streams.video[0]
        cc = vs.codec_context
        pts = _frame_timestamps(container, vs)
        n = len(pts) if pts is not None else _count_packets(container, vs)
        rate = _average_rate(vs, pts, n)
        if not rate:
            raise UserError(f"{path}: frame rate unknown")
        meta = _parse_metadata(_tag(container.metadata, METADATA_KEY))
        info = VideoInfo(
            path=path, kind="video", fps=rate, frames=n, width=cc.width, height=cc.height,
            color={"primaries": int(cc.color_primaries), "trc": int(cc.color_trc),
                   "space": int(cc.colorspace), "range": int(cc.color_range)},
            has_audio=bool(container.streams.audio), metadata=meta, pts=pts,
            time_base=vs.time_base, variable_rate=pts is not None and _is_variable(pts),
            expected_frames=_promised_frames(container, vs, rate),
        )
        if info.frames:
            info.rotation = _first_rotation(container, vs)
    if info.frames == 0:
        raise UserError(f"{path}: the video has zero frames")
    if info.expected_frames is not None and info.frames < info.expected_frames and not accept_truncated:
        raise UserError(f"{path}: the container promises {info.expected_frames} frames but holds {info.frames}: "
                        "the file looks truncated or damaged; pass --accept-truncated to use the frames it holds")
    return info


def _frame_timestamps(container, vs) -> np.ndarray | None:
    """Every frame's pts in presentation order, from one demux of the stream (no decoding); None when
    the container leaves packets without timestamps (then frames are counted as they decode)."""
    pts = []
    for packet in container.demux(vs):
        if packet.size <= 0:
            continue
        if packet.pts is None:
            container.seek(0)
            return None
        pts.append(packet.pts)
    container.seek(0)
    if not pts:
        return np.zeros(0, dtype=np.int64)
    pts = np.sort(np.asarray(pts, dtype=np.int64))
    if np.any(np.diff(pts) == 0):  # duplicate timestamps: not an index to seek by
        return None
    return pts


def _count_packets(container, vs) -> int:
    n = sum(1 for p in container.demux(vs) if p.size > 0)
    container.seek(0)
    return n


def _average_rate(vs, pts: np.ndarray | None, n: int) -> Fraction | None:
    """The stream's average frame rate; from the timestamps themselves when the header has none."""
    rate = vs.average_rate or vs.guessed_rate or vs.base_rate
    if rate:
        return Fraction(rate)
    if pts is not None and n > 1 and vs.time_base:
        span = Fraction(int(pts[-1] - pts[0])) * vs.time_base
        return (Fraction(n - 1) / span).limit_denominator(1001 * 1000) if span > 0 else None
    return None


def _is_variable(pts: np.ndarray) -> bool:
    """Frame durations that differ by more than timestamp rounding (a quarter of the typical one)."""
    if len(pts) < 3:
        return False
    d = np.diff(pts)
    median = float(np.median(d))
    return bool(np.any(np.abs(d - median) > max(1.0, 0.25 * median)))


def _promised_frames(container, vs, rate: Fraction) -> int | None:
    """The frame count the container's header claims (mp4: the sample table; Matroska: the duration)."""
    if vs.frames:
        return int(vs.frames)
    if vs.duration and vs.time_base:
        return round(Fraction(int(vs.duration)) * vs.time_base * rate)
    if container.duration:
        return round(Fraction(int(container.duration), 1_000_000) * rate)
    return None


def _first_rotation(container, vs) -> int:
    """The display rotation of the first frame (degrees, counter-clockwise), from the open container."""
    container.seek(0)
    for frame in container.decode(vs):
        return int(round(frame.rotation)) % 360
    return 0


def _tag(tags: dict, key: str) -> str | None:
    """A container tag by name, whatever its case (Matroska stores tags upper-case)."""
    for k, v in tags.items():
        if k.lower() == key:
            return v
    return None


def _load_json(text: str | None) -> dict:
    """A JSON object written by lvtino; anything else (absent, foreign, broken) reads as empty."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _parse_metadata(text: str | None) -> dict:
    lvtino = _load_json(text).get("lvtino", {})
    return lvtino if isinstance(lvtino, dict) else {}


def _probe_folder(path: Path, fps) -> VideoInfo:
    files = frame_files(path)
    if not files:
        raise UserError(f"{path}: the folder holds no image frames ({', '.join(IMAGE_SUFFIXES)})")
    first = _read_image(files[0])
    sidecar = path / SIDECAR
    try:
        record = _load_json(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
    except (OSError, UnicodeDecodeError):
        record = {}
    meta = record.get("lvtino", {}) if isinstance(record.get("lvtino"), dict) else {}
    try:
        recorded_fps = Fraction(record["fps"]) if "fps" in record else None
    except (TypeError, ValueError, ZeroDivisionError):
        recorded_fps = None
    if fps is None:
        fps = recorded_fps or Fraction(30)
    return VideoInfo(path=path, kind="frames", fps=Fraction(fps), frames=len(files),
                     width=first.shape[1], height=first.shape[0], metadata=meta)


def _read_image(path: Path) -> np.ndarray:
    try:
        img = iio.imread(path)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read the image ({err})") from None
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.dtype != np.uint8:
        if img.dtype == np.uint16:
            img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
        else:
            raise UserError(f"{path}: unsupported pixel type {img.dtype}")
    return np.ascontiguousarray(img[..., :3])


def read_frames(info: VideoInfo, start: int = 0, end: int | None = None) -> Iterator[np.ndarray]:
    """Yield frames start..end-1 of ``info``'s video as (H, W, 3) uint8 RGB arrays, in stream order."""
    end = info.frames if end is None else end
    if not 0 <= start <= end <= info.frames:
        raise UserError(f"frame range {start}:{end} is outside the video's {info.frames} frames")
    if info.kind == "frames":
        for f in frame_files(info.path)[start:end]:
            img = _read_image(f)
            if img.shape[:2] != (info.height, info.width):
                raise UserError(f"{f}: size {img.shape[1]}x{img.shape[0]} differs from the first frame's "
                                f"{info.width}x{info.height}")
            yield img
        return
    if start == end:
        return
    if info.pts is None:
        yield from _decode_sequential(info, start, end)
    else:
        yield from _decode_indexed(info, start, end)


class _LostPlace(Exception):
    """The decoder's frames do not match the index (no timestamps, or other ones): count frames instead."""


def _decode_indexed(info: VideoInfo, start: int, end: int) -> Iterator[np.ndarray]:
    """Seek to the keyframe before frame ``start`` and find each frame's number by its timestamp."""
    emitted = 0
    try:
        for frame in _indexed(info, start, end):
            emitted += 1
            yield frame
    except _LostPlace:
        if emitted:  # frames already given out: their numbering was right; go on counting
            yield from _decode_sequential(info, start + emitted, end)
        else:
            yield from _decode_sequential(info, start, end)


def _indexed(info: VideoInfo, start: int, end: int) -> Iterator[np.ndarray]:
    pts = info.pts
    with av.open(str(info.path)) as container:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        if start > 0:
            container.seek(int(pts[start]), stream=vs, backward=True, any_frame=False)
        want = start
        for frame in _decode_frames(container, vs, info):
            if frame.pts is None:
                raise _LostPlace
            i = int(np.searchsorted(pts, frame.pts))
            if i >= len(pts) or pts[i] != frame.pts:
                raise _LostPlace
            if i < want:
                continue  # decoded from the keyframe on, before the range
            if i > want:
                if want == start:  # the seek landed past the first wanted frame
                    raise _LostPlace
                raise UserError(f"{info.path}: frame {want} cannot be decoded (the file is damaged there)")
            yield _to_rgb(frame)
            want += 1
            if want >= end:
                return
    if want < end:
        raise UserError(f"{info.path}: only frames up to {want - 1} decode, {info.frames} were indexed "
                        "(the file is damaged or was cut short)")


def _decode_sequential(info: VideoInfo, start: int, end: int) -> Iterator[np.ndarray]:
    """Decode from the start, numbering frames by their order."""
    i = 0
    with av.open(str(info.path)) as container:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        for frame in _decode_frames(container, vs, info):
            if i >= end:
                return
            if i >= start:
                yield _to_rgb(frame)
            i += 1
    if i < end:
        raise UserError(f"{info.path}: only {i} frames decode, {end} were expected (the file is damaged or was "
                        "cut short)")


def _decode_frames(container, vs, info: VideoInfo):
    try:
        yield from container.decode(vs)
    except av.error.FFmpegError as err:
        raise UserError(f"{info.path}: cannot be decoded further ({err.strerror or type(err).__name__})") from None


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB24 pixels, converting with the matrix the stream is tagged with (BT.709 for HD)."""
    space = int(frame.colorspace) if frame.format.name.startswith("yuv") else None
    src = "itu709" if space == 1 else None
    return frame.reformat(format="rgb24", src_colorspace=src).to_ndarray()
