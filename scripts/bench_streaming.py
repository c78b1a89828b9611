"""Streaming restore against video length: speed, peak memory, and the cost of everything but the prior.

For 1x, 2x, 4x and 8x a base length, makes a Problem A measurement (4x fewer
frames at 4x lower resolution) of a moving pattern, restores it with
``lvtino restore --prior pinv --stats`` in a fresh process (so each peak RSS is
its own), and prints side by side in one run:

- frames per second and peak RSS of each run (goal: 8x length within 1.2x the peak);
- the seconds spent outside the prior (decode, windowing, joining, encoding, state
  files; from the per-stage seconds of --stats) against plain PyAV decoding of
  the same measurement plus encoding of the same output frames with the same
  settings (goal: within 1.2x).

    python scripts/bench_streaming.py [--frames 100] [--size 360x640] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

OUTSIDE = ("read", "join", "write", "state", "residual", "load")


def pattern(frames: int, h: int, w: int, seed: int = 0):
    """Smooth moving colour fields plus mild noise, one frame at a time."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for t in range(frames):
        img = np.stack([128 + 90 * np.sin((xx + 0.7 * t) / 9.0), 128 + 90 * np.cos((yy - 0.5 * t) / 7.0),
                        128 + 60 * np.sin((xx + yy + t) / 15.0)], -1) + rng.normal(0, 2, (h, w, 3))
        yield np.clip(img, 0, 255).astype(np.uint8)


def write_measurement(path: Path, frames: int, h: int, w: int, fps: Fraction) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "bgr0"
        for f in pattern(frames, h, w):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="bgr0")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def plain_decode_encode(measured: Path, restored: Path, out: Path, fps: Fraction) -> float:
    """Seconds to decode the measurement and encode the restored frames (decoded beforehand) with PyAV alone."""
    with av.open(str(restored)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    t0 = time.perf_counter()
    with av.open(str(measured)) as c:
        for f in c.decode(video=0):
            f.to_ndarray(format="rgb24")
    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        s.options = {"crf": "18", "preset": "medium"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="output frames of the 1x video (default 100)")
    parser.add_argument("--size", default="360x640", help="output HxW (default 360x640)")
    parser.add_argument("--scales", default="1,2,4,8")
    parser.add_argument("--keep", default=None, help="keep the videos in this folder")
    args = parser.parse_args()
    H, W = (int(v) for v in args.size.split("x"))
    folder = Path(args.keep or tempfile.mkdtemp(prefix="lvtino-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    fps = Fraction(30000, 1001)
    rows = []
    for scale in (int(s) for s in args.scales.split(",")):
        frames = args.frames * scale
        y, x, stats = folder / f"y{scale}.mkv", folder / f"x{scale}.mp4", folder / f"s{scale}.json"
        write_measurement(y, frames // 4, H // 4, W // 4, fps / 4)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "lvtino", "restore", str(y), "-o", str(x), "--problem", "A",
                               "--prior", "pinv", "--stats", str(stats)], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        s = json.loads(stats.read_text())
        stages = s["seconds_per_stage"]
        outside = sum(stages.get(k, 0.0) for k in OUTSIDE)
        plain = plain_decode_encode(y, x, folder / f"plain{scale}.mp4", fps)
        rows.append(dict(scale=scale, frames=s["frames"], windows=s["windows"], seconds=s["seconds"], wall=wall,
                         rss=s["peak_memory_mb"], prior=stages["prior"], outside=outside, plain=plain,
                         stages=stages))
    print(f"Problem A, --prior pinv, {W}x{H} output, windows of 24 frames (overlap 8); one run each\n")
    print(f"{'length':>6} {'frames':>6} {'windows':>7} {'fps':>7} {'peak RSS MB':>11} {'RSS/1x':>6} "
          f"{'prior s':>7} {'outside s':>9} {'plain s':>7} {'outside/plain':>13}")
    base = rows[0]["rss"]
    for r in rows:
        print(f"{str(r['scale']) + 'x':>6} {r['frames']:>6} {r['windows']:>7} {r['frames'] / r['seconds']:>7.1f} "
              f"{r['rss']:>11.0f} {r['rss'] / base:>6.2f} {r['prior']:>7.2f} {r['outside']:>9.2f} "
              f"{r['plain']:>7.2f} {r['outside'] / r['plain']:>13.2f}")
    last = rows[-1]
    print(f"\nstages at {last['scale']}x: " + ", ".join(f"{k} {v:.2f} s" for k, v in last["stages"].items()))
    print(f"peak RSS {last['scale']}x / 1x: {last['rss'] / base:.2f} (goal <= 1.2); "
          f"outside the prior / plain decode+encode at {last['scale']}x: {last['outside'] / last['plain']:.2f} "
          "(goal <= 1.2)")
    if not args.keep:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
