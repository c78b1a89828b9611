"""Degrade a clean video and restore a degraded one, file to file.

This module holds the whole-clip path: the measurement is read into memory, the
prior restores it in one piece, and the requested frames are encoded.
"""

from __future__ import annotations

import json
import math
import resource
import time
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import torch

from lvtino.config import ProblemConfig, apply_overrides, from_dict, known_problems, load_raw
from lvtino.errors import UserError
from lvtino.physics.problems import build_physics, chain_factors
from lvtino.solvers.baselines import pinv_restore, tv_restore
from lvtino.video.convert import frames_to_tensor, tensor_to_frames
from lvtino.video.reader import VideoInfo, probe, read_frames
from lvtino.video.writer import VideoWriter, check_output_path

PRIORS = {
    "pinv": lambda physics, y, cfg: pinv_restore(physics, y, cfg.pinv),
    "tv": lambda physics, y, cfg: tv_restore(physics, y, cfg.tv, cfg.pinv),
}
MIN_MEASURED_SIDE = 4  # a measurement narrower than this holds no picture to restore


def build_checked_physics(cfg: ProblemConfig, shape: tuple[int, int, int]):
    """The problem's operator for a signal of (T, H, W), with user-facing errors."""
    try:
        physics = build_physics(cfg.operator, shape)
    except ValueError as err:
        raise UserError(f"problem {cfg.name}: {err}") from None
    t, h, w = physics.output_shape(shape)
    if min(h, w) < MIN_MEASURED_SIDE:
        f = physics.factors
        raise UserError(f"frame size {shape[2]}x{shape[1]} is too small for problem {cfg.name} "
                        f"(spatial factor {f[1]}: the measurement would be {w}x{h})")
    return physics


def peak_memory_mb() -> float:
    """Peak resident memory of this process (and the GPU's peak allocation, if used).

    Linux's VmHWM is this program's own high-water mark; ``ru_maxrss`` (the fallback
    elsewhere) can carry the peak of the process that launched it across exec.
    """
    mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    mb = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    if torch.cuda.is_available():
        mb += torch.cuda.max_memory_allocated() / 2**20
    return round(mb, 1)


def write_json(path: str | Path, data: dict) -> None:
    """JSON with non-finite numbers (a PSNR of identical frames) written as null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(u) for k, u in v.items()}
        if isinstance(v, list):
            return [clean(u) for u in v]
        return v
    Path(path).write_text(json.dumps(clean(data), indent=1) + "\n")


def degrade(input: str | Path, output: str | Path, problem: str | None = None, config: str | Path | None = None,
            overrides: list[str] | None = None, noise_std: float | None = None, seed: int = 0, fps=None,
            no_audio: bool = False) -> dict:
    """Simulate y = A(x) + n from a clean video and write it losslessly with its metadata."""
    if problem is None and config is None:
        raise UserError(f"--problem is required (known: {', '.join(known_problems())})")
    info = probe(input, fps)
    output = check_output_path(output, [input])
    raw = apply_overrides(load_raw(problem, config), overrides or [])
    cfg = from_dict(ProblemConfig, raw).validate()
    noise = cfg.noise_std if noise_std is None else noise_std
    if noise < 0:
        raise UserError(f"--noise-std {noise}: must be >= 0")
    shape = (info.frames, info.height, info.width)
    physics = build_checked_physics(cfg, shape)
    x = frames_to_tensor(read_frames(info))
    generator = torch.Generator().manual_seed(seed)
    y = physics.measure(x, noise, generator)
    meta = {"problem": cfg.name, "operator": cfg.operator, "noise_std": noise, "seed": seed,
            "frames": info.frames, "height": info.height, "width": info.width, "fps": str(info.fps)}
    out_fps = info.fps / physics.factors[0]
    with VideoWriter(output, out_fps, lossless=True, metadata=meta, rotation=info.rotation,
                     audio_from=None if no_audio or not info.has_audio else input) as writer:
        for frame in tensor_to_frames(y):
            writer.write(frame)
    return {"output": str(output), "problem": cfg.name, "frames": y.shape[2], "height": y.shape[3],
            "width": y.shape[4], "fps": str(out_fps), "noise_std": noise}


def resolve_problem(info: VideoInfo, problem: str | None, config, overrides) -> ProblemConfig:
    """The preset to restore with; the measurement's own recorded operator wins over the preset's."""
    meta = info.metadata
    recorded = meta.get("problem")
    if problem is None and config is None:
        if recorded is None:
            raise UserError(f"{info.path}: carries no lvtino metadata; name the degradation with --problem")
        problem = recorded
    if problem is not None and recorded is not None and config is None and problem != recorded:
        raise UserError(f"--problem {problem}: the input was degraded with problem {recorded}")
    raw = load_raw(problem, config)
    if "operator" in meta:
        raw["operator"] = meta["operator"]
    return from_dict(ProblemConfig, apply_overrides(raw, overrides or [])).validate()


def signal_shape(info: VideoInfo, factors, frames: int | None) -> tuple[int, int, int]:
    """(T, H, W) of the restored video: recorded in the input, else factor x the measured size."""
    meta = info.metadata
    t = meta.get("frames") or frames or factors[0] * info.frames
    h = meta.get("height") or factors[1] * info.height
    w = meta.get("width") or factors[2] * info.width
    return int(t), int(h), int(w)


def restore(input: str | Path, output: str | Path, problem: str | None = None, prior: str = "tv",
            config: str | Path | None = None, overrides: list[str] | None = None, start: int | None = None,
            end: int | None = None, frames: int | None = None, stats: str | Path | None = None, fps=None,
            crf: int = 18, preset: str = "medium", no_audio: bool = False, device: str = "cpu") -> dict:
    """Restore a degraded video with ``prior`` and write frames [start, end) of the result."""
    t_start = time.perf_counter()
    # 1. Check inputs
    if prior not in PRIORS:
        raise UserError(f"--prior {prior}: unknown prior (known: {', '.join(PRIORS)})")
    if frames is not None and frames < 1:
        raise UserError(f"--frames {frames}: must be a positive number of frames")
    info = probe(input, fps)
    output = check_output_path(output, [input])
    cfg = resolve_problem(info, problem, config, overrides)
    # 2. The operator, sized for the signal the measurement came from
    try:
        factors = chain_factors(cfg.operator)
    except ValueError as err:
        raise UserError(f"problem {cfg.name}: {err}") from None
    shape = signal_shape(info, factors, frames)
    physics = build_checked_physics(cfg, shape)
    measured = physics.output_shape(shape)
    if measured != (info.frames, info.height, info.width):
        raise UserError(f"{input}: holds {info.frames} frames of {info.width}x{info.height}, but problem {cfg.name} "
                        f"on {shape[0]} frames of {shape[2]}x{shape[1]} measures {measured[0]} frames of "
                        f"{measured[2]}x{measured[1]}; check --problem and --frames")
    start = 0 if start is None else start
    end = shape[0] if end is None else end
    if not 0 <= start < end <= shape[0]:
        raise UserError(f"--start {start} --end {end}: the range must satisfy 0 <= start < end <= {shape[0]} "
                        "(output frames)")
    # 3. Read the measurement and restore
    t_read = time.perf_counter()
    y = frames_to_tensor(read_frames(info)).to(device)
    t_prior = time.perf_counter()
    x, solver_info = PRIORS[prior](physics, y, cfg)
    x = x.clamp(-1, 1)
    t_write = time.perf_counter()
    residual = (physics.A(x) - y).norm() / y.norm().clamp_min(1e-12)
    # 4. Encode the requested frames, with the audio of the same span
    out_fps = info.fps * physics.factors[0]
    audio = None if no_audio or not info.has_audio else input
    with VideoWriter(output, out_fps, crf=crf, preset=preset, audio_from=audio, rotation=info.rotation,
                     audio_range=(float(Fraction(start) / out_fps), float(Fraction(end) / out_fps))) as writer:
        for frame in tensor_to_frames(x[:, :, start:end]):
            writer.write(frame)
    t_end = time.perf_counter()
    result = {
        "input": str(input), "output": str(output), "problem": cfg.name, "prior": prior,
        "frames": end - start, "start": start, "end": end, "height": shape[1], "width": shape[2],
        "fps": str(out_fps), "seconds": round(t_end - t_start, 3),
        "seconds_per_stage": {"read": round(t_prior - t_read, 3), "prior": round(t_write - t_prior, 3),
                              "write": round(t_end - t_write, 3)},
        "peak_memory_mb": peak_memory_mb(), "solver_iterations": solver_info.get("iterations"),
        "relative_residual": float(residual), "device": str(device), "config": asdict(cfg),
    }
    if stats is not None:
        write_json(stats, result)
    return result
