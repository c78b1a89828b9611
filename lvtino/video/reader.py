"""Streaming video input: a file PyAV decodes, or a folder of numbered image frames.

``probe`` reads what a restoration needs to know without decoding pictures: it
demuxes the video stream once and keeps every frame's timestamp, so frames are
numbered by their order in the stream, whatever the frame rate does (a
variable-frame-rate phone clip loses no frame), and a frame range seeks to the
right keyframe. A file whose video stream promises more frames than it holds
(cut short by a crash or a copy) is refused unless ``accept_truncated``.
``read_frames`` yields RGB frames (H, W, 3) uint8 one at a time, from frame
``start`` to ``end`` (exclusive).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import imageio.v3 as iio
import numpy as np

from lvtino.errors import UserError, said
from lvtino.files import check_name
from lvtino.validation import parse_json, read_text_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SIDECAR = "lvtino.json"  # metadata of a frame folder written by lvtino
METADATA_KEY = "comment"  # container tag that carries lvtino's metadata (kept by mp4 and mkv)
MAX_METADATA = 1 << 20  # bytes of lvtino's metadata (a few hundred are written)
MAX_SIDE = 16_384  # the largest frame side read: 16K (8K video is 7680x4320)
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
    expected_frames: int | None = None  # what the video stream promises (count or duration), when it says
    notices: list[str] = field(default_factory=list)  # what reading it does that the user should know
    bits: int = 8  # bits per colour component as stored (10, 12, 16 for deep video files; folders read at 8)
    stream: int = 0  # which of the file's video streams holds the video (``video_stream``)

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

    def notes(self) -> list[str]:
        """Lines for the user on how the input is read: a variable rate, gaps in a frame folder's numbering, an
        alpha channel dropped."""
        return [n for n in (self.rate_note(), *self.notices) if n]


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def frame_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=_natural_key)


def _check_exists(path: Path) -> None:
    """A file or folder to read: anything else (a pipe, a device, a socket) could block or never end."""
    check_name(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{path}: no such file or folder") from None
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror})") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UserError(f"{path}: not a regular file or folder (a pipe, socket or device); save the video to a file "
                        "first")


def probe(path: str | Path, fps: Fraction | float | None = None, accept_truncated: bool = False) -> VideoInfo:
    """Describe a video file or a frame folder (``fps`` applies to folders; default 30)."""
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        return _probe_folder(path, fps)
    with _open(path) as container:
        index, notice = _choose_stream(container, path)
        vs = container.streams.video[index]
        cc = vs.codec_context
        if cc is None:  # a damaged header, or a codec FFmpeg does not know
            raise UserError(f"{path}: its video stream's codec cannot be read (the file is damaged, or its codec is "
                            "unknown to FFmpeg)")
        _check_size(path, cc.width, cc.height)
        pts, dropped = _frame_timestamps(container, vs, path)
        if pts is None:  # no timestamps to index by: count the packets (from the start, in a fresh pass)
            with _open(path) as again:
                n = _count_packets(again, again.streams.video[index], path)
        else:
            n = len(pts)
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
            expected_frames=_promised_frames(vs, pts, n, rate, dropped), bits=_bits(cc), stream=index,
            notices=[notice] if notice else [],
        )
    if info.frames:
        with _open(path) as container:  # a fresh pass: raw streams (.h264) cannot seek back
            info.rotation = _first_rotation(container, container.streams.video[index])
    if info.frames == 0:
        raise UserError(f"{path}: the video has zero frames")
    if info.expected_frames is not None and info.frames < info.expected_frames and not accept_truncated:
        raise UserError(f"{path}: the video stream promises {info.expected_frames} frames but holds {info.frames}: "
                        f"the file looks truncated or damaged; pass {said('accept_truncated', True)} to use the "
                        "frames it holds")
    return info


def _choose_stream(container, path: Path) -> tuple[int, str | None]:
    """The video stream, chosen as ffmpeg chooses: pictures attached to the file (cover art, a thumbnail) are not
    video; of the others, the one of most pixels (the first of equals). With several, a notice says which."""
    streams = list(container.streams.video)
    moving = [i for i, s in enumerate(streams) if not _attached_picture(s)]
    if not moving:
        what = "only a picture attached to the file, cover art or a thumbnail" if streams else "no video stream"
        raise UserError(f"{path}: has no video frames (no video stream: {what})" if streams else
                        f"{path}: has no video frames (no video stream)")
    if len(moving) == 1 and len(streams) == 1:
        return moving[0], None

    def pixels(i):
        cc = streams[i].codec_context
        return (cc.width * cc.height) if cc is not None else -1

    best = max(moving, key=lambda i: (pixels(i), -i))
    cc = streams[best].codec_context
    others = len(streams) - 1
    pictures = len(streams) - len(moving)
    besides = ", ".join(f"{n} {w}" for n, w in ((len(moving) - 1, "other video stream(s)"),
                                                 (pictures, "attached picture(s)")) if n)
    return best, (f"{path}: {others + 1} video streams ({besides}); reading stream {streams[best].index} "
                  f"({cc.width}x{cc.height}), as ffmpeg would")


def _attached_picture(stream) -> bool:
    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):
        return False


def _bits(cc) -> int:
    """The deepest colour component of the stream's pixel format (8 when it cannot be told)."""
    try:
        return max((c.bits for c in cc.format.components), default=8) or 8
    except (AttributeError, ValueError):
        return 8


def _open(path: Path):
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError):
        raise UserError(f"{path}: not a video PyAV can decode (or a file cut short before its index)") from None


def _frame_timestamps(container, vs, path: Path) -> tuple[np.ndarray | None, int]:
    """Every shown frame's pts in presentation order, from one demux of the stream (no decoding), and how many
    packets an edit list hides (a cut made by stream copy keeps the frames from the key frame before the cut, and
    players, like the decoder, drop those before it); None when the container leaves packets without timestamps
    (then frames are counted as they decode)."""
    pts = []
    dropped = 0
    try:
        for packet in container.demux(vs):
            if packet.size <= 0:
                continue
            if packet.is_discard:
                dropped += 1
                continue
            if packet.pts is None:
                return None, dropped
            pts.append(packet.pts)
    except av.error.FFmpegError as err:
        raise UserError(f"{path}: cannot be read to its end ({err.strerror or type(err).__name__}); the file is "
                        "damaged") from None
    if not pts:
        return np.zeros(0, dtype=np.int64), dropped
    pts = np.sort(np.asarray(pts, dtype=np.int64))
    if np.any(np.diff(pts) == 0):  # duplicate timestamps: not an index to seek by
        return None, dropped
    return pts, dropped


def _count_packets(container, vs, path: Path) -> int:
    try:
        return sum(1 for p in container.demux(vs) if p.size > 0 and not p.is_discard)
    except av.error.FFmpegError as err:
        raise UserError(f"{path}: cannot be read to its end ({err.strerror or type(err).__name__}); the file is "
                        "damaged") from None


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


def _promised_frames(vs, pts: np.ndarray | None, held: int, rate: Fraction, dropped: int = 0) -> int | None:
    """The frame count the video stream itself promises, when it says: its frame count (mp4/mov: the sample
    table), else its own duration (the stream's, or Matroska's per-track DURATION tag) against the time its
    frames cover (the count held, when they cover it). The container's duration is the longest stream's (sound
    usually runs a little longer than the picture) and promises nothing about the video. None: no claim."""
    if vs.frames:
        return int(vs.frames) - dropped  # the sample table counts the frames an edit list hides
    end = _stream_end(vs)
    if end is None:
        return None
    if pts is None or len(pts) < 2:  # no timestamps: the stream's length at its average rate
        promised = round(end * rate)
        return promised if promised > held + 1 else held  # a frame of rounding either way
    seconds = np.diff(pts) * float(vs.time_base)
    last = float(pts[-1] * vs.time_base)  # where the last held frame starts
    slack = float(seconds.max()) + 0.5 * float(np.median(seconds))  # the last frame's own length, and rounding
    if float(end) - last <= slack:
        return held  # the duration ends with the last frame held
    return held + max(1, round((float(end) - last) * float(rate)) - 1)  # frames after the last one held


def _stream_end(vs) -> Fraction | None:
    """Seconds at which the video stream says it ends: its duration in its time base, or Matroska's DURATION
    tag (HH:MM:SS.fffffffff, written per track by ffmpeg and mkvmerge)."""
    if vs.duration and vs.time_base:
        start = vs.start_time or 0
        return Fraction(int(vs.duration + start)) * vs.time_base
    m = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", (_tag(vs.metadata, "duration") or "").strip())
    if m is None:
        return None
    return Fraction(int(m.group(1)) * 3600 + int(m.group(2)) * 60) + Fraction(m.group(3))


def _first_rotation(container, vs) -> int:
    """The display rotation of the first frame (degrees, counter-clockwise), from a freshly opened container."""
    try:
        for frame in container.decode(vs):
            return int(round(frame.rotation)) % 360
    except av.error.FFmpegError as err:
        raise UserError(f"{container.name}: its first frame cannot be decoded ({err.strerror or type(err).__name__})"
                        "; the file is damaged or not a video") from None
    return 0


def _check_size(path: Path, width: int, height: int) -> None:
    """Refuse a picture size no video has (a damaged or hostile header) before decoding a frame of it."""
    if width <= 0 or height <= 0:
        raise UserError(f"{path}: no frame size can be read from it (the file is damaged, or not a video)")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise UserError(f"{path}: declares frames of {width}x{height} pixels; lvtino reads sizes up to "
                        f"{MAX_SIDE}x{MAX_SIDE} (the file is damaged, or not a video lvtino can restore)")


def _tag(tags: dict, key: str) -> str | None:
    """A container tag by name, whatever its case (Matroska stores tags upper-case)."""
    for k, v in tags.items():
        if k.lower() == key:
            return v
    return None


def _load_json(text: str | None) -> dict:
    """A JSON object written by lvtino; anything else (absent, foreign, broken, oversized, nested deeper than
    lvtino nests) reads as empty: what it holds is then checked like any recorded value."""
    if not text or len(text) > MAX_METADATA:
        return {}
    try:
        data = parse_json(text, "metadata")
    except UserError:
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
        record = _load_json(read_text_file(sidecar, "sidecar", MAX_METADATA)) if sidecar.is_file() else {}
    except UserError:
        record = {}
    meta = record.get("lvtino", {}) if isinstance(record.get("lvtino"), dict) else {}
    try:
        recorded_fps = Fraction(record["fps"]) if "fps" in record else None
    except (TypeError, ValueError, ZeroDivisionError):
        recorded_fps = None
    if fps is None:
        fps = recorded_fps or Fraction(30)
    notices = [n for n in (_numbering_gaps(path, files), _alpha_note(files[0])) if n]
    return VideoInfo(path=path, kind="frames", fps=Fraction(fps), frames=len(files),
                     width=first.shape[1], height=first.shape[0], metadata=meta, notices=notices)


def _numbering_gaps(folder: Path, files: list[Path]) -> str | None:
    """A line when the frames' numbers (the last number in each name) skip some: the frames present are taken
    as consecutive, so a missing frame shortens the clip and shifts what follows."""
    numbers = []
    for f in files:
        found = re.findall(r"\d+", f.stem)
        if not found:
            return None  # not a numbered sequence: taken in name order
        numbers.append(int(found[-1]))
    present = set(numbers)
    if len(present) != len(numbers):
        return None  # several sequences side by side (a_001, b_001): name order
    missing = sorted(set(range(min(numbers), max(numbers) + 1)) - present)
    if not missing:
        return None
    shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
    return (f"{folder}: {len(missing)} frame number(s) missing between {min(numbers)} and {max(numbers)} ({shown}); "
            f"the {len(files)} frames present are taken as consecutive frames")


def _alpha_note(first: Path) -> str | None:
    """A line when the frames carry an alpha channel, which is dropped (the colour is restored as it is stored)."""
    from PIL import Image

    try:
        with Image.open(first) as img:
            bands = img.getbands()
    except (OSError, ValueError):
        return None
    if "A" not in bands:
        return None
    return (f"{first.parent}: the frames have an alpha channel (transparency), which is dropped: the colour "
            "channels are read as stored, whatever their transparency")


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise UserError(f"{path}: not a regular file (a pipe, socket or device)")
    try:
        with Image.open(path) as header:  # the size from the header, before any pixel is decoded
            _check_size(path, *header.size)
    except Image.DecompressionBombError:
        raise UserError(f"{path}: declares an image of more than {Image.MAX_IMAGE_PIXELS * 2:,} pixels; lvtino reads "
                        f"sizes up to {MAX_SIDE}x{MAX_SIDE} (the file is damaged, or not a frame)") from None
    except (OSError, ValueError):
        pass  # not an image Pillow knows: imageio tries its other readers, and says why it cannot
    try:
        img = iio.imread(path)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"{path}: cannot read the image ({' '.join(str(err).split())[:200]})") from None
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.dtype != np.uint8:
        if img.dtype == np.uint16:
            img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
        else:
            raise UserError(f"{path}: unsupported pixel type {img.dtype}")
    return np.ascontiguousarray(img[..., :3])


def read_frames(info: VideoInfo, start: int = 0, end: int | None = None, deep: bool = False) -> Iterator[np.ndarray]:
    """Yield frames start..end-1 of ``info``'s video as (H, W, 3) uint8 RGB arrays, in stream order; ``deep``:
    as uint16 arrays when the video file stores more than 8 bits (``info.bits``), so none is lost."""
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
    fmt = "rgb48le" if deep and info.bits > 8 else "rgb24"
    if info.pts is None:
        yield from _decode_sequential(info, start, end, fmt)
    else:
        yield from _decode_indexed(info, start, end, fmt)


class _LostPlace(Exception):
    """The decoder's frames do not match the index (no timestamps, or other ones): count frames instead."""


def _decode_indexed(info: VideoInfo, start: int, end: int, fmt: str) -> Iterator[np.ndarray]:
    """Seek to the keyframe before frame ``start`` and find each frame's number by its timestamp."""
    emitted = 0
    try:
        for frame in _indexed(info, start, end, fmt):
            emitted += 1
            yield frame
    except _LostPlace:
        if emitted:  # frames already given out: their numbering was right; go on counting
            yield from _decode_sequential(info, start + emitted, end, fmt)
        else:
            yield from _decode_sequential(info, start, end, fmt)


def _indexed(info: VideoInfo, start: int, end: int, fmt: str) -> Iterator[np.ndarray]:
    pts = info.pts
    with av.open(str(info.path)) as container:
        vs = container.streams.video[info.stream]
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
            yield _to_rgb(frame, fmt)
            want += 1
            if want >= end:
                return
    if want < end:
        raise UserError(f"{info.path}: only frames up to {want - 1} decode, {info.frames} were indexed "
                        "(the file is damaged or was cut short)")


def _decode_sequential(info: VideoInfo, start: int, end: int, fmt: str = "rgb24") -> Iterator[np.ndarray]:
    """Decode from the start, numbering frames by their order."""
    i = 0
    with av.open(str(info.path)) as container:
        vs = container.streams.video[info.stream]
        vs.thread_type = "AUTO"
        for frame in _decode_frames(container, vs, info):
            if i >= end:
                return
            if i >= start:
                yield _to_rgb(frame, fmt)
            i += 1
    if i < end:
        raise UserError(f"{info.path}: only {i} frames decode, {end} were expected (the file is damaged or was "
                        "cut short)")


def _decode_frames(container, vs, info: VideoInfo):
    try:
        yield from container.decode(vs)
    except av.error.FFmpegError as err:
        raise UserError(f"{info.path}: cannot be decoded further ({err.strerror or type(err).__name__})") from None


def _to_rgb(frame: av.VideoFrame, fmt: str = "rgb24") -> np.ndarray:
    """RGB pixels (``fmt`` rgb24 or rgb48le), converting with the matrix the stream is tagged with (BT.709 for
    HD)."""
    space = int(frame.colorspace) if frame.format.name.startswith("yuv") else None
    src = "itu709" if space == 1 else None
    return frame.reformat(format=fmt, src_colorspace=src).to_ndarray()
