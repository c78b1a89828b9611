"""The sampler with the tiny networks on two devices: the same output to the precision of the second.

    python scripts/cuda_vs_cpu.py --device cuda --dtype bfloat16      # on a GPU machine
    python scripts/cuda_vs_cpu.py --device cpu --dtype float32        # the code path, on any machine

Problem B, 9 frames of 64x96, seed 0: the CPU in float32 against ``--device`` in
``--dtype``. Prints the largest and mean absolute differences (pixels in [-1, 1])
and exits 1 when the mean exceeds the tolerance (1e-5 in float32, 2e-2 in 16-bit:
the tiny networks' outputs are noise-like, so 16-bit rounding shows fully).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from lvtino.config import load_problem
from lvtino.models.base import DTYPES, Placement
from lvtino.models.loader import load_models
from lvtino.physics.problems import build_physics
from lvtino.runtime import StageTimer
from lvtino.sampling.sampler import sample
from lvtino.sampling.schedule import Schedule
from lvtino.video.convert import frames_to_tensor
from lvtino.video.synthetic import synthetic_clip


def run(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    cfg = load_problem("B")
    physics = build_physics(cfg.operator, (9, 64, 96))
    x = frames_to_tensor(synthetic_clip(9, 64, 96))
    y = physics.measure(x, cfg.noise_std, torch.Generator().manual_seed(0))
    models = load_models("tiny", ["video", "image"], Placement(device, dtype), StageTimer(device))
    # the operator's matrices follow the measurement to its device
    out = sample(physics, y.to(device), Schedule.from_config(cfg.sampler), models.video, models.image,
                 torch.Generator().manual_seed(0))
    return out.float().cpu()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=list(DTYPES))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    reference = run(torch.device("cpu"), torch.float32)
    other = run(torch.device(args.device), DTYPES[args.dtype])
    diff = (other - reference).abs()
    tolerance = 1e-5 if args.dtype == "float32" else 2e-2
    print(f"tiny networks, problem B, 9x64x96: cpu float32 vs {args.device} {args.dtype}: max |diff| "
          f"{float(diff.max()):.3g}, mean {float(diff.mean()):.3g} (tolerance on the mean {tolerance:g})")
    ok = float(diff.mean()) <= tolerance
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "dtype": args.dtype, "max_diff": float(diff.max()),
                                         "mean_diff": float(diff.mean()), "tolerance": tolerance, "ok": ok}) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
