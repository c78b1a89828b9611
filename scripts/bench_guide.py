"""``restore --guide``: other tools' restorations made consistent with the input, side by side in one run.

The street frames (41, 640x360) are shrunk 4x by ffmpeg's scaler and cut to a
quarter of the frame rate by ffmpeg's fps filter, as an H.264 file (crf 23), as
``scripts/bench_real_footage.py`` does. Guides at the full size and rate are
made from that file the way other tools would:

- player: lvtino's player's picture (each frame held, bicubic);
- minterpolate: ffmpeg's lanczos upscale + ``minterpolate`` (mci), PyAV's filter graph;
- sharpened: the minterpolate guide sharpened (unsharp mask, radius 2, 150 %) with
  invented detail added (a fixed high-pass noise texture, 6 grey levels), as a
  learned upscaler that hallucinates texture;

each also shifted by one pixel (a grid that does not match) and with noise (3 grey
levels, new every frame). Each guide is restored with ``--guide`` (default reach)
and with ``--set guide.reach=1`` (the correction nearly confined to the measured
frames: the "pulse" of correcting kept frames only).

Printed per guide: PSNR over all frames, over the dropped frames, the gain of the
measured and the dropped frames, and the pulse: how much the error (against the
clean frames) changes from one frame to the next when one of the two is measured,
over how much it changes between two dropped frames (about 1: the error flows
smoothly; well above 1: frames jump at each measured one).

    python scripts/bench_guide.py [--out DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_real_footage import (STREET, decode, ffmpeg_minterpolate, fps_filter, player, shrink,  # noqa: E402
                                write_mp4)
from lvtino.metrics.fidelity import psnr  # noqa: E402
from lvtino.video.reader import probe, read_frames  # noqa: E402
from lvtino.video.writer import VideoWriter  # noqa: E402


def sharpened(frames: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """Unsharp-masked frames with invented detail: a fixed high-pass texture, as a hallucinating upscaler's."""
    rng = np.random.default_rng(seed)
    h, w = frames[0].shape[:2]
    noise = rng.normal(0, 1, (h, w, 3)).astype(np.float32)
    blurred = np.asarray(Image.fromarray(((noise * 40) + 128).clip(0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(1.5))).astype(np.float32) - 128
    texture = (noise * 40 - blurred) / 40 * 6  # high-pass, about 6 grey levels
    out = []
    for f in frames:
        sharp = np.asarray(Image.fromarray(f).filter(ImageFilter.UnsharpMask(radius=2, percent=150, threshold=0)))
        out.append((sharp.astype(np.float32) + texture).clip(0, 255).round().astype(np.uint8))
    return out


def shifted(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [np.concatenate([f[:, :1], f[:, :-1]], axis=1) for f in frames]


def noisy(frames: list[np.ndarray], seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(f + rng.normal(0, 3, f.shape)).clip(0, 255).round().astype(np.uint8) for f in frames]


def measures(frames: list[np.ndarray], clean: list[np.ndarray], kept: list[int]) -> dict:
    n = min(len(frames), len(clean))  # the restoration has K times the kept frames (40 of 41)
    x = torch.from_numpy(np.stack(frames[:n])).permute(0, 3, 1, 2).double() / 255
    r = torch.from_numpy(np.stack(clean[:n])).permute(0, 3, 1, 2).double() / 255
    p = psnr(x, r)
    dropped = [t for t in range(n) if t not in kept]
    error = x - r
    step = (error[1:] - error[:-1]).abs().mean((1, 2, 3))  # how much the error changes from frame to frame
    touching = [t - 1 for t in range(1, n) if t in kept or t - 1 in kept]
    between = [t - 1 for t in range(1, n) if t not in kept and t - 1 not in kept]
    pulse = float(step[touching].mean() / step[between].mean())
    return {"psnr": float(p.mean()), "psnr_dropped": float(p[dropped].mean()), "per_frame": p, "pulse": pulse}


def write(path: Path, frames: list[np.ndarray], fps: Fraction) -> Path:
    with VideoWriter(path, fps) as w:
        for f in frames:
            w.write(f)
    return path


def restore(low: Path, guide: Path, out: Path, extra: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lvtino", "-q", "restore", str(low), "-o", str(out), "--scale",
                           "4", "--fps-factor", "4", "--guide", str(guide), "-y", *extra],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="keep the videos here")
    parser.add_argument("--frames", type=int, default=41)
    args = parser.parse_args()
    folder = Path(args.out or tempfile.mkdtemp(prefix="lvtino-guide-"))
    folder.mkdir(parents=True, exist_ok=True)
    info = probe(STREET)
    clean = list(read_frames(info, 0, min(args.frames, info.frames)))
    fps, size, k = Fraction(30), clean[0].shape[:2], 4
    kept = fps_filter(clean, fps, k)
    low = folder / "low.mp4"
    small = shrink(clean, "ffmpeg", k)
    write_mp4(low, [small[t] for t in kept], fps / k, 23, len(kept) * k / fps)
    decoded = decode(low)
    frames = k * len(kept)  # what the restoration has: K frames for each kept one
    mi = ffmpeg_minterpolate(low, size, fps)[:frames]
    mi += [mi[-1]] * (frames - len(mi))  # PyAV's graph stops at the last kept frame: held, as the ffmpeg command
    bases = {"player": player(decoded, size, k, frames), "minterpolate": mi, "sharpened": sharpened(mi)}
    guides = {}
    for name, frames in bases.items():
        guides[name] = frames
        guides[f"{name}, shifted 1 px"] = shifted(frames)
        guides[f"{name}, noisy"] = noisy(frames)
    print(f"street: {len(clean)} frames of {size[1]}x{size[0]}, shrunk 4x by ffmpeg, fps filter keeps {kept[:4]}..., "
          "H.264 crf 23; PSNR against the clean frames\n")
    print(f"{'guide':28} {'':>14} {'PSNR':>6} {'dropped':>7} {'gain kept':>9} {'gain dropped':>12} {'pulse':>6} "
          f"{'seconds':>7}")
    for i, (name, frames) in enumerate(guides.items()):
        path = write(folder / f"guide-{i}.mkv", frames, fps)
        base = measures(frames, clean, kept)
        print(f"{name:28} {'the guide':>14} {base['psnr']:6.2f} {base['psnr_dropped']:7.2f} {'':>9} {'':>12} "
              f"{base['pulse']:6.3f} {'':>7}")
        for label, extra in (("lvtino(guide)", []), ("reach 1", ["--set", "guide.reach=1"])):
            out = folder / f"restored-{i}-{label.replace(' ', '').replace('(', '').replace(')', '')}.mkv"
            seconds = restore(low, path, out, extra)
            m = measures(decode(out), clean, kept)
            n = min(len(m["per_frame"]), len(base["per_frame"]))
            gain = m["per_frame"][:n] - base["per_frame"][:n]
            dropped = [t for t in range(n) if t not in kept]
            print(f"{'':28} {label:>14} {m['psnr']:6.2f} {m['psnr_dropped']:7.2f} {float(gain[kept].mean()):+9.2f} "
                  f"{float(gain[dropped].mean()):+12.2f} {m['pulse']:6.3f} {seconds:7.1f}")


if __name__ == "__main__":
    main()
