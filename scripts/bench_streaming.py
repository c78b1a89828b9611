"""Streaming restore and degrade against video length: memory, scratch disk, speed, and the cost of all but the prior.

For 1x to 64x a base length (Problem A measurements of a moving pattern,
restored at 640x360 with ``--prior pinv``), and for an hour of video at a small
frame size (27,000 measured frames of 8x8, restored to 108,000 frames of 32x32),
each restore runs in a fresh process and prints side by side, in one run:

- frames per second, peak RSS (the process's own high-water mark) and its ratio to 1x;
- peak scratch disk: the state folder's size, sampled every 20 ms while the run goes,
  next to the output's size and one window's size;
- the seconds outside the prior (wall time minus the prior's seconds: decoding,
  joining and seams, state files, the residual meter, encoding and the final join)
  against plain PyAV decoding of the same measurement plus encoding of the same
  output frames with the same settings;
- the time to plan an hour's windows, and peak RSS of ``degrade`` of a short and of an
  hour-long clean clip (streamed: flat).

Goals (issue "any length"): RSS and scratch flat (64x within 1.2x of 1x), an hour's
plan under a second, time outside the prior within 1.2x of plain decode + encode.

    python scripts/bench_streaming.py [--frames 100] [--size 360x640] [--scales 1,2,4,8,16,32,64] [--no-hour]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lvtino.files import tree_size  # noqa: E402


def pattern(frames: int, h: int, w: int, seed: int = 0):
    """Smooth moving colour fields plus mild noise, one frame at a time."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    s = max(1.0, w / 160)
    for t in range(frames):
        img = np.stack([128 + 90 * np.sin((xx + 0.7 * t) / (9.0 * s)), 128 + 90 * np.cos((yy - 0.5 * t) / (7.0 * s)),
                        128 + 60 * np.sin((xx + yy + t) / (15.0 * s))], -1) + rng.normal(0, 2, (h, w, 3))
        yield np.clip(img, 0, 255).astype(np.uint8)


def write_video(path: Path, frames, h: int, w: int, fps: Fraction) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "bgr0"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="bgr0")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def lvtino(args: list[str], state: Path | None = None) -> tuple[float, int]:
    """Run ``lvtino ARGS`` in a process of its own; (wall seconds, peak size of ``state`` while it ran)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lvtino", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        if state is not None and state.is_dir():
            peak = max(peak, tree_size(state))
        time.sleep(0.02)
    if proc.returncode != 0:
        sys.exit(proc.stderr.read())
    return time.perf_counter() - t0, peak


def plain_decode_encode(measured: Path, restored: Path, out: Path, fps: Fraction) -> float:
    """Seconds to decode the measurement and encode the restored frames (decoded beforehand) with PyAV alone."""
    with av.open(str(restored)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    t0 = time.perf_counter()
    with av.open(str(measured)) as c:
        for f in c.decode(video=0):
            f.to_ndarray(format="rgb24")
    with av.open(str(out), "w") as c:
        kind = out.suffix
        s = c.add_stream("libx264" if kind == ".mp4" else "ffv1", rate=fps)
        s.width, s.height = frames[0].shape[1], frames[0].shape[0]
        s.pix_fmt = "yuv420p" if kind == ".mp4" else "bgr0"
        if kind == ".mp4":
            s.options = {"crf": "18", "preset": "medium"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format=s.pix_fmt)):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return time.perf_counter() - t0


def restore_row(folder: Path, name: str, y: Path, suffix: str, fps: Fraction, extra: list[str]) -> dict:
    x, stats = folder / f"x{name}{suffix}", folder / f"s{name}.json"
    wall, scratch = lvtino(["restore", str(y), "-o", str(x), "--problem", "A", "--prior", "pinv", "--stats",
                            str(stats), "-y", *extra], folder / f".x{name}{suffix}.lvtino-state")
    s = json.loads(stats.read_text())
    stages = s["seconds_per_stage"]
    plain = plain_decode_encode(y, x, folder / f"plain{name}{suffix}", fps)
    x_size = x.stat().st_size
    window = 2 * 3 * s["window_frames"] * s["height"] * s["width"]
    for p in (x, folder / f"plain{name}{suffix}"):
        p.unlink()
    return dict(name=name, frames=s["frames"], windows=s["windows"], seconds=s["seconds"], wall=wall,
                rss=s["peak_memory_mb"], prior=stages["prior"], outside=s["seconds"] - stages["prior"], plain=plain,
                scratch=scratch, output=x_size, window=window, stages=stages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="output frames of the 1x video (default 100)")
    parser.add_argument("--size", default="360x640", help="output HxW (default 360x640)")
    parser.add_argument("--scales", default="1,2,4,8,16,32,64")
    parser.add_argument("--suffix", default=".mp4", choices=[".mp4", ".mkv"])
    parser.add_argument("--no-hour", action="store_true", help="leave out the hour at a small frame size")
    parser.add_argument("--hour", type=int, default=108_000, help="frames of the 'hour' (default 108,000: an hour "
                                                                   "at 30 fps)")
    parser.add_argument("--keep", default=None, help="keep the videos in this folder")
    args = parser.parse_args()
    H, W = (int(v) for v in args.size.split("x"))
    folder = Path(args.keep or tempfile.mkdtemp(prefix="lvtino-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    fps = Fraction(30000, 1001)
    rows = []
    for scale in (int(s) for s in args.scales.split(",")):
        frames = args.frames * scale
        y = folder / f"y{scale}.mkv"
        write_video(y, pattern(frames // 4, H // 4, W // 4), H // 4, W // 4, fps / 4)
        rows.append(restore_row(folder, f"{scale}x", y, args.suffix, fps, []))
        y.unlink()
    hour = None
    if not args.no_hour:
        y = folder / "yhour.mkv"
        write_video(y, pattern(args.hour // 4, 8, 8), 8, 8, Fraction(30, 4))
        hour = restore_row(folder, "hour", y, args.suffix, Fraction(30), [])
        rows.append(hour)
    print(f"Problem A, --prior pinv, {args.suffix} output, windows of 24 frames (overlap 8); one run each; "
          f"{W}x{H} output except 'hour' (32x32, {args.hour} frames)\n")
    print(f"{'length':>6} {'frames':>7} {'windows':>7} {'fps':>7} {'peak RSS MB':>11} {'RSS/1x':>6} "
          f"{'scratch MB':>10} {'output MB':>9} {'window MB':>9} {'prior s':>7} {'outside s':>9} {'plain s':>7} "
          f"{'outside/plain':>13}")
    base = rows[0]["rss"]
    for r in rows:
        print(f"{r['name']:>6} {r['frames']:>7} {r['windows']:>7} {r['frames'] / r['seconds']:>7.1f} "
              f"{r['rss']:>11.0f} {r['rss'] / base:>6.2f} {r['scratch'] / 2**20:>10.1f} {r['output'] / 2**20:>9.1f} "
              f"{r['window'] / 2**20:>9.1f} {r['prior']:>7.2f} {r['outside']:>9.2f} {r['plain']:>7.2f} "
              f"{r['outside'] / r['plain']:>13.2f}")
    last = [r for r in rows if r["name"] != "hour"][-1]
    print(f"\nstages at {last['name']}: " + ", ".join(f"{k} {v:.2f} s" for k, v in last["stages"].items()))
    print(f"peak RSS {last['name']} / 1x: {last['rss'] / base:.2f} (goal <= 1.2); scratch {last['name']}: "
          f"{last['scratch'] / 2**20:.1f} MB <= output {last['output'] / 2**20:.1f} MB + 3 windows "
          f"{3 * last['window'] / 2**20:.1f} MB: {last['scratch'] <= last['output'] + 3 * last['window']}; "
          f"outside the prior / plain decode+encode at {last['name']}: {last['outside'] / last['plain']:.2f} "
          "(goal <= 1.2)")
    # the plan of an hour, and degrade's memory
    code = ("import time; from lvtino.config import load_problem; from lvtino.physics.problems import build_physics;"
            "from lvtino.pipeline.windows import plan_windows; t=time.perf_counter();"
            "p=build_physics(load_problem('A').operator,(108000,720,1280));"
            "plan_windows(p.time_supports(108000),108000,4,25,8); print(time.perf_counter()-t)")
    plan = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    print(f"plan of an hour of 720p (108,000 frames, Problem A): {plan:.3f} s (goal < 1 s)")
    if hour is not None:
        rss = {}
        for name, frames in (("short", 400), ("hour", args.hour)):
            clean = folder / f"clean-{name}.mkv"
            write_video(clean, pattern(frames, 32, 32), 32, 32, Fraction(30))
            stats_code = (f"from lvtino.cli import main; from lvtino.pipeline.common import peak_memory_mb;"
                          f"main(['degrade', '{clean}', '-o', '{folder / f'd-{name}.mkv'}', '--problem', 'A', '-y']);"
                          "print(peak_memory_mb())")  # the process's own peak (VmHWM), not its launcher's
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", stats_code], capture_output=True, text=True, check=True)
            rss[name] = (float(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t0)
        print(f"degrade, Problem A, 32x32: {rss['short'][0]:.0f} MB peak RSS for 400 frames "
              f"({rss['short'][1]:.1f} s), {rss['hour'][0]:.0f} MB for {args.hour} frames ({rss['hour'][1]:.1f} s): "
              f"ratio {rss['hour'][0] / rss['short'][0]:.2f}")
    if not args.keep:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
