"""``lvtino restore``: restore a degraded video, file to file.

This is the whole-clip path: the measurement is read into memory, the prior
restores it in one piece, and the requested frames are encoded.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

from lvtino.config import ProblemConfig, apply_overrides, from_dict, load_raw
from lvtino.errors import UserError
from lvtino.physics.problems import chain_factors
from lvtino.pipeline.common import build_checked_physics, check_device, peak_memory_mb, write_json
from lvtino.pipeline.priors import PRIORS, ModelOptions, make_prior
from lvtino.video.convert import frames_to_tensor, tensor_to_frames
from lvtino.video.reader import VideoInfo, probe, read_frames
from lvtino.video.writer import VideoWriter, check_output_path

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
            crf: int = 18, preset: str = "medium", no_audio: bool = False, device: str = "cpu",
            models: ModelOptions | None = None, seed: int = 0) -> dict:
    """Restore a degraded video with ``prior`` and write frames [start, end) of the result."""
    t_start = time.perf_counter()
    # 1. Check inputs
    if prior not in PRIORS:
        raise UserError(f"--prior {prior}: unknown prior (known: {', '.join(PRIORS)})")
    if frames is not None and frames < 1:
        raise UserError(f"--frames {frames}: must be a positive number of frames")
    device = check_device(device)
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
    # 3. The prior (networks load here, once), the measurement, the restoration
    t_load = time.perf_counter()
    restorer = make_prior(prior, cfg, models, device)
    t_read = time.perf_counter()
    y = frames_to_tensor(read_frames(info)).to(device)
    t_prior = time.perf_counter()
    x, solver_info = restorer(physics, y, seed)
    t_write = time.perf_counter()
    residual = (physics.A(x) - y).norm() / y.norm().clamp_min(1e-12)
    # 4. Encode the requested frames, with the audio of the same span
    out_fps = info.fps * physics.factors[0]
    audio = None if no_audio or not info.has_audio else input
    facts = restorer.facts()
    made_by = {"problem": cfg.name, "prior": prior, **{k: facts[k] for k in ("models", "models_note") if k in facts}}
    with VideoWriter(output, out_fps, crf=crf, preset=preset, audio_from=audio, rotation=info.rotation,
                     metadata={"restored_by": made_by},
                     audio_range=(float(Fraction(start) / out_fps), float(Fraction(end) / out_fps))) as writer:
        for frame in tensor_to_frames(x[:, :, start:end]):
            writer.write(frame)
    t_end = time.perf_counter()
    result = {
        "input": str(input), "output": str(output), "problem": cfg.name, "prior": prior,
        "frames": end - start, "start": start, "end": end, "height": shape[1], "width": shape[2],
        "fps": str(out_fps), "seconds": round(t_end - t_start, 3),
        "seconds_per_stage": {"load": round(t_read - t_load, 3), "read": round(t_prior - t_read, 3),
                              "prior": round(t_write - t_prior, 3), "write": round(t_end - t_write, 3)},
        "peak_memory_mb": peak_memory_mb(), "relative_residual": float(residual), "device": str(device),
        "seed": seed, **solver_info,
    }
    result["seconds_per_stage"].update(facts.pop("seconds_per_stage", {}))
    result.update(facts)
    result["config"] = asdict(cfg)
    if stats is not None:
        write_json(stats, result)
    return result
