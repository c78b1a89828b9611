"""Seconds and memory of one LVTINO restoration with real-size networks, without downloading anything.

Builds the Wan2.1-1.3B transformer and VAE and the SDXL UNet and VAE from their
published configurations with random weights (their cost does not depend on the
weights), degrades a procedural 25-frame 768x1280 clip with Problem B and runs
the sampler in bf16, then prints seconds per stage, the total, NFE and peak
memory. The text encoders are left out: the prompts are encoded once per run and
their embeddings (random here, of the real shapes) are all the sampler uses.

    python scripts/gpu_timing.py                 # on a GPU: the paper's job (132 s, 35 GB on its GPU)
    python scripts/gpu_timing.py --tiny          # on a CPU: the same code path with the tiny networks

``--json FILE`` keeps every figure (rewritten after each run, so a run stopped
later keeps the earlier ones); ``--warmup-frames N`` warms the networks up on an
N-frame clip before the timed runs (cheaper than a whole warm-up run).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from lvtino.config import load_problem
from lvtino.models.architectures import FULL, TINY
from lvtino.models.base import DTYPES, OFFLOAD_MODES, TILING_MODES, Placement
from lvtino.models.image import ImageConsistencyModel
from lvtino.models.video import VideoConsistencyModel
from lvtino.physics.problems import build_physics
from lvtino.runtime import StageTimer
from lvtino.sampling.sampler import sample
from lvtino.sampling.schedule import Schedule
from lvtino.video.convert import frames_to_tensor
from lvtino.video.synthetic import synthetic_clip


def build(arch: dict, tiny: bool, placement: Placement, timer: StageTimer):
    from diffusers import AutoencoderKL, AutoencoderKLWan, DDPMScheduler, UNet2DConditionModel, WanTransformer3DModel

    g = torch.Generator().manual_seed(0)
    if tiny:
        video_prompt = (TINY["video_prompt_tokens"], TINY["video_transformer"]["text_dim"])
        image_prompt, pooled = (77, TINY["image_unet"]["cross_attention_dim"]), 32
    else:
        video_prompt, image_prompt = arch["video_prompt_shape"], arch["image_prompt_shape"]
        pooled = arch["image_pooled_dim"]
    build_on = placement.device if placement.offload == "none" else torch.device("cpu")
    with build_on:
        transformer = WanTransformer3DModel(**arch["video_transformer"])
        video_vae = AutoencoderKLWan(**arch["video_vae"])
        unet = UNet2DConditionModel(**arch["image_unet"])
        image_vae = AutoencoderKL(**arch["image_vae"])
    video = VideoConsistencyModel(transformer, video_vae, torch.randn((1, *video_prompt), generator=g), 8.0,
                                  placement, timer)
    alphas = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear").alphas_cumprod
    fp16 = placement.dtype == torch.bfloat16 and not tiny  # SDXL in float16 beside Wan in bf16, as published
    image_placement = placement.with_dtype(torch.float16) if fp16 else placement
    image = ImageConsistencyModel(unet, image_vae, torch.randn((1, *image_prompt), generator=g),
                                  torch.randn((1, pooled), generator=g), alphas, image_placement, 8, timer)
    return video, image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny networks on the CPU at a small size")
    parser.add_argument("--device", default=None, help="default: cuda if present, else cpu")
    parser.add_argument("--dtype", default=None, choices=list(DTYPES),
                        help="default bfloat16, SDXL float16 (float32 with --tiny)")
    parser.add_argument("--offload", default="none", choices=OFFLOAD_MODES)
    parser.add_argument("--vae-tiling", default="off", choices=TILING_MODES, help="as restore's (default off)")
    parser.add_argument("--problem", default="B")
    parser.add_argument("--frames", type=int, default=None, help="default 25 (9 with --tiny)")
    parser.add_argument("--size", default=None, help="HxW, default 768x1280 (64x96 with --tiny)")
    parser.add_argument("--runs", type=int, default=1, help="repeat the restoration (the first one warms up)")
    parser.add_argument("--warmup-frames", type=int, default=0,
                        help="first run the sampler once on this many frames, untimed (default 0: none)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this JSON file")
    args = parser.parse_args()

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and not args.tiny and args.device is None:
        raise SystemExit("gpu_timing: no CUDA device: the real-size networks would be built on the CPU in float32 "
                         "(about 17 GB and minutes a sweep); pass --device cpu to do so, or --tiny")
    dtype = DTYPES[args.dtype or ("float32" if args.tiny else "bfloat16")]
    frames = args.frames or (9 if args.tiny else 25)
    h, w = (int(v) for v in (args.size or ("64x96" if args.tiny else "768x1280")).split("x"))
    placement = Placement(device, dtype, args.offload, args.vae_tiling)
    timer = StageTimer(device)
    t0 = time.perf_counter()
    video, image = build(TINY if args.tiny else FULL, args.tiny, placement, timer)
    built = time.perf_counter() - t0

    cfg = load_problem(args.problem)
    schedule = Schedule.from_config(cfg.sampler)
    facts = {"problem": args.problem, "frames": frames, "size": f"{w}x{h}", "device": str(device),
             "dtype": str(dtype)[6:], "offload": args.offload, "networks": "tiny" if args.tiny else "real-size",
             "built_seconds": round(built, 2), "runs": []}
    if not args.tiny:  # the memory plan restore prints for the same job, to hold against the measured peak
        from lvtino.pipeline import memory

        stages = memory.plan(["video", "image"], frames, h, w, args.offload, dtype.itemsize,
                             image.placement.dtype.itemsize)
        facts["plan"] = memory.as_facts(stages)
    save(args.json, facts)
    if args.warmup_frames:
        t0 = time.perf_counter()
        physics, y = measurement(cfg, args.warmup_frames, h, w, device)
        sample(physics, y, schedule, video, image, torch.Generator().manual_seed(0), timer)
        facts["warmup"] = {"frames": args.warmup_frames, "seconds": round(time.perf_counter() - t0, 2)}
        save(args.json, facts)
    physics, y = measurement(cfg, frames, h, w, device)
    print(f"{'tiny' if args.tiny else 'real-size'} random networks on {device} in {str(dtype)[6:]}, "
          f"offload {args.offload}; problem {args.problem}, {frames} frames of {w}x{h}; built in {built:.1f} s")
    for run in range(args.runs):
        timer.seconds.clear()
        video.calls = image.calls = 0
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = sample(physics, y, schedule, video, image, torch.Generator().manual_seed(run), timer)
        if device.type == "cuda":
            torch.cuda.synchronize()
        total = time.perf_counter() - t0
        residual = float((physics.A(out) - y).norm() / y.norm())
        print(f"\nrun {run + 1}: total {total:.2f} s, NFE {video.calls + image.calls} "
              f"({video.calls} video + {image.calls} image sweeps), relative residual {residual:.3g}")
        for stage, seconds in sorted(timer.seconds.items(), key=lambda kv: -kv[1]):
            print(f"  {stage:18s} {seconds:8.2f} s  {100 * seconds / total:5.1f} %")
        figures = {"total_seconds": round(total, 2), "nfe": video.calls + image.calls, "video_sweeps": video.calls,
                   "image_sweeps": image.calls, "relative_residual": residual,
                   "stages": {k: round(v, 2) for k, v in timer.seconds.items()}}
        if device.type == "cuda":
            figures["peak_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
            figures["reserved_gb"] = round(torch.cuda.max_memory_reserved() / 1e9, 2)
            print(f"  peak GPU memory   {figures['peak_gb']:8.2f} GB (reserved {figures['reserved_gb']:.2f} GB)")
        facts["runs"].append(figures)
        save(args.json, facts)
    if "plan" in facts:
        print(f"\nmemory plan of the same job (--offload {args.offload}), for comparison:")
        print("\n".join(memory.describe(stages)))


def measurement(cfg, frames: int, h: int, w: int, device: torch.device):
    physics = build_physics(cfg.operator, (frames, h, w))
    x = frames_to_tensor(synthetic_clip(frames, h, w)).to(device)
    return physics, physics.measure(x, cfg.noise_std, torch.Generator(device).manual_seed(0))


def save(path: Path | None, facts: dict) -> None:
    """Write ``facts`` to ``path`` whole (a temporary file renamed into place), when a path is given."""
    if path is not None:
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(json.dumps(facts, indent=1) + "\n")
        os.replace(tmp, path)


if __name__ == "__main__":
    main()
