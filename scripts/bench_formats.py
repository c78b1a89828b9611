"""Every output format of the registry on the same real frames, side by side in one run.

The shared street frames (640x360, 41 frames at 30 fps; or any frame folder) are
written with each format at its default settings, at 8 bits and at the deepest
depth it has, by ``VideoWriter`` as a restoration writes its segments. For each:
CPU seconds per frame, frames per second, bytes per frame, and PSNR of the frames
read back against the frames written (lossless formats: inf), with the ratio of
its time to H.264's beside it.

    python scripts/bench_formats.py [--frames ../shared/data/adobe240-street] [--count 41]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lvtino.video.formats import FORMATS, Encoding  # noqa: E402
from lvtino.video.reader import probe, read_frames  # noqa: E402
from lvtino.video.writer import VideoWriter  # noqa: E402

STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "adobe240-street"
OUTPUT = {".mp4": "out.mp4", ".mov": "out.mov", ".mkv": "out.mkv", ".webm": "out.webm", "": "out"}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=Path, default=STREET, help="a folder of frames (default: the street frames)")
    parser.add_argument("--count", type=int, default=41, help="how many frames (default 41)")
    args = parser.parse_args(argv)
    if not args.frames.is_dir():
        parser.exit(2, f"bench_formats: {args.frames}: no such folder of frames\n")
    info = probe(args.frames, Fraction(30))
    frames = np.stack(list(read_frames(info, 0, min(args.count, info.frames))))
    n, h, w = frames.shape[:3]
    print(f"{n} frames of {w}x{h} from {args.frames}")
    print(f"{'format':9} {'bits':>4} {'pix_fmt':12} {'CPU s/frame':>11} {'fps':>7} {'x h264':>7} {'KB/frame':>9} "
          f"{'PSNR dB':>8}")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for name, fmt in FORMATS.items():
            if fmt.available() is not None:
                print(f"{name:9} skipped: {fmt.available()}")
                continue
            for bits in sorted({min(fmt.depths), max(fmt.depths)}):
                path = Path(tmp) / f"{name}-{bits}" / OUTPUT[fmt.suffixes[0]]
                path.parent.mkdir()
                encoding = Encoding.choose(path, name).for_input(bits)
                data = frames if encoding.frame_bits == 8 else frames.astype(np.uint16) * 257
                cpu, wall = time.process_time(), time.perf_counter()
                with VideoWriter(path, Fraction(30), encoding) as writer:
                    for f in data:
                        writer.write(f)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                back = np.stack(list(read_frames(probe(path), deep=encoding.frame_bits == 16)))[:, :h, :w]
                peak = 65535.0 if encoding.frame_bits == 16 else 255.0
                base = base or (cpu if name == "h264" else None)
                ratio = f"{cpu / base:7.2f}" if base else f"{'':>7}"
                print(f"{name:9} {encoding.bits:>4} {encoding.pix_fmt:12} {cpu / n:11.4f} {n / wall:7.1f} {ratio} "
                      f"{_size(path) / n / 1024:9.1f} {psnr(back, data, peak):8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
