"""Restoring video shrunk by ordinary tools: lvtino against what a player and ffmpeg do, side by side in one run.

A clean clip (default: the 41 Adobe240 street frames, 640x360) is shrunk 4x by
ffmpeg's default scaler (swscale bicubic, on the yuv420p planes as ffmpeg scales
video) and by PIL (bicubic), cut to a quarter of its frame rate by ffmpeg's fps
filter (PyAV's own: frames 1, 5, 9, ... as ``-vf fps=7.5`` keeps them), and
written as an ordinary H.264 .mp4 (crf 23, yuv420p) with an audio track. Each is
then brought back to 640x360 at the full rate by:

- player: lvtino's player's picture (each frame held until the next, torch's bicubic);
- ffmpeg: lanczos upscaling + ``minterpolate`` (mi_mode=mci, motion-compensated), PyAV's filter graph;
- lvtino tv (motion start), lvtino tv (linear start), lvtino pinv: ``restore --scale 4 --fps-factor 4``
  with the matching ``--resampler``.

PSNR/SSIM are over every frame and over the dropped (held-out) frames alone. A
second table does ``--scale 4`` alone (every frame kept) against plain bicubic.

With ``--noise`` it checks instead the compression noise lvtino reads from a
file's quantiser (``lvtino.video.quality``) against the error actually there: the
shrunk frames encoded at crf 18 to 45, decoded, and compared with themselves
before encoding.

Each row also has GMSD (gradient magnitude similarity deviation, a perceptual
measure without weights; lower is better), the mean luma gradient magnitude over
the clean frames' (1: as sharp; a soft result is below), and lvtino's CPU seconds
per output frame. ``--upscaler FILE`` adds the rows of ``lvtino restore
--upscaler FILE``.

    python scripts/bench_real_footage.py [CLIP] [--frames 41] [--crf 23] [--out DIR] [--noise] [--upscaler FILE]
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
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
STREET = ROOT.parent / "shared" / "data" / "adobe240-street"
sys.path.insert(0, str(ROOT))

from lvtino.metrics.fidelity import psnr, ssim  # noqa: E402
from lvtino.video.reader import probe, read_frames  # noqa: E402


def shrink(frames: list[np.ndarray], tool: str, factor: int) -> list[np.ndarray]:
    h, w = frames[0].shape[0] // factor, frames[0].shape[1] // factor
    out = []
    for f in frames:
        if tool == "ffmpeg":  # as ffmpeg scales a video: each plane of yuv420p with swscale's bicubic
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p", dst_colorspace="itu709")
            vf = vf.reformat(width=w, height=h, interpolation="BICUBIC")
            out.append(vf.reformat(format="rgb24", src_colorspace="itu709").to_ndarray())
        else:
            out.append(np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC)))
    return out


def write_mp4(path: Path, frames: list[np.ndarray], fps: Fraction, crf: int, seconds: float) -> None:
    """An ordinary H.264 file (yuv420p, BT.709) with an AAC tone, as a phone or a site gives it."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        s.options = {"crf": str(crf)}
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p", dst_colorspace="itu709")
            vf.pts, vf.time_base = i, 1 / fps
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        n = int(48000 * seconds)
        tone = (0.1 * np.sin(2 * np.pi * 330 * np.arange(n) / 48000)).astype(np.float32)
        for k in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(np.stack([tone[k:k + 1024]] * 2), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, k
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)


def fps_filter(frames: list[np.ndarray], rate: Fraction, factor: int) -> list[int]:
    """Which frames ffmpeg's ``-vf fps=rate/factor`` keeps (PyAV's own filter, frames fed as a decoder feeds them)."""
    return kept_by_filter(len(frames), rate, "fps", f"fps={rate / factor}")


def kept_by_filter(frames: int, rate: Fraction, name: str, args: str) -> list[int]:
    """The numbers of the frames PyAV's filter ``name=args`` keeps of ``frames`` numbered frames fed at ``rate``:
    regular timestamps, each frame lasting 1/rate (as a decoder gives them)."""
    graph = av.filter.Graph()
    src = graph.add_buffer(width=16, height=16, format="gray16le", time_base=1 / rate)
    step, sink = graph.add(name, args), graph.add("buffersink")
    src.link_to(step)
    step.link_to(sink)
    graph.configure()
    kept = []

    def drain():
        while True:
            try:
                kept.append(int(sink.pull().to_ndarray()[0, 0]))
            except (av.error.BlockingIOError, av.error.EOFError):
                return
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(np.full((16, 16), i, np.uint16), format="gray16le")
        frame.pts, frame.time_base, frame.duration = i, 1 / rate, 1
        src.push(frame)
        drain()
    src.push(None)
    drain()
    return kept


def decode(path: Path) -> list[np.ndarray]:
    return list(read_frames(probe(path)))


def player(low: list[np.ndarray], size: tuple[int, int], kt: int, frames: int) -> list[np.ndarray]:
    """The player's picture, as lvtino's fit line, demo and report define it (``player_frames``)."""
    from lvtino.video.player import player_factors, player_frames

    factors = (kt, *player_factors((1, *low[0].shape[:2]), (1, *size))[1:])
    return list(player_frames(low, factors, (frames, *size)))


def ffmpeg_minterpolate(path: Path, size: tuple[int, int], fps: Fraction) -> list[np.ndarray]:
    """ffmpeg -vf scale=W:H:flags=lanczos,minterpolate=fps=F:mi_mode=mci, through PyAV's filter graph."""
    out = []
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        graph = av.filter.Graph()
        src = graph.add_buffer(template=vs)
        scale = graph.add("scale", f"{size[1]}:{size[0]}:flags=lanczos")
        mi = graph.add("minterpolate", f"fps={fps}:mi_mode=mci")
        fmt = graph.add("format", "rgb24")
        sink = graph.add("buffersink")
        src.link_to(scale)
        scale.link_to(mi)
        mi.link_to(fmt)
        fmt.link_to(sink)
        graph.configure()

        def drain():  # every frame the graph has ready
            while True:
                try:
                    out.append(graph.pull().to_ndarray())
                except (av.error.BlockingIOError, av.error.EOFError):
                    return
        for frame in c.decode(vs):
            graph.push(frame)
            drain()
        graph.push(None)
        drain()
    return out


def lvtino(args: list[str]) -> float:
    return timed_lvtino(args)[0]


def timed_lvtino(args: list[str]) -> tuple[float, float]:
    """``lvtino ARGS`` in its own process: its wall-clock and CPU seconds (user + system)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lvtino", *args, "-y"], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t0, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) in [0, 1] -> (T, 1, H, W) BT.601 luma in [0, 255]."""
    return (255 * (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]))[:, None]


def gmsd(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude similarity deviation per frame (Xue et al. 2014; lower is better; no weights): luma
    averaged 2x2, Prewitt gradients, c = 170."""
    import torch.nn.functional as F

    prewitt = torch.tensor([[1, 0, -1]] * 3, dtype=x.dtype) / 3
    kernels = torch.stack([prewitt, prewitt.T])[:, None]

    def magnitude(v):
        g = F.conv2d(F.avg_pool2d(_luma(v), 2), kernels, padding=1)
        return g.pow(2).sum(1).sqrt()
    a, b = magnitude(x), magnitude(r)
    similarity = (2 * a * b + 170) / (a * a + b * b + 170)
    return similarity.flatten(1).std(1)


def gradient_ratio(x: torch.Tensor, r: torch.Tensor) -> float:
    """The restoration's mean luma gradient magnitude over the clean frames': 1 as sharp, below 1 softer."""
    def mean_gradient(v):
        y = _luma(v)
        return float(((y[..., 1:, 1:] - y[..., :-1, 1:]) ** 2 + (y[..., 1:, 1:] - y[..., 1:, :-1]) ** 2)
                     .sqrt().mean())
    return mean_gradient(x) / mean_gradient(r)


def score(frames: list[np.ndarray], clean: list[np.ndarray], held: list[int]) -> dict:
    """PSNR/SSIM over the frames both have (41 frames cut to 7.5 fps keep 10: the restoration has 40), and over
    the held-out ones among them."""
    n = min(len(clean), len(frames))
    held = [t for t in held if t < n]
    x = torch.from_numpy(np.stack(frames[:n])).permute(0, 3, 1, 2).double() / 255
    r = torch.from_numpy(np.stack(clean[:n])).permute(0, 3, 1, 2).double() / 255
    p, s = psnr(x, r), ssim(x, r)
    return {"psnr": float(p.mean()), "ssim": float(s.mean()),
            "psnr_held": float(p[held].mean()) if held else None, "ssim_held": float(s[held].mean()) if held else None,
            "gmsd": float(gmsd(x, r).mean()), "gradient": gradient_ratio(x, r)}


def noise_check(clean: list[np.ndarray], folder: Path) -> None:
    from lvtino.video.quality import compression_noise

    small = shrink(clean, "ffmpeg", 4)
    ref = np.stack(small).astype(np.float64)
    print(f"{'crf':>4} {'mean QP':>8} {'error (grey levels)':>20} {'read from QP':>13} {'ratio':>6}")
    for crf in (18, 23, 28, 33, 38, 45):
        path = folder / f"noise-crf{crf}.mp4"
        write_mp4(path, small, Fraction(30), crf, len(small) / 30)
        error = float((np.stack(decode(path)).astype(np.float64) - ref).std())
        found = compression_noise(path, frames=len(small))
        read = 127.5 * found.noise_std
        print(f"{crf:4d} {found.qp:8.2f} {error:20.2f} {read:13.2f} {read / error:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", default=str(STREET), help="clean clip (default: the street frames)")
    parser.add_argument("--frames", type=int, default=41)
    parser.add_argument("--crf", type=int, default=23, help="H.264 quality of the shrunk file (default 23)")
    parser.add_argument("--out", default=None, help="keep the videos here")
    parser.add_argument("--noise", action="store_true", help="check the compression noise read from the quantiser")
    parser.add_argument("--upscaler", default=None, metavar="FILE",
                        help="add the rows of lvtino --upscaler FILE (e.g. scripts/upscaler_weights.py's file)")
    args = parser.parse_args()
    folder = Path(args.out or tempfile.mkdtemp(prefix="lvtino-real-"))
    folder.mkdir(parents=True, exist_ok=True)
    info = probe(args.clip)
    clean = list(read_frames(info, 0, min(args.frames, info.frames)))
    if args.noise:
        return noise_check(clean, folder)
    fps, size, k = Fraction(30), clean[0].shape[:2], 4
    kept = fps_filter(clean, fps, k)
    held = [t for t in range(len(clean)) if t not in kept]
    rows = []
    for tool, resampler in (("ffmpeg", "ffmpeg"), ("pil", "pil-bicubic")):
        small = shrink(clean, tool, k)
        cases = {"scale 4, fps / 4": ([small[t] for t in kept], fps / k, ["--scale", "4", "--fps-factor", "4"], k),
                 "scale 4": (small, fps, ["--scale", "4"], 1)}
        for case, (frames, rate, words, kt) in cases.items():
            low = folder / f"{tool}-{case.replace(' ', '').replace(',', '-').replace('/', '')}.mp4"
            write_mp4(low, frames, rate, args.crf, len(frames) / rate)
            results = {"player's picture (held, bicubic)": score(player(decode(low), size, kt, len(clean)), clean,
                                                             held if kt > 1 else [])}
            if kt > 1:
                t0 = time.perf_counter()
                mi = ffmpeg_minterpolate(low, size, fps)
                mi += [mi[-1]] * (len(clean) - len(mi))  # it stops at the last input frame: held, as a player
                results["ffmpeg lanczos + minterpolate mci"] = {**score(mi, clean, held),
                                                               "seconds": time.perf_counter() - t0}
            methods = [("lvtino tv", []), ("lvtino tv, linear start", ["--set", "tv.start=linear"]),
                       ("lvtino pinv", ["--prior", "pinv"])]
            if args.upscaler:
                methods.append(("lvtino --upscaler", ["--upscaler", args.upscaler]))
            for name, extra in methods:
                if kt == 1 and "linear" in name:
                    continue
                out = folder / f"{low.stem}-{name.replace(' ', '').replace(',', '')}.mkv"
                stats = out.with_suffix(".json")
                seconds, cpu = timed_lvtino(["restore", str(low), "-o", str(out), *words, "--resampler", resampler,
                                             "--stats", str(stats), *extra])
                s = json.loads(stats.read_text())
                results[name] = {**score(decode(out), clean, held if kt > 1 else []), "seconds": seconds,
                                 "cpu_per_frame": cpu / len(clean),
                                 "residual": s.get("relative_residual"), "naive_residual": s.get("naive_residual")}
            for method, r in results.items():
                rows.append({"shrunk by": tool, "case": case, "method": method, **r})
    print(f"{args.clip}: {len(clean)} frames of {size[1]}x{size[0]}; shrunk 4x, H.264 crf {args.crf}; "
          f"PSNR/SSIM against the clean frames (held out: the {len(held)} dropped ones)\n")
    print(f"{'shrunk by':9} {'case':17} {'method':36} {'PSNR':>6} {'SSIM':>6} {'PSNR held':>9} {'SSIM held':>9} "
          f"{'GMSD':>6} {'grad':>5} {'seconds':>7} {'CPU s/frame':>11}")
    for r in rows:
        held_p = f"{r['psnr_held']:9.2f}" if r["psnr_held"] is not None else f"{'-':>9}"
        held_s = f"{r['ssim_held']:9.4f}" if r["ssim_held"] is not None else f"{'-':>9}"
        secs = f"{r['seconds']:7.1f}" if "seconds" in r else f"{'-':>7}"
        cpu = f"{r['cpu_per_frame']:11.3f}" if "cpu_per_frame" in r else f"{'-':>11}"
        print(f"{r['shrunk by']:9} {r['case']:17} {r['method']:36} {r['psnr']:6.2f} {r['ssim']:6.4f} {held_p} "
              f"{held_s} {r['gmsd']:6.4f} {r['gradient']:5.2f} {secs} {cpu}")
    print("\nGMSD: gradient magnitude similarity deviation (lower is better); grad: mean luma gradient magnitude "
          "over the clean frames' (1: as sharp)")
    (folder / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
