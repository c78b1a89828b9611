"""``lvtino degrade``: simulate a measurement of a clean video and record how it was made."""

from __future__ import annotations

from pathlib import Path

import torch

from lvtino.config import ProblemConfig, apply_overrides, from_dict, known_problems, load_raw
from lvtino.errors import UserError
from lvtino.pipeline.common import build_checked_physics
from lvtino.video.convert import frames_to_tensor, tensor_to_frames
from lvtino.video.reader import probe, read_frames
from lvtino.video.writer import VideoWriter, check_output_path


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
