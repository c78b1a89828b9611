"""Shared helpers: small synthetic videos written with PyAV, and the real frames' folder."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lvtino.runtime import tune_cpu_allocator

tune_cpu_allocator()  # as the command line does: large temporaries are reused, not re-mapped

REAL_FRAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "adobe240-street"
# the benchmark scripts' helpers that tests check the product against (the folder is not a package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


@pytest.fixture(autouse=True, scope="session")
def _own_caches(tmp_path_factory):
    """Prompt embeddings cached in a folder of the test session (and its subprocesses), not the user's."""
    import os

    os.environ["LVTINO_CACHE"] = str(tmp_path_factory.mktemp("lvtino-cache"))


def smooth_frames(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8: moving smooth gradients plus mild noise (codec-friendly, not flat)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        r = 128 + 90 * np.sin((xx + 3 * t) / 17.0)
        g = 128 + 90 * np.cos((yy - 2 * t) / 13.0)
        b = 128 + 60 * np.sin((xx + yy + 5 * t) / 29.0)
        img = np.stack([r, g, b], -1) + rng.normal(0, 3, (height, width, 3))
        out[t] = np.clip(img, 0, 255).round().astype(np.uint8)
    return out


def encode_frames(container, stream, frames, times=None, time_base=None) -> None:
    """Encode RGB frames (uint8, or uint16 for deep video) into ``stream`` at its pixel format, and flush it;
    ``times``: each frame's pts (default 0, 1, 2, ...) in ``time_base``."""
    for i, f in enumerate(frames):
        rgb = "rgb48le" if f.dtype == np.uint16 else "rgb24"
        vf = av.VideoFrame.from_ndarray(f, format=rgb).reformat(format=stream.pix_fmt)
        vf.pts = i if times is None else times[i]
        if time_base is not None:
            vf.time_base = time_base
        for p in stream.encode(vf):
            container.mux(p)
    for p in stream.encode():
        container.mux(p)


def write_video(path: Path, frames: np.ndarray, fps=Fraction(30), audio_seconds: float | None = None,
                codec: str = "libx264", gop: int = 12, audio_codec: str = "aac", times_ms: list[int] | None = None,
                container_format: str | None = None, pix_fmt: str = "yuv444p") -> Path:
    """Encode frames (T, H, W, 3) uint8; with ``audio_seconds``, add a 440 Hz tone of that length. ``times_ms``:
    each frame's time in milliseconds (a variable frame rate); ``container_format``: e.g. "h264" for a raw
    stream."""
    fps = Fraction(fps)
    time_base = Fraction(1, 1000) if times_ms is not None else 1 / fps
    with av.open(str(path), "w", format=container_format) as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height = frames.shape[2], frames.shape[1]
        vs.pix_fmt = "bgr0" if codec == "ffv1" else pix_fmt
        if codec == "libx264":
            vs.options = {"g": str(gop), "crf": "10", "bf": "2"}
        vs.time_base = time_base
        a_s = None
        if audio_seconds:
            a_s = c.add_stream(audio_codec, rate=48000)
            a_s.layout = "stereo"
        encode_frames(c, vs, frames, times_ms, time_base)
        if a_s is not None:
            n = int(48000 * audio_seconds)
            t = np.arange(n) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            fmt = "fltp" if audio_codec in ("aac", "libopus") else "s16"
            pts = 0
            for s in range(0, n, 1024):
                chunk = np.stack([tone[s:s + 1024]] * 2)
                if fmt == "s16":
                    af = av.AudioFrame.from_ndarray((chunk.T.reshape(1, -1) * 32767).astype(np.int16), format="s16",
                                                    layout="stereo")
                else:
                    af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                af.sample_rate, af.pts = 48000, pts
                pts += chunk.shape[1]
                for p in a_s.encode(af):
                    c.mux(p)
            for p in a_s.encode():
                c.mux(p)
    return path


def killed_after_segments(args, n: int) -> None:
    """Run ``lvtino ARGS`` in a process of its own and kill it (-9) once exactly ``n`` segments are closed: the
    process stops itself there (``LVTINO_STOP_AFTER_SEGMENTS``) and the kill follows the stop, not a clock. Fails
    if the process ends before stopping."""
    import os
    import signal
    import subprocess

    env = {**os.environ, "LVTINO_STOP_AFTER_SEGMENTS": str(n)}
    proc = subprocess.Popen([sys.executable, "-m", "lvtino", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    stopped = os.WIFSTOPPED(status)
    if stopped:
        os.kill(proc.pid, signal.SIGKILL)
        os.waitpid(proc.pid, 0)
    proc.returncode = -9  # reaped here: Popen must not wait for it again
    assert stopped, f"lvtino {' '.join(map(str, args[:3]))}: ended before closing {n} segments"


def audio_seconds(path: Path) -> float:
    """Length of the first audio stream, from its decoded samples."""
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        return sum(f.samples for f in c.decode(a)) / a.codec_context.sample_rate


@pytest.fixture(scope="session")
def real_frames() -> Path:
    if not REAL_FRAMES.is_dir():
        pytest.skip(f"the 41 real street frames (640x360, from the Adobe240 set) are not at {REAL_FRAMES}: they come "
                    "with the project's shared data folder beside the clone (see the README)")
    return REAL_FRAMES
