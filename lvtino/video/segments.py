"""The output as closed segments, joined at the end by stream copy: bounded scratch disk, resumable output.

A segment is a complete file in the output's own container and encoding
(``lvtino.video.formats.Encoding``; for a frame-folder output, a folder of its
image frames) that holds a run of
consecutive final frames. It is written under a temporary name and renamed
when closed to a name that carries its first frame, its frame count and the
CRC-32 of its bytes, so a closed segment is never partial, a segment changed
since (a disk that lost what it said it wrote) is found and made again, and
once closed the windows its frames came from are no longer needed. At the end every segment's packets
are copied into the final file in order, without re-encoding: timestamps are
rebuilt as one continuous stream (decode timestamps shifted by the largest
B-frame delay of any segment, so they increase by one frame everywhere), the
audio is copied and cut, the metadata and rotation set, and the file is renamed
into place. A resumed run keeps every closed segment and encodes only what
follows them. Each segment of a coded video starts with a key frame: segments of
one window's frames cost a few percent in file size.

``Encoder`` converts and encodes segments on a background thread with a
bounded queue, so that the next window is restored meanwhile.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import queue
import re
import shutil
import signal
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from lvtino.errors import UserError, arg
from lvtino.files import atomic_file, file_crc, fsync_folder, partial_name, place, remove_stale_partials, remove_tree
from lvtino.video.convert import tensor_to_frames
from lvtino.video.reader import METADATA_KEY, SIDECAR
from lvtino.video.formats import Encoding
from lvtino.video.writer import AudioTrack, VideoWriter, turned_note

log = logging.getLogger("lvtino")
NAME = re.compile(r"^segment-(\d{9})-(\d{6})-([0-9a-f]{8})(\.\w+)?$")  # first frame, count, CRC-32
MERGE = 32  # closed segments merged into one, to keep the per-file overhead small
# for tests of kills, resumes and disk use: the process stops itself (SIGSTOP) once this many segments are closed in
# it, by all its runs (a batch's items) together ("every": after each one), so that a test acts at a known point
# instead of racing it with a clock
STOP_AFTER = "LVTINO_STOP_AFTER_SEGMENTS"
_closed_in_process = itertools.count(1)


@dataclass(frozen=True)
class Segment:
    first: int  # output frame index of its first frame
    count: int
    path: Path

    @property
    def end(self) -> int:
        return self.first + self.count


class Segments:
    """Closed segments of output frames [start, end) in ``folder``; ``write`` adds one, ``join`` makes the file."""

    def __init__(self, folder: Path, output: Path, fps: Fraction, start: int, end: int,
                 encoding: Encoding | None = None, rotation: int = 0):
        """``encoding``: what the output is written as, settled for its input (the output path's default format
        at 8 bits when not given)."""
        self.rotation = rotation  # a frame folder's frames are written turned by it (a video file gets the tag)
        self.folder, self.output = Path(folder), Path(output)
        self.encoding = encoding or Encoding.choose(self.output).for_input()
        self.frames = self.encoding.format.folder  # a folder of image frames, joined by links
        self.image = self.encoding.format.encoder if self.frames else None  # the frames' suffix
        self.suffix = "" if self.frames else self.output.suffix
        self.fps = Fraction(fps)
        self.start, self.end = start, end

    def open(self) -> "Segments":
        """Make the folder ready for this range: segments of another range or format go, and so does a segment
        never closed (a kill while it was written); the closed ones stay for ``covered``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"start": self.start, "end": self.end, "output": self.output.suffix,
                  "encoding": self.encoding.settings()}
        stamp = self.folder / "range.json"
        if not stamp.is_file() or _read_json(stamp) != record:
            for p in self.folder.iterdir():
                remove_tree(p)
            stamp.write_text(json.dumps(record))
        for p in self.folder.iterdir():
            if p.name != "range.json" and not NAME.match(p.name):
                remove_tree(p)
        return self

    def closed(self) -> list[Segment]:
        found = []
        for p in self.folder.iterdir():
            m = NAME.match(p.name)
            if m and (m.group(4) or "") == self.suffix:
                found.append(Segment(int(m.group(1)), int(m.group(2)), p))
        return sorted(found, key=lambda s: s.first)

    def covered(self) -> int:
        """Output frames [start, covered) lie in whole closed segments; a damaged segment (a disk that lost what it
        said it wrote, bytes changed since) and every segment after a gap are removed, and their frames made
        again."""
        at = self.start
        for seg in self.closed():
            if seg.first == at and seg.end <= self.end and self._whole(seg):
                at = seg.end
            else:
                remove_tree(seg.path)
        return at

    def _whole(self, seg: Segment) -> bool:
        try:
            unchanged = file_crc(seg.path) == int(NAME.match(seg.path.name).group(3), 16)
        except OSError:
            unchanged = False
        if not unchanged:
            log.info("%s: a closed segment (frames %d to %d) is damaged; its frames will be made again", self.output,
                     seg.first, seg.end - 1)
            return False
        if self.frames:
            return all((seg.path / f"{k:06d}{self.image}").is_file()
                       and (seg.path / f"{k:06d}{self.image}").stat().st_size > 0 for k in range(seg.count))
        try:
            with av.open(str(seg.path)) as src:
                return sum(1 for p in src.demux(src.streams.video[0]) if p.size > 0) == seg.count
        except (av.error.FFmpegError, IndexError, OSError):
            return False

    def write(self, first: int, frames: np.ndarray) -> Segment:
        """Encode frames (n, H, W, 3) (uint8, or uint16 for a deep output) as the segment starting at output frame
        ``first``; closed on return."""
        path = self._open_name(first)
        if self.frames and self.rotation % 360:  # a folder of images has no rotation tag: turned
            frames = np.ascontiguousarray(np.rot90(frames, k=(self.rotation // 90) % 4, axes=(1, 2)))
        # the writer's notices (an odd size padded) are said once, for the output, when the run is planned
        with VideoWriter(path, self.fps, self.encoding) as writer:
            for frame in frames:
                writer.write(frame)
        return self._close(path, first, len(frames))

    def _open_name(self, first: int) -> Path:
        """Where a segment is written before it is closed (a hidden name that ``closed`` never lists)."""
        return self.folder / f".open-{first:09d}{self.suffix}"

    def _close(self, path: Path, first: int, count: int) -> Segment:
        """Rename a written segment to its closed name, which carries the CRC-32 of its bytes."""
        seg = Segment(first, count, self.folder / f"segment-{first:09d}-{count:06d}-{file_crc(path):08x}{self.suffix}")
        remove_tree(seg.path)
        os.replace(path, seg.path)
        fsync_folder(self.folder)
        return seg

    def size(self) -> int:
        return sum(_size(s.path) for s in self.closed())

    def join(self, metadata: dict | None = None, audio_from: str | Path | None = None,
             audio_range: tuple[float, float | None] | None = None, rotation: int = 0) -> None:
        """The final output from the closed segments (which must cover [start, end)), renamed into place."""
        if not self.output.parent.is_dir():
            raise UserError(f"{self.output}: its folder {self.output.parent} was moved or removed while the run "
                            f"worked, with the run's state folder; nothing was written: put the folder back and run "
                            f"the command again with {arg('resume')}, or run it again")
        if not self.folder.is_dir():
            raise UserError(f"{self.output}: the run's state folder {self.folder.parent} was removed while it worked, "
                            "and the restored frames with it; nothing was written: run the command again")
        segments = [s for s in self.closed() if self.start <= s.first < self.end]
        covered = self.covered()
        if covered != self.end:
            raise UserError(f"{self.output}: the restored frames from {covered} on are missing from the state folder "
                            f"{self.folder.parent} (removed or changed while the run worked); nothing was written: "
                            "run the command again")
        remove_stale_partials(self.output)
        if self.frames:
            self._join_frames(segments, metadata or {})
        else:
            self._join_video(segments, metadata or {}, audio_from, audio_range, rotation)

    def _join_frames(self, segments: list[Segment], metadata: dict) -> None:
        if self.rotation % 360:
            turned_note(self.output, self.rotation)
        tmp = partial_name(self.output)
        remove_tree(tmp)
        tmp.mkdir()
        try:
            name = f"{{:06d}}{self.image}"
            for seg in segments:  # hard links: no second copy on disk, and the segments stay whole until the end
                for k in range(seg.count):
                    _link(seg.path / name.format(k), tmp / name.format(seg.first - self.start + k))
            (tmp / SIDECAR).write_text(json.dumps({"fps": str(self.fps.limit_denominator(1_000_000)),
                                                   "lvtino": metadata}, indent=1))
            place(tmp, self.output)
        except BaseException:
            remove_tree(tmp)
            raise

    def _join_video(self, segments: list[Segment], metadata: dict, audio_from, audio_range, rotation) -> None:
        with atomic_file(self.output, self.output.suffix) as tmp:
            self._remux(segments, tmp, self.start, metadata, (audio_from, audio_range), rotation)

    def merge(self, segments: list[Segment]) -> Segment:
        """One closed segment from consecutive ones, by stream copy (then the small ones go): per-file container
        overhead stays small however long the video."""
        first, count = segments[0].first, sum(s.count for s in segments)
        path = self._open_name(first)
        with atomic_file(path, self.suffix) as tmp:
            self._remux(segments, tmp, first)
        merged = self._close(path, first, count)
        for seg in segments:
            remove_tree(seg.path)
        return merged

    def _remux(self, segments: list[Segment], path: Path, start: int, metadata: dict | None = None,
               audio: tuple | None = None, rotation: int = 0) -> None:
        """The segments' packets into one file, timestamps rebuilt as one stream starting at frame ``start``:
        presentation times from each segment's own order and first frame, decode times one frame apart, shifted
        by the largest B-frame delay of any segment."""
        fps = self.fps.limit_denominator(1_000_000)
        delay = max(_delay(s.path, fps) for s in segments)
        with av.open(str(path), mode="w", options={"fflags": "+bitexact"}) as out:  # as VideoWriter's
            if metadata:
                out.metadata[METADATA_KEY] = json.dumps({"lvtino": metadata})
            with av.open(str(segments[0].path)) as first:
                # opaque: the codec parameters as they are, without looking up an encoder by the decoder's name
                # (AV1 is read by libdav1d, which encodes nothing)
                stream = out.add_stream_from_template(first.streams.video[0], opaque=True)
            stream.codec_context.framerate = fps  # the muxer's average rate (Matroska's default duration)
            if self.encoding.codec_tag:  # not carried by the template: the muxer would choose its own (hev1)
                stream.codec_context.codec_tag = self.encoding.codec_tag
            if rotation:
                stream.set_display_rotation(rotation)
            track = AudioTrack(out, self.encoding.container, audio[0], self.output) if audio and audio[0] else None
            decode_index = 0
            for seg in segments:
                with av.open(str(seg.path)) as src:
                    vs = src.streams.video[0]
                    packets = [p for p in src.demux(vs) if p.dts is not None]
                    base = min(p.pts for p in packets)
                    for p in packets:
                        p.pts = round((p.pts - base) * vs.time_base * fps) + seg.first - start
                        p.dts = decode_index - delay
                        p.duration = 1
                        p.time_base = 1 / fps
                        p.stream = stream
                        out.mux(p)
                        decode_index += 1
            if track is not None:
                track.copy(*(audio[1] or (0.0, None)))
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _delay(path: Path, fps: Fraction) -> int:
    """How many frames a segment's decode order runs ahead of its presentation order (B-frames)."""
    with av.open(str(path)) as src:
        vs = src.streams.video[0]
        time_base = vs.time_base  # read while the file is open: a closed container's streams are freed memory
        pts = [p.pts for p in src.demux(vs) if p.dts is not None]
    base = min(pts)
    return max(j - round((p - base) * time_base * fps) for j, p in enumerate(pts))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir())
    return path.stat().st_size


class Encoder:
    """Segments encoded on a background thread: ``submit`` hands over float frames while the caller goes on.

    At most ``depth`` segments are open (queued or being encoded) at a time, so
    the windows kept for them stay few. ``closed`` is the output frame up to which
    every frame lies in a closed segment; an error of the worker (a full disk) is
    raised by the next ``submit`` or ``wait``.
    """

    def __init__(self, segments: Segments, covered: int, depth: int = 1):
        self.segments = segments
        self.closed = covered
        self._bytes = 0  # the closed segments' files
        self._open = threading.Semaphore(depth)
        self._small: list[Segment] = []  # closed segments not merged yet
        self._changed = threading.Condition()
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        stop = os.environ.get(STOP_AFTER, "0") or "0"
        self._stop_after = -1 if stop == "every" else int(stop)
        # the worker runs in the caller's context: what it says keeps the caller's words (--pix-fmt, or pix_fmt=)
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._work,),
                                        name="lvtino-encoder", daemon=True)

    def start(self) -> "Encoder":
        """Count the segments already closed and start the thread."""
        self._bytes = self.segments.size()
        self._thread.start()
        return self

    def submit(self, first: int, frames: torch.Tensor) -> None:
        """Frames (1, 3, n, H, W) in [-1, 1], output frames first .. first + n - 1, as one segment."""
        self._raise()
        while not self._open.acquire(timeout=0.5):  # wake up now and then to report a worker's failure
            self._raise()
        self._queue.put((first, frames.detach().cpu()))

    def wait_closed(self, frame: int) -> None:
        """Until every output frame before ``frame`` lies in a closed segment (or the worker failed)."""
        with self._changed:
            while self.closed < frame and self._error is None and self._thread.is_alive():
                self._changed.wait(timeout=0.5)

    def wait(self) -> None:
        """Until every submitted segment is closed."""
        self._queue.put(None)
        self._thread.join()
        self._raise()

    def scratch_bytes(self) -> int:
        """The closed segments' files (the segment being encoded is not counted until it closes)."""
        return self._bytes

    def stop(self) -> None:
        """After a failure elsewhere: let the worker finish what it holds, and end it."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=60)

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # drain: nothing more is written after a failure
            first, frames = item
            try:
                bits = self.segments.encoding.frame_bits
                seg = self.segments.write(first, np.stack(list(tensor_to_frames(frames, bits))))
                self._bytes += _size(seg.path)
                self._small.append(seg)
                if len(self._small) >= MERGE and not self.segments.frames:
                    small = sum(_size(s.path) for s in self._small)
                    merged = self.segments.merge(self._small)
                    self._bytes += _size(merged.path) - small
                    self._small = []
                self.closed = seg.end
                if next(_closed_in_process) == self._stop_after or self._stop_after == -1:
                    os.kill(os.getpid(), signal.SIGSTOP)
            except BaseException as err:  # noqa: BLE001  (handed to the main thread)
                self._error = err
            finally:
                self._open.release()
                with self._changed:
                    self._changed.notify_all()
