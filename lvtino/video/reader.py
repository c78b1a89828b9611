"""Streaming video input: a file PyAV decodes, or a folder of numbered image frames.

``probe`` reads what a restoration needs to know without decoding pictures;
``read_frames`` yields RGB frames (H, W, 3) uint8 one at a time, from frame
``start`` to ``end`` (exclusive), seeking to the keyframe before ``start``.
"""

from __future__ import annotations

import json
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


@dataclass
class VideoInfo:
    path: Path
    kind: str  # "video" or "frames"
    fps: Fraction
    frames: int
    width: int
    height: int
    rotation: int = 0
    color: dict = field(default_factory=dict)  # primaries, trc, space, range (codec values)
    has_audio: bool = False
    metadata: dict = field(default_factory=dict)  # lvtino's own entry, if the file carries one


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def frame_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=_natural_key)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")


def probe(path: str | Path, fps: Fraction | float | None = None) -> VideoInfo:
    """Describe a video file or a frame folder (``fps`` applies to folders; default 30)."""
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        return _probe_folder(path, fps)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError):
        raise UserError(f"{path}: not a video PyAV can decode") from None
    with container:
        if not container.streams.video:
            raise UserError(f"{path}: has no video frames (no video stream)")
        vs = container.streams.video[0]
        cc = vs.codec_context
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        if not rate:
            raise UserError(f"{path}: frame rate unknown")
        n = vs.frames or _count_packets(container, vs)
        meta = _parse_metadata(_tag(container.metadata, METADATA_KEY))
        info = VideoInfo(
            path=path, kind="video", fps=Fraction(rate), frames=n, width=cc.width, height=cc.height,
            color={"primaries": int(cc.color_primaries), "trc": int(cc.color_trc),
                   "space": int(cc.colorspace), "range": int(cc.color_range)},
            has_audio=bool(container.streams.audio), metadata=meta,
        )
        if info.frames:
            info.rotation = _first_rotation(container, vs)
    if info.frames == 0:
        raise UserError(f"{path}: the video has zero frames")
    return info


def _count_packets(container, vs) -> int:
    n = sum(1 for p in container.demux(vs) if p.size > 0)
    container.seek(0)
    return n


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
    record = _load_json(sidecar.read_text()) if sidecar.is_file() else {}
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
    """Yield frames start..end-1 of ``info``'s video as (H, W, 3) uint8 RGB arrays."""
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
    yield from _decode_range(info, start, end)


def _decode_range(info: VideoInfo, start: int, end: int) -> Iterator[np.ndarray]:
    if start == end:
        return
    with av.open(str(info.path)) as container:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        t0 = vs.start_time or 0
        tb = vs.time_base
        seeked = False
        if start > 0 and tb:
            target = t0 + int(Fraction(start) / info.fps / tb)
            container.seek(target, stream=vs, backward=True, any_frame=False)
            seeked = True
        index, emitted = None, 0
        for frame in container.decode(vs):
            if frame.pts is not None and tb:
                index = round((frame.pts - t0) * tb * info.fps)
            elif index is None:
                index = 0
            else:
                index += 1
            if seeked and emitted == 0 and (frame.pts is None or index > start):
                # the seek landed past the first wanted frame, or left no timestamps to
                # find our place by: decode from the beginning instead
                yield from _decode_sequential(info, start, end)
                return
            if index >= end:
                break
            if index >= start:
                emitted += 1
                yield _to_rgb(frame)


def _decode_sequential(info: VideoInfo, start: int, end: int) -> Iterator[np.ndarray]:
    with av.open(str(info.path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= end:
                break
            if i >= start:
                yield _to_rgb(frame)


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB24 pixels, converting with the matrix the stream is tagged with (BT.709 for HD)."""
    space = int(frame.colorspace) if frame.format.name.startswith("yuv") else None
    src = "itu709" if space == 1 else None
    return frame.reformat(format="rgb24", src_colorspace=src).to_ndarray()
